using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using NextFlowRL.Imaging;
using NextFlowRL.Policies;
using NextFlowRL.Rewards;
using NextFlowRL.Torch.Memory;
using NextFlowRL.Torch.NextScale;
using NextFlowRL.Training.Rollouts;
using TorchSharp;
using static TorchSharp.torch;

namespace NextFlowRL.Training;

/// <summary>The outcome of one update.</summary>
public sealed class StepResult
{
    /// <summary>0-based index of the step.</summary>
    public required int Step { get; init; }

    /// <summary>What the step optimized.</summary>
    public required UpdateKind Kind { get; init; }

    /// <summary>Health and progress metrics (see docs/training.md for each key).</summary>
    public required IReadOnlyDictionary<string, double> Metrics { get; init; }

    /// <summary>Some rollout images of this step with captions (prompt and reward), for sample grids.</summary>
    public required IReadOnlyList<(RgbImage Image, string Caption)> Samples { get; init; }
}

/// <summary>
/// GRPO for next-scale policies with VMR (prefix/suffix updates around a soft middle value), PANW (per-scale weights)
/// and Mask Propagation. One <see cref="RunStep"/> = one sampling pass and one update; everything random derives
/// from (seed, step), so a run resumed from a checkpoint continues exactly like an uninterrupted one.
/// </summary>
public sealed class GrpoTrainer : IDisposable
{
    private readonly TrainerOptions _o;
    private readonly INextScalePolicy _policy;
    private readonly INextScalePolicy? _reference;
    private readonly RewardEnsemble _rewards;
    private readonly PromptSet _prompts;
    private readonly ILogger _logger;
    private readonly TorchSharp.Modules.AdamW _optimizer;
    private readonly IReadOnlyList<TorchSharp.Modules.Parameter> _parameters;
    private readonly RssPeakSampler _rss;
    private readonly IRolloutExecutor _rollouts;

    /// <summary>
    /// Creates a trainer. <paramref name="reference"/> must be given when <c>KlBeta &gt; 0</c>. <paramref name="trainable"/>
    /// replaces the policy's own trainable parameters (LoRA: the adapters). <paramref name="rollouts"/> runs the rollouts and
    /// rewards (default: in this process, <see cref="LocalRollouts"/>, sharded by <c>Train:Cluster:ShardPrompts</c>); the
    /// trainer disposes it.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid options or split scale (all problems listed).</exception>
    public GrpoTrainer(TrainerOptions options, INextScalePolicy policy, INextScalePolicy? reference, RewardEnsemble rewards, PromptSet prompts, ILogger logger,
        IReadOnlyList<TorchSharp.Modules.Parameter>? trainable = null, IRolloutExecutor? rollouts = null)
    {
        _o = options ?? throw new ArgumentNullException(nameof(options));
        var errors = options.Validate();
        if (errors.Count > 0) throw new ArgumentException(string.Join("; ", errors));
        _policy = policy ?? throw new ArgumentNullException(nameof(policy));
        if (options.KlBeta > 0 && reference is null) throw new ArgumentException("KlBeta > 0 needs a reference policy.", nameof(reference));
        _reference = options.KlBeta > 0 ? reference : null;
        if (_reference is not null && _reference.Device.ToString() != policy.Device.ToString())
            throw new ArgumentException($"the reference policy is on {_reference.Device} but the policy is on {policy.Device}: both must live on one device", nameof(reference));
        if (options.LossDistribution == LossDistribution.Guided)
        {
            // Fail before any work (evaluation, rollouts) rather than at the first update.
            foreach (var p in new[] { policy, _reference }.OfType<INextScalePolicy>())
                if (!ImplementsGuidedLogProbs(p))
                    throw new NotSupportedException($"Train:LossDistribution=Guided needs guided log-probs, which policy '{p.Name}' does not compute; use Train:LossDistribution=Conditional");
        }
        _rewards = rewards;
        _prompts = prompts;
        _logger = logger;
        Split = options.Vmr.Schedule == AlternationSchedule.Joint ? -1 : Alternation.ResolveSplit(options.Vmr, policy.Schedule);
        CoarsePrefixSteps = Alternation.CoarsePrefixSteps(options.Vmr, options.Steps);
        _parameters = trainable ?? policy.TrainableParameters();
        if (_parameters.Count == 0) throw new ArgumentException($"policy '{policy.Name}' has no trainable parameters", nameof(policy));
        _optimizer = optim.AdamW(_parameters, options.LearningRate, options.Beta1, options.Beta2, 1e-8, options.WeightDecay);
        _policy.SetTraining(false); // no dropout: the loss's distribution must equal the sampler's
        _rss = new RssPeakSampler();
        _rollouts = rollouts ?? new LocalRollouts(rewards, options.Cluster.ShardPrompts, _rss);
    }

    /// <summary>The run's id in the <c>NextFlowRL.Training</c> meter's measurements (<see cref="TrainingTelemetry.RunTag"/>).</summary>
    public string RunId { get; init; } = Guid.NewGuid().ToString("N");

    /// <summary>The LoRA adapters being trained (their parameters are the trainable ones), for rollout executors that ship weights.</summary>
    public NextFlowRL.Torch.Adapters.LoraSet? Adapters { get; init; }

    /// <summary>The VMR split scale m, or -1 for joint (vanilla) training.</summary>
    public int Split { get; }

    /// <summary>
    /// The coarse schedule's phase boundary: passes before it are prefix passes. Fixed when the run starts (from
    /// <c>Steps</c>) and restored from a checkpoint, so a resumed run keeps its phases even with a changed step count.
    /// </summary>
    public int CoarsePrefixSteps { get; private set; }

    /// <summary>Completed steps.</summary>
    public int Step { get; private set; }

    /// <summary>The policy being trained.</summary>
    public INextScalePolicy Policy => _policy;

    /// <summary>
    /// Where the trainer's state lives, for checks and diagnostics: the devices of the trained parameters
    /// (<c>parameters</c>), of the reference (<c>reference</c>, absent without KL) and of every optimizer-state tensor
    /// (<c>optimizer</c>, empty before the first step).
    /// </summary>
    public IReadOnlyDictionary<string, IReadOnlySet<string>> TensorDevices()
    {
        var result = new Dictionary<string, IReadOnlySet<string>>
        {
            ["parameters"] = _parameters.Select(p => p.device.ToString()).ToHashSet(),
            ["optimizer"] = _optimizer.state_dict().State.OfType<TorchSharp.Modules.AdamW.State>()
                .SelectMany(st => new[] { st.exp_avg, st.exp_avg_sq }).OfType<Tensor>().Select(t => t.device.ToString()).ToHashSet(),
        };
        if (_reference is not null) result["reference"] = new HashSet<string> { _reference.Device.ToString() };
        return result;
    }

    /// <summary>
    /// Runs one sampling pass and the updates it feeds (<see cref="Alternation.UpdatesAt"/>). Synchronous on purpose: TorchSharp's dispose scopes are per thread, so all
    /// tensor work of a step stays on the calling thread; reward calls run on the thread pool, beside that work
    /// (<see cref="RolloutOptions.PipelineRewards"/>), and are waited for before the first loss.
    /// </summary>
    public StepResult RunStep(CancellationToken ct = default)
    {
        int s = Step;
        var kinds = Alternation.UpdatesAt(_o.Vmr, s, CoarsePrefixSteps);
        var metrics = new SortedDictionary<string, double>(StringComparer.Ordinal) { ["step"] = s + 1 };
        var clock = Stopwatch.StartNew();
        int G = _o.GroupSize, K = Split < 0 ? 1 : _o.Vmr.Continuations, P = _o.PromptsPerStep;
        var batch = _prompts.Batch(_o.Seed, s, P);
        long seed = Seeds.Mix(_o.Seed, s);
        var sampling = new SamplingOptions { Seed = seed, CfgScale = _o.Rollout.CfgScale, TopK = _o.Rollout.TopK, TopP = _o.Rollout.TopP, Temperature = _o.Rollout.Temperature };

        using var scope = NewDisposeScope();
        _rss.TakePeak();

        // 1-2. Rollouts and rewards: G per prompt; with VMR each prefix gets K continuations (the first is the sampled
        //      trajectory itself); a policy on the shared sampler also reports the sampler's own log-probs, for the parity
        //      monitor. Here or on cluster workers, shard by shard: every draw depends on (seed, step, prompt, sample) only.
        var request = new RolloutRequest
        {
            Step = s, StepSeed = seed, Prompts = batch, GroupSize = G, Continuations = K, Split = Split, Sampling = sampling,
            RecordLogProbs = true, RecordGuided = _o.LossDistribution == LossDistribution.Guided, Adapters = Adapters,
            PipelineRewards = _o.Rollout.PipelineRewards,
        };
        using var rollouts = _rollouts.Run(request, _policy, ct);
        var (first, all, images) = (rollouts.First, rollouts.All, rollouts.Images);
        int N = all.Count; // P*G*K complete trajectories; row r belongs to prefix r/K and prompt r/(G*K)
        metrics["time_rollout"] = rollouts.SampleSeconds;
        foreach (var (key, value) in rollouts.Extra) metrics[key] = value;
        if (rollouts.Recorded is not null) ParityMonitor(first, rollouts.Recorded, metrics);
        // What the executor did not measure (joining shards, the parity monitor, all of a remote phase) counts as rollout.
        metrics["rss_peak_rollout_mb"] = Math.Max(metrics.GetValueOrDefault("rss_peak_rollout_mb"), _rss.TakePeak() / 1e6);

        // 3. Updates. What needs no reward runs while the last rewards are scored (RolloutRequest.PipelineRewards): each
        //    update's rows, the reference's log-probs and the old log-probs of every update after the first, taken now,
        //    before any optimizer step of this pass.
        var updateClock = Stopwatch.StartNew();
        foreach (var part in UpdateParts) metrics[part] = 0;
        var rows = kinds.Select(kind => PlanRows(kind, first, all)).ToList();
        var partClock = Stopwatch.StartNew();
        var reference = rows.Select(r => _reference is null ? null : DetachedLogProbs(_reference, r)).ToList();
        metrics["time_update_reference"] = partClock.Elapsed.TotalSeconds;
        partClock.Restart();
        var presetOld = rows.Select((r, i) => i == 0 ? null : DetachedLogProbs(_policy, r)).ToList();
        metrics["time_update_old"] = partClock.Elapsed.TotalSeconds;
        double rewardFree = updateClock.Elapsed.TotalSeconds;

        var scores = rollouts.Scores;
        metrics["time_reward"] = rollouts.RewardSeconds;
        metrics["time_reward_wait"] = rollouts.RewardWaitSeconds;
        metrics["time_reward_overlap"] = rollouts.RewardSeconds > 0 ? Math.Clamp(1 - rollouts.RewardWaitSeconds / rollouts.RewardSeconds, 0, 1) : 0;
        metrics["rss_peak_reward_mb"] = Math.Max(metrics.GetValueOrDefault("rss_peak_reward_mb"), _rss.TakePeak() / 1e6);
        updateClock.Restart();

        var groupPrompts = batch.SelectMany(p => Enumerable.Repeat(p, G)).ToList(); // P*G prefixes / trajectories
        var promptGroups = Enumerable.Range(0, P).Select(p => (IReadOnlyList<int>)Enumerable.Range(p * G * K, G * K).ToList()).ToList();
        var R = _rewards.Combine(scores, _o.Aggregation, promptGroups, _o.AdvantageEpsilon);
        AddRewardMetrics(metrics, scores, R);

        var finest = FinestMasks(images, scores);
        var plans = kinds.Select((kind, i) => BuildPlan(kind, rows[i], R, finest, promptGroups, P, G, K)).ToList();
        for (int i = 0; i < plans.Count; i++)
        {
            string key = i == 0 ? "" : plans[i].Kind.ToString().ToLowerInvariant() + "/";
            AddPlanMetrics(plans[i], metrics, key);
            Update(plans[i], metrics, key, presetOld[i], reference[i]);
        }
        metrics["updates"] = plans.Count;
        metrics["updates_per_image"] = plans.Count / (double)N;
        metrics["time_update"] = rewardFree + updateClock.Elapsed.TotalSeconds;
        metrics["rss_peak_update_mb"] = _rss.TakePeak() / 1e6;
        metrics["time_step"] = clock.Elapsed.TotalSeconds;
        metrics["images_per_s"] = N / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
        metrics["phase"] = (double)kinds[0];

        var shown = Enumerable.Range(0, Math.Min(N, 8))
            .Select(r => (images[r], $"{Shorten(groupPrompts[r / K].Prompt)} | R={(double.IsFinite(R[r]) ? R[r].ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) : "-")}"))
            .ToList();
        Step = s + 1;
        NativeHeap.Trim(); // the step's tensors are freed; hand their pages back before the next one
        TrainingTelemetry.Publish(RunId, metrics);
        return new StepResult { Step = s, Kind = kinds[0], Metrics = metrics, Samples = shown };
    }

    /// <summary>
    /// Whether a step metric measures the machine (wall times, throughput, resident memory) rather than the run: these
    /// differ between two runs with the same seed; every other metric is reproducible.
    /// </summary>
    public static bool IsMachineMetric(string key) =>
        key.StartsWith("time_", StringComparison.Ordinal) || key.StartsWith("rss_", StringComparison.Ordinal) || key.StartsWith("cluster_", StringComparison.Ordinal) || key == "images_per_s";

    /// <summary>The update's parts timed in every step's metrics (seconds, summed over the step's updates), beside <c>time_update_old</c>.</summary>
    public static readonly string[] UpdateParts = ["time_update_reference", "time_update_forward", "time_update_loss", "time_update_backward", "time_update_optimizer"];

    /// <summary>Rows of the parity monitor: the sampler's log-probs are compared with teacher-forced ones on this many rows.</summary>
    public const int ParityRows = 4;

    /// <summary>
    /// The true train/rollout mismatch: the largest and mean |sampler log-prob - teacher-forced log-prob| of the loss's
    /// distribution over all scales of the first <see cref="ParityRows"/> rows (0 up to float noise when the trainer
    /// scores exactly what the sampler drew from).
    /// </summary>
    private void ParityMonitor(TokenTrajectories first, IReadOnlyList<Tensor> recorded, SortedDictionary<string, double> metrics)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        int n = Math.Min(ParityRows, first.Count);
        using var rows = first.Select(Enumerable.Range(0, n).ToList());
        var forced = LossLogProbs(_policy, rows, 0, _policy.Schedule.Count);
        double max = 0, sum = 0, count = 0;
        for (int t = 0; t < forced.Count; t++)
        {
            var d = (recorded[t].narrow(0, 0, n).to(forced[t].device) - forced[t]).abs().to(ScalarType.Float64);
            max = Math.Max(max, d.max().item<double>());
            sum += d.sum().item<double>();
            count += d.numel();
        }
        metrics["parity_max_dev"] = max;
        metrics["parity_mean_dev"] = count > 0 ? sum / count : 0;
    }

    /// <summary>One update's data: rows, their returns, groups, finest-grid masks and the scale range.</summary>
    private sealed record UpdatePlan(UpdateKind Kind, TokenTrajectories Rows, double[] Rewards, IReadOnlyList<IReadOnlyList<int>> Groups,
        float[][,] Masks, MaskPropagation.FallbackCounts Fallbacks, int FirstScale, int EndScale);

    /// <summary>
    /// Builds the plan of one update from a pass: joint and suffix updates train every trajectory on its reward, grouped
    /// by prompt (all G*K continuations); the prefix update trains the G prefixes of a prompt on their soft middle values,
    /// with the union of the continuations' masks. Rows without a region fall back to their group's union.
    /// </summary>
    private UpdatePlan BuildPlan(UpdateKind kind, UpdateRows rows, double[] R, IReadOnlyList<float[,]?> finest,
        IReadOnlyList<IReadOnlyList<int>> promptGroups, int P, int G, int K)
    {
        var final = _policy.Schedule.Final;
        double[] rewards;
        IReadOnlyList<IReadOnlyList<int>> groups;
        float[,]?[] own;
        if (kind == UpdateKind.Prefix)
        {
            double eta = _o.Vmr.TieEtaToKlBeta ? _o.KlBeta : _o.Vmr.Eta;
            rewards = Enumerable.Range(0, P * G).Select(i => GrpoMath.SoftValue(R.Skip(i * K).Take(K).ToList(), eta)).ToArray();
            groups = Enumerable.Range(0, P).Select(p => (IReadOnlyList<int>)Enumerable.Range(p * G, G).ToList()).ToList();
            own = Enumerable.Range(0, P * G)
                .Select(i => MaskPropagation.Union(Enumerable.Range(i * K, K).Where(r => double.IsFinite(R[r])).Select(r => finest[r])))
                .ToArray();
        }
        else
        {
            rewards = R;
            groups = promptGroups;
            own = finest.ToArray();
        }
        var valid = rewards.Select(double.IsFinite).ToArray();
        float[][,] masks;
        MaskPropagation.FallbackCounts counts;
        if (_o.Mask.Enabled)
        {
            (masks, counts) = MaskPropagation.WithGroupFallback(own, valid, groups, final);
        }
        else
        {
            masks = valid.Select(v => MaskPropagation.Filled(final, v ? 1 : 0)).ToArray();
            counts = new MaskPropagation.FallbackCounts(0, 0, valid.Count(v => v));
        }
        return new UpdatePlan(kind, rows.Rows, rewards, groups, masks, counts, rows.FirstScale, rows.EndScale);
    }

    /// <summary>The trajectories and scales one update trains: what an update needs that no reward decides.</summary>
    private sealed record UpdateRows(TokenTrajectories Rows, int FirstScale, int EndScale);

    /// <summary>
    /// Joint and suffix updates train every complete trajectory (suffix: from the split on), the prefix update the
    /// first trajectories' prefixes.
    /// </summary>
    private UpdateRows PlanRows(UpdateKind kind, TokenTrajectories first, TokenTrajectories all) => kind switch
    {
        UpdateKind.Prefix => new(first.Prefix(Split), 0, Split),
        UpdateKind.Suffix => new(all, Split, _policy.Schedule.Count),
        _ => new(all, 0, _policy.Schedule.Count),
    };

    private void AddPlanMetrics(UpdatePlan plan, SortedDictionary<string, double> metrics, string key)
    {
        var c = plan.Fallbacks;
        double validRows = Math.Max(c.Valid, 1);
        metrics[key + "mask_fallback_ratio"] = _o.Mask.Enabled ? (c.Group + c.Ones) / validRows : 0;
        metrics[key + "mask_fallback_group_ratio"] = _o.Mask.Enabled ? c.Group / validRows : 0;
        metrics[key + "mask_fallback_ones_ratio"] = _o.Mask.Enabled ? c.Ones / validRows : 0;
        if (plan.Kind == UpdateKind.Prefix)
            metrics[key + "middle_value_mean"] = plan.Rewards.Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average();
    }

    private static string Shorten(string prompt) => prompt.Length > 40 ? prompt[..37] + "..." : prompt;

    private void AddRewardMetrics(SortedDictionary<string, double> metrics, EnsembleScores scores, double[] combined)
    {
        var valid = combined.Where(double.IsFinite).ToList();
        metrics["reward_mean"] = valid.Count > 0 ? valid.Average() : double.NaN;
        metrics["reward_std"] = valid.Count > 1 ? Math.Sqrt(valid.Sum(v => (v - valid.Average()) * (v - valid.Average())) / valid.Count) : 0;
        metrics["dropped"] = scores.Dropped.Count(d => d);
        metrics["reward_retries"] = scores.Retries;
        foreach (var (name, results) in scores.PerReward)
        {
            var ok = results.Where(r => r.IsValid).ToList();
            metrics[$"{name}/score"] = ok.Count > 0 ? ok.Average(r => r.Score) : double.NaN;
            foreach (var k in ok.SelectMany(r => r.Components.Keys).Distinct())
                metrics[$"{name}/{k}"] = ok.Where(r => r.Components.ContainsKey(k)).Average(r => r.Components[k]);
        }
    }

    /// <summary>Finest-grid masks of every trajectory from the union of all rewards' regions; null where there is no region (or MP is off).</summary>
    private float[,]?[] FinestMasks(IReadOnlyList<RgbImage> images, EnsembleScores scores)
    {
        var final = _policy.Schedule.Final;
        var masks = new float[,]?[images.Count];
        if (!_o.Mask.Enabled) return masks;
        for (int r = 0; r < images.Count; r++)
        {
            var regions = scores.PerReward.Values.SelectMany(v => v[r].Regions).ToList();
            masks[r] = MaskPropagation.FinestMask(regions, images[r].Width, images[r].Height, final, _o.Mask.Dilate, _o.Mask.IncludeUnmatchedRegions);
        }
        return masks;
    }

    private List<int[]> Chunks(int rows) => Enumerable.Range(0, rows).Chunk(_o.MicroBatch).ToList();

    /// <summary>
    /// Detached loss-distribution log-probs of an update's rows per micro-batch under <paramref name="policy"/>: the
    /// reference's (KL), or the policy's own before any optimizer step of the pass (the old log-probs of a later update).
    /// </summary>
    private Tensor[][] DetachedLogProbs(INextScalePolicy policy, UpdateRows rows)
    {
        using var _ = no_grad();
        var result = new List<Tensor[]>();
        foreach (var c in Chunks(rows.Rows.Count))
        {
            using var sub = rows.Rows.Select(c);
            result.Add(LossLogProbs(policy, sub, rows.FirstScale, rows.EndScale).Select(x => x.detach()).ToArray());
        }
        return result.ToArray();
    }

    private void Update(UpdatePlan plan, SortedDictionary<string, double> metrics, string key, Tensor[][]? presetOld, Tensor[][]? reference)
    {
        var schedule = _policy.Schedule;
        var device = _policy.Device;
        var rows = plan.Rows;
        int n = rows.Count, firstScale = plan.FirstScale, endScale = plan.EndScale;
        var final = schedule.Final;

        var advantages = new double[n];
        int zeroStd = 0;
        foreach (var group in plan.Groups)
        {
            var (groupAdvantages, isZero) = GrpoMath.GroupAdvantages(group.Select(i => plan.Rewards[i]).ToList(), _o.AdvantageEpsilon);
            if (isZero) zeroStd++;
            for (int k = 0; k < group.Count; k++) advantages[group[k]] = groupAdvantages[k];
        }
        metrics[key + "zero_std_ratio"] = (double)zeroStd / plan.Groups.Count;
        metrics[key + "advantage_abs_mean"] = advantages.Select(Math.Abs).Average();

        var flat = new float[n * final.Height * final.Width];
        for (int r = 0; r < n; r++)
        {
            bool valid = double.IsFinite(plan.Rewards[r]);
            for (int i = 0; i < final.Height; i++)
                for (int j = 0; j < final.Width; j++)
                    flat[(r * final.Height + i) * final.Width + j] = valid ? plan.Masks[r][i, j] : 0f;
        }
        using var finest = tensor(flat, [n, final.Height, final.Width], device: device);
        var all = MaskPropagation.Propagate(finest, schedule, _o.Mask.DilateEveryScale);
        var masks = all[firstScale..endScale];
        foreach (var m in all[..firstScale].Concat(all[endScale..])) m.Dispose();
        var weights = Enumerable.Range(firstScale, endScale - firstScale).Select(t => GrpoMath.PanwWeight(schedule[t].Tokens, _o.Alpha)).ToArray();
        double denominator = 0;
        for (int t = 0; t < masks.Length; t++) denominator += weights[t] * masks[t].sum().item<float>();
        metrics[key + "active_tokens"] = masks.Sum(m => m.sum().item<float>());
        using var adv = tensor(advantages.Select(a => (float)a).ToArray(), device: device);
        if (denominator <= 0)
        {
            metrics[key + "update_skipped"] = 1;
            _logger.LogWarning("Step {Step}: no valid samples or active tokens for the {Kind} update; update skipped", Step + 1, plan.Kind);
            foreach (var m in masks) m.Dispose();
            return;
        }

        var chunks = Chunks(n);
        var chunkRows = chunks.Select(c => rows.Select(c)).ToList();
        try
        {
            // Old log-probs: given (a later update of the pass, taken before its first optimizer step), or those of the
            // policy as it is now: the first inner epoch's forward pass runs before any optimizer step of this update, so
            // its detached log-probs are exactly those (the first inner step's ratio is exactly 1) without a separate pass.
            var old = presetOld ?? new Tensor[chunks.Count][];
            var partClock = Stopwatch.StartNew();

            // Statistics accumulate on the device and are read once per update (no host sync per scale and chunk):
            // sum of ratios, of squared ratios, active tokens, clipped tokens (all epochs); KL and token probability
            // sums (first epoch); largest |ratio - 1| of the first epoch.
            using var stats = zeros(6, dtype: ScalarType.Float64, device: device);
            using var firstMaxDev = zeros(1, dtype: ScalarType.Float64, device: device);
            double lossSum = 0, gradNorm = 0;
            int nanSkipped = 0;
            for (int epoch = 0; epoch < _o.InnerEpochs; epoch++)
            {
                _optimizer.zero_grad();
                using var epochLossSum = zeros([], dtype: ScalarType.Float64, device: device);
                for (int c = 0; c < chunks.Count; c++)
                {
                    using var inner = NewDisposeScope();
                    using var idx = tensor(chunks[c].Select(i => (long)i).ToArray(), device: device);
                    partClock.Restart();
                    var logps = LossLogProbs(_policy, chunkRows[c], firstScale, endScale);
                    metrics["time_update_forward"] += partClock.Elapsed.TotalSeconds;
                    partClock.Restart();
                    if (epoch == 0 && presetOld is null) old[c] = logps.Select(x => x.detach().MoveToOuterDisposeScope()).ToArray();
                    var a = adv.index_select(0, idx).view(-1, 1, 1);
                    Tensor? numerator = null;
                    for (int t = 0; t < logps.Count; t++)
                    {
                        var mask = masks[t].index_select(0, idx);
                        var (l, ratio) = GrpoMath.ClippedSurrogate(logps[t], old[c][t], a, _o.ClipEpsilon);
                        Tensor? kl = null;
                        if (reference is not null)
                        {
                            kl = GrpoMath.KlK3(logps[t], reference[c][t]);
                            l = l + _o.KlBeta * kl;
                        }
                        var term = GrpoMath.MaskedSum(l, mask) * weights[t];
                        numerator = numerator is null ? term : numerator + term;
                        using (no_grad())
                        {
                            var on = mask > 0;
                            var active = on.to(ScalarType.Float64);
                            var dev = where(on, ratio.detach().to(ScalarType.Float64) - 1, zeros_like(active));
                            var r = where(on, dev + 1, zeros_like(active));
                            // KL and token probability are first-epoch statistics: later epochs add zeros, not computed sums.
                            var none = zeros([], dtype: ScalarType.Float64, device: device);
                            var klTerm = epoch == 0 && kl is not null ? GrpoMath.MaskedSum(kl.detach().to(ScalarType.Float64), mask) : none;
                            var probTerm = epoch == 0 ? GrpoMath.MaskedSum(old[c][t].exp().to(ScalarType.Float64), mask) : none;
                            stats.add_(stack([
                                r.sum(), (r * r).sum(), active.sum(), (dev.abs() > _o.ClipEpsilon).to(ScalarType.Float64).sum(),
                                klTerm, probTerm]));
                            if (epoch == 0) firstMaxDev.copy_(maximum(firstMaxDev, dev.abs().max().view(1)));
                        }
                    }
                    var loss = numerator! / denominator;
                    metrics["time_update_loss"] += partClock.Elapsed.TotalSeconds;
                    partClock.Restart();
                    loss.backward();
                    epochLossSum.add_(loss.detach().to(ScalarType.Float64));
                    metrics["time_update_backward"] += partClock.Elapsed.TotalSeconds;
                }
                double epochLoss = epochLossSum.item<double>();
                gradNorm = nn.utils.clip_grad_norm_(_parameters, _o.MaxGradNorm > 0 ? _o.MaxGradNorm : double.PositiveInfinity);
                if (!double.IsFinite(epochLoss) || !double.IsFinite(gradNorm))
                {
                    nanSkipped++;
                    _logger.LogWarning("Step {Step}: non-finite loss ({Loss}) or gradient norm ({Norm}); optimizer step skipped", Step + 1, epochLoss, gradNorm);
                    _optimizer.zero_grad();
                    continue;
                }
                partClock.Restart();
                _optimizer.step();
                metrics["time_update_optimizer"] += partClock.Elapsed.TotalSeconds;
                lossSum += epochLoss;
            }
            using var onHost = stats.cpu();
            var s = onHost.data<double>().ToArray();
            double ratioSum = s[0], ratioSq = s[1], count = s[2], clipped = s[3], klSum = s[4], probSum = s[5];
            double mean = count > 0 ? ratioSum / count : 1;
            metrics[key + "loss"] = lossSum / _o.InnerEpochs;
            metrics[key + "ratio_mean"] = mean;
            metrics[key + "ratio_std"] = count > 0 ? Math.Sqrt(Math.Max(0, ratioSq / count - mean * mean)) : 0;
            metrics[key + "clip_frac"] = count > 0 ? clipped / count : 0;
            // With given old log-probs (a later update of the pass) the first epoch already sees the earlier update's step.
            metrics[key + "ratio_first_epoch_max_dev"] = firstMaxDev.item<double>();
            metrics[key + "kl"] = _reference is null ? 0 : klSum / Math.Max(metrics[key + "active_tokens"], 1);
            metrics[key + "token_prob"] = probSum / Math.Max(metrics[key + "active_tokens"], 1);
            metrics[key + "grad_norm"] = gradNorm;
            metrics[key + "nan_skipped"] = nanSkipped;
        }
        finally
        {
            foreach (var sub in chunkRows) sub.Dispose();
            foreach (var m in masks) m.Dispose();
        }
    }

    /// <summary>Whether the policy's class implements <see cref="INextScalePolicy.GuidedLogProbs"/> rather than keeping the contract's default.</summary>
    private static bool ImplementsGuidedLogProbs(INextScalePolicy policy)
    {
        var contract = typeof(INextScalePolicy);
        var map = policy.GetType().GetInterfaceMap(contract);
        int i = Array.FindIndex(map.InterfaceMethods, m => m.Name == nameof(INextScalePolicy.GuidedLogProbs));
        return i >= 0 && map.TargetMethods[i].DeclaringType != contract;
    }

    /// <summary>Teacher-forced log-probs under <see cref="TrainerOptions.LossDistribution"/>.</summary>
    private IReadOnlyList<Tensor> LossLogProbs(INextScalePolicy policy, TokenTrajectories rows, int firstScale, int endScale) =>
        _o.LossDistribution == LossDistribution.Guided
            ? policy.GuidedLogProbs(rows, firstScale, endScale, new SamplingOptions { CfgScale = _o.Rollout.CfgScale, Temperature = _o.Rollout.Temperature })
            : policy.LogProbs(rows, firstScale, endScale);

    /// <summary>Writes the optimizer state and the step counter into <paramref name="directory"/> (the caller saves the policies).</summary>
    public void SaveState(string directory)
    {
        Directory.CreateDirectory(directory);
        _optimizer.save_state_dict(Path.Combine(directory, "optimizer.bin"));
        var state = new TrainerState(TrainerState.CurrentFormat, Step, (int)Alternation.UpdatesAt(_o.Vmr, Step, CoarsePrefixSteps)[0], (long)Step * _o.PromptsPerStep, _o.Seed, Split, CoarsePrefixSteps);
        AtomicFile.WriteAllText(Path.Combine(directory, "trainer.json"), JsonSerializer.Serialize(state, TrainerState.Json));
    }

    /// <summary>Restores what <see cref="SaveState"/> wrote.</summary>
    /// <exception cref="InvalidDataException">Missing, corrupt or incompatible state; the message says which.</exception>
    public void LoadState(string directory)
    {
        var statePath = Path.Combine(directory, "trainer.json");
        var optimizerPath = Path.Combine(directory, "optimizer.bin");
        if (!File.Exists(statePath) || !File.Exists(optimizerPath))
            throw new InvalidDataException($"checkpoint '{directory}' is incomplete: trainer.json or optimizer.bin missing");
        TrainerState state;
        try
        {
            state = JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(statePath), TrainerState.Json)
                ?? throw new InvalidDataException("empty");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"checkpoint '{directory}': trainer.json is corrupt ({e.Message})");
        }
        if (state.Format is < 1 or > TrainerState.CurrentFormat)
            throw new InvalidDataException($"checkpoint '{directory}' has format {state.Format}; this version reads formats 1-{TrainerState.CurrentFormat}");
        if (state.Seed != _o.Seed || state.Split != Split)
            throw new InvalidDataException($"checkpoint '{directory}' was written with seed {state.Seed} and split {state.Split}, this run has seed {_o.Seed} and split {Split}");
        try
        {
            _optimizer.load_state_dict(optimizerPath);
        }
        catch (Exception e) when (e is not InvalidDataException)
        {
            throw new InvalidDataException($"checkpoint '{directory}': optimizer.bin does not match this policy's parameters ({e.Message.ReplaceLineEndings(" ")})", e);
        }
        Step = state.Step;
        if (_o.Vmr.Schedule == AlternationSchedule.Coarse)
        {
            if (state.Format < 2 || state.CoarsePrefixSteps is null)
            {
                _logger.LogWarning("Checkpoint '{Dir}' predates saved coarse phases; the phase boundary is taken from the current Steps ({Boundary} prefix passes of {Steps})", directory, CoarsePrefixSteps, _o.Steps);
            }
            else if (state.CoarsePrefixSteps.Value != CoarsePrefixSteps)
            {
                _logger.LogWarning("Coarse schedule: the run started with {Saved} prefix passes; --steps {Steps} would give {Now}. The saved boundary is kept: later passes are suffix passes", state.CoarsePrefixSteps.Value, _o.Steps, CoarsePrefixSteps);
                CoarsePrefixSteps = state.CoarsePrefixSteps.Value;
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _optimizer.Dispose();
        _rss.Dispose();
        _rollouts.Dispose();
    }
}

/// <summary>What a checkpoint records about the trainer besides weights and optimizer moments.</summary>
/// <param name="Format">Checkpoint format (2 adds <paramref name="CoarsePrefixSteps"/>).</param>
/// <param name="Step">Completed steps.</param>
/// <param name="Phase">The first update kind of the next pass.</param>
/// <param name="DataPosition">Prompts consumed.</param>
/// <param name="Seed">Run seed.</param>
/// <param name="Split">VMR split scale (-1 = joint).</param>
/// <param name="CoarsePrefixSteps">The coarse schedule's phase boundary fixed at the run's start (null in format 1).</param>
public sealed record TrainerState(int Format, int Step, int Phase, long DataPosition, long Seed, int Split, int? CoarsePrefixSteps = null)
{
    /// <summary>The checkpoint format this version writes.</summary>
    public const int CurrentFormat = 2;

    internal static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };
}
