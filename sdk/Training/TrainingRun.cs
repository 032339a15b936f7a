using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using NextFlowRL.Imaging;
using NextFlowRL.Policies;
using NextFlowRL.Rewards;
using NextFlowRL.Torch.Adapters;

namespace NextFlowRL.Training;

/// <summary>What a training run needs besides its options.</summary>
public sealed class TrainingRunRequest
{
    /// <summary>The run's options (for a resumed run: those saved in the run folder).</summary>
    public required TrainerOptions Options { get; init; }

    /// <summary>The run directory.</summary>
    public required string OutDir { get; init; }

    /// <summary>Continue from the run directory's latest checkpoint.</summary>
    public bool Resume { get; init; }

    /// <summary>Creates policies (named by <see cref="TrainerOptions.Policy"/>).</summary>
    public required IPolicyProvider PolicyProvider { get; init; }

    /// <summary>Finds a reward by name.</summary>
    public required Func<string, IRewardModel> ResolveReward { get; init; }

    /// <summary>Logs warnings (reward retries, skipped steps).</summary>
    public required ILogger Logger { get; init; }

    /// <summary>Called after every step.</summary>
    public Action<StepResult>? OnStep { get; init; }

    /// <summary>Called when a phase starts (e.g. "evaluating 64 held-out prompts").</summary>
    public Action<string>? OnStatus { get; init; }

    /// <summary>
    /// Where the steps' rollouts and rewards run (e.g. workers of a cluster); null: in this process
    /// (<see cref="Rollouts.LocalRollouts"/>). The run's trainer disposes it when the run ends.
    /// </summary>
    public Rollouts.IRolloutExecutor? Rollouts { get; init; }
}

/// <summary>The outcome of a run.</summary>
/// <param name="RunDir">The run directory.</param>
/// <param name="CompletedSteps">Steps completed (over all sessions of the run).</param>
/// <param name="Before">Held-out metrics before training (null when not evaluated).</param>
/// <param name="After">Held-out metrics after training (null when not evaluated or cancelled).</param>
/// <param name="Elapsed">Wall time of this session.</param>
/// <param name="Cancelled">True when stopped early (a checkpoint was written).</param>
public sealed record TrainingSummary(string RunDir, int CompletedSteps, IReadOnlyDictionary<string, double>? Before, IReadOnlyDictionary<string, double>? After, TimeSpan Elapsed, bool Cancelled)
{
    /// <summary>After minus before on the same prompts and evaluation seeds, with bootstrap 95% intervals (null without both evaluations).</summary>
    public IReadOnlyDictionary<string, Evidence.Interval>? Delta { get; init; }
}

/// <summary>
/// A whole training run: evaluation before, the steps with logs, sample grids and periodic atomic checkpoints,
/// a checkpoint on cancellation, evaluation after, and the curves plot.
/// </summary>
public static class TrainingRun
{
    /// <summary>
    /// Curves drawn into curves.png when present: the reward mean and spread, each reward's score, the run's
    /// <see cref="TrainerOptions.PlotMetrics"/>, then the health metrics and the step time.
    /// </summary>
    public static IReadOnlyList<string> PlottedMetrics(TrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return ((string[])["reward_mean", "reward_std", .. options.Rewards.Select(r => $"{r.Name}/score"), .. options.PlotMetrics,
            "kl", "clip_frac", "grad_norm", "zero_std_ratio", "time_step"]).Distinct(StringComparer.Ordinal).ToList();
    }

    /// <summary>Runs (or resumes) a training run.</summary>
    /// <exception cref="InvalidDataException">A corrupt or incompatible checkpoint or prompt file (one clear message).</exception>
    public static async Task<TrainingSummary> RunAsync(TrainingRunRequest request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        var o = request.Options;
        var clock = Stopwatch.StartNew();
        if (o.Threads > 0) TorchSharp.torch.set_num_threads(o.Threads);
        using var folder = new RunFolder(request.OutDir);
        var checkpoints = new CheckpointStore(folder.PathOf("checkpoints"), o.KeepCheckpoints);
        string? resumeFrom = null;
        if (request.Resume)
        {
            resumeFrom = checkpoints.Latest() ?? throw new InvalidDataException($"'{folder.Directory}' has no checkpoint to resume from");
        }
        else if (checkpoints.Latest() is not null)
        {
            throw new InvalidDataException($"'{folder.Directory}' already holds a run; resume it with --resume or choose another --out");
        }
        folder.WriteJson("config.json", o);

        var prompts = PromptSet.Load(o.TrainPrompts!);
        var evalPrompts = o.Evaluate && o.EvalPrompts is not null ? PromptSet.Load(o.EvalPrompts).Records : null;
        if (evalPrompts is not null && o.EvalLimit > 0) evalPrompts = evalPrompts.Take(o.EvalLimit).ToList();
        var rewards = new RewardEnsemble(o.Rewards.Select(r => (r, request.ResolveReward(r.Name))).ToList(), request.Logger);

        request.OnStatus?.Invoke(resumeFrom is null ? $"loading policy '{o.Policy}'" : $"resuming from {resumeFrom}");
        bool useLora = o.Lora.Rank > 0;
        // LoRA checkpoints hold the adapters only: the policy is always the base checkpoint, the adapters come on top.
        using var policy = request.PolicyProvider.Load(resumeFrom is null || useLora ? o.Checkpoint : Path.Combine(resumeFrom, "policy"));
        using var lora = useLora ? AttachLora(policy, o, resumeFrom) : null;
        INextScalePolicy? reference = null;
        try
        {
            if (o.KlBeta > 0)
            {
                if (lora is not null)
                {
                    reference = new AdaptersOffPolicy(policy);
                }
                else if (resumeFrom is null)
                {
                    reference = policy.CreateFrozenCopy();
                }
                else
                {
                    using var loaded = request.PolicyProvider.Load(Path.Combine(resumeFrom, "reference"));
                    reference = loaded.CreateFrozenCopy();
                }
            }
            using var trainer = new GrpoTrainer(o, policy, reference, rewards, prompts, request.Logger, lora?.Parameters(), request.Rollouts) { Adapters = lora };
            if (resumeFrom is not null) trainer.LoadState(resumeFrom);
            folder.LoadMetrics(trainer.Step);
            // The run folder writes what the NextFlowRL.Training meter publishes (the values an OpenTelemetry exporter sees).
            using var telemetry = new TrainingTelemetry.StepListener(trainer.RunId);

            // The evaluation seed does not depend on the training seed: every run is evaluated on the same images' streams.
            var sampling = new SamplingOptions { Seed = o.EvalSeed, CfgScale = o.Rollout.CfgScale, TopK = o.Rollout.TopK, TopP = o.Rollout.TopP, Temperature = o.Rollout.Temperature };
            var evalReward = rewards.Rewards[0].Model;
            var (before, beforeSet) = ReadEval(folder, "eval_before.json");
            if (evalPrompts is not null && before is null && o.EvaluateBefore)
            {
                request.OnStatus?.Invoke($"evaluating {evalPrompts.Count} held-out prompts x {o.EvalImagesPerPrompt} images before training");
                (before, beforeSet) = await EvaluateAsync(folder, "before", policy, evalReward, evalPrompts, sampling, o, ct);
            }

            bool cancelled = false;
            int lastSaved = trainer.Step;
            try
            {
                while (trainer.Step < o.Steps)
                {
                    var result = trainer.RunStep(ct);
                    folder.AppendMetrics(telemetry.Take(trainer.Step)
                        ?? throw new InvalidOperationException($"step {trainer.Step}: no measurements heard from the {TrainingTelemetry.MeterName} meter"));
                    int done = trainer.Step;
                    if (o.SampleEvery > 0 && (done % o.SampleEvery == 0 || done == 1))
                        folder.WriteGrid($"step-{done:D6}", result.Samples);
                    if (o.CheckpointEvery > 0 && done % o.CheckpointEvery == 0 && done < o.Steps)
                    {
                        checkpoints.Save(done, policy, reference, trainer, lora);
                        lastSaved = done;
                    }
                    request.OnStep?.Invoke(result);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                cancelled = true;
            }
            if (trainer.Step != lastSaved || checkpoints.Latest() is null)
                checkpoints.Save(trainer.Step, policy, reference, trainer, lora);
            folder.WriteCurves(PlottedMetrics(o));
            if (cancelled)
            {
                WriteReport(folder, request);
                return new TrainingSummary(folder.Directory, trainer.Step, before, null, clock.Elapsed, true);
            }

            IReadOnlyDictionary<string, double>? after = null;
            IReadOnlyDictionary<string, Evidence.Interval>? delta = null;
            if (evalPrompts is not null)
            {
                request.OnStatus?.Invoke($"evaluating {evalPrompts.Count} held-out prompts x {o.EvalImagesPerPrompt} images after training");
                (after, var afterSet) = await EvaluateAsync(folder, "after", policy, evalReward, evalPrompts, sampling, o, ct);
                // The same prompts and evaluation seeds before and after: the paired difference, resampling prompts.
                if (beforeSet is not null && afterSet.SameLayout(beforeSet) && evalPrompts.Count > 1)
                    delta = Evidence.Bootstrap.PairedDifference(evalReward, afterSet, beforeSet, o.BootstrapResamples, o.EvalSeed);
            }
            folder.WriteJson("summary.json", new
            {
                steps = trainer.Step,
                before,
                after,
                delta = delta?.ToDictionary(kv => kv.Key, kv => new[] { kv.Value.Estimate, kv.Value.Low, kv.Value.High }),
                elapsed_seconds = clock.Elapsed.TotalSeconds,
            });
            WriteReport(folder, request);
            return new TrainingSummary(folder.Directory, trainer.Step, before, after, clock.Elapsed, false) { Delta = delta };
        }
        finally
        {
            reference?.Dispose();
        }
    }

    /// <summary>
    /// Writes the run's <c>report.html</c>. The run's results are already on disk, so a report that cannot be written is
    /// a warning naming the rebuild command, not a failed run.
    /// </summary>
    private static void WriteReport(RunFolder folder, TrainingRunRequest request)
    {
        try
        {
            var path = Reporting.RunReport.Write(folder.Directory);
            request.OnStatus?.Invoke($"report: {path}");
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            request.Logger.LogWarning("report.html not written ({Reason}); rebuild it with: nextflow-rl report {Run}", e.Message, folder.Directory);
        }
    }

    /// <summary>The metrics and the scored set of an evaluation file (nulls when missing or unreadable).</summary>
    public static (IReadOnlyDictionary<string, double>? Metrics, Evidence.ScoredSet? Set) ReadEval(RunFolder folder, string name)
    {
        ArgumentNullException.ThrowIfNull(folder);
        return ReadEvalFile(folder.PathOf(name));
    }

    /// <summary>The metrics and the scored set of an <c>eval_*.json</c> file (nulls when missing or unreadable; <see cref="EvalFile"/>).</summary>
    public static (IReadOnlyDictionary<string, double>? Metrics, Evidence.ScoredSet? Set) ReadEvalFile(string path)
    {
        try
        {
            var file = EvalFile.Read(path);
            return (file?.Metrics, file?.Set);
        }
        catch (InvalidDataException)
        {
            return (null, null); // evaluated again
        }
    }

    private static async Task<(IReadOnlyDictionary<string, double> Metrics, Evidence.ScoredSet Set)> EvaluateAsync(RunFolder folder, string when, INextScalePolicy policy,
        IRewardModel reward, IReadOnlyList<PromptRecord> prompts, SamplingOptions sampling, TrainerOptions o, CancellationToken ct)
    {
        var report = await PolicyEvaluator.EvaluateAsync(policy, reward, prompts, sampling, o.EvalImagesPerPrompt, resamples: o.BootstrapResamples, ct: ct);
        NextFlowRL.Torch.Memory.NativeHeap.Trim();
        folder.WriteJson($"eval_{when}.json", new
        {
            reward = reward.Name,
            prompts = prompts.Count,
            images_per_prompt = o.EvalImagesPerPrompt,
            eval_seed = o.EvalSeed,
            metrics = report.Metrics,
            ci = report.Intervals.ToDictionary(kv => kv.Key, kv => new[] { kv.Value.Low, kv.Value.High }),
            set = report.Set,
        });
        var shown = Enumerable.Range(0, Math.Min(16, report.Images.Count))
            .Select(i => (report.Images[i], $"{prompts[report.Set.Prompts[i]].Prompt} | {(report.Results[i].IsValid ? report.Results[i].Score.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) : "-")}"))
            .ToList();
        folder.WriteGrid($"eval-{when}", shown);
        return (report.Metrics, report.Set);
    }

    /// <summary>Attaches the run's adapters to <paramref name="policy"/> (a resumed run: with the checkpoint's weights).</summary>
    /// <exception cref="InvalidDataException">The policy takes no adapters, the targets match nothing, or the checkpoint's adapters do not fit.</exception>
    public static LoraSet AttachLora(INextScalePolicy policy, TrainerOptions o, string? checkpoint)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(o);
        if (policy is not IAdaptablePolicy adaptable)
            throw new InvalidDataException($"Train:Lora:Rank={o.Lora.Rank}, but policy '{policy.Name}' takes no LoRA adapters (its layers are not NextFlowRL.Torch.Precision.AutocastLinear)");
        LoraSet lora;
        try
        {
            lora = LoraSet.Attach(adaptable.AdaptableModule, o.Lora.Rank, o.Lora.Alpha, o.Lora.Targets.Count > 0 ? o.Lora.Targets : null, seed: Seeds.Mix(o.Seed, -7));
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException(e.Message, e);
        }
        if (checkpoint is null) return lora;
        try
        {
            lora.Load(Path.Combine(checkpoint, LoraFiles.Adapters));
            return lora;
        }
        catch
        {
            lora.Dispose();
            throw;
        }
    }
}

/// <summary>The files of a LoRA checkpoint.</summary>
public static class LoraFiles
{
    /// <summary>The adapters (safetensors: <c>&lt;layer&gt;.lora_A</c>, <c>&lt;layer&gt;.lora_B</c>).</summary>
    public const string Adapters = "adapters.safetensors";

    /// <summary>Rank, alpha and the adapted layers (JSON), read by resume and by <c>nextflow-rl policy merge</c>.</summary>
    public const string Description = "adapters.json";

    /// <summary>What <see cref="Description"/> holds.</summary>
    public sealed record Info(int Rank, double Alpha, IReadOnlyList<string> Layers);

    /// <summary>Reads <see cref="Description"/> from a checkpoint directory.</summary>
    /// <exception cref="InvalidDataException">The file is missing or malformed.</exception>
    public static Info Read(string directory)
    {
        var path = Path.Combine(directory, Description);
        if (!File.Exists(path)) throw new InvalidDataException($"{directory} is not a LoRA checkpoint ({Description} missing)");
        try
        {
            return JsonSerializer.Deserialize<Info>(File.ReadAllText(path)) ?? throw new InvalidDataException($"{path} is empty");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }
}

/// <summary>
/// Checkpoints of a run: <c>step-NNNNNN/</c> directories (policy/, reference/, optimizer.bin, trainer.json), each
/// written into a temporary directory and renamed into place, then named in the <c>latest</c> file (atomic).
/// Only the newest <c>keep</c> are kept.
/// </summary>
public sealed class CheckpointStore
{
    private readonly string _root;
    private readonly int _keep;

    /// <summary>Creates the store.</summary>
    public CheckpointStore(string root, int keep)
    {
        _root = root;
        _keep = Math.Max(1, keep);
    }

    /// <summary>The newest complete checkpoint, or null.</summary>
    public string? Latest()
    {
        var pointer = Path.Combine(_root, "latest");
        if (!File.Exists(pointer)) return null;
        var path = Path.Combine(_root, File.ReadAllText(pointer).Trim());
        return Directory.Exists(path) ? path : throw new InvalidDataException($"checkpoint '{path}' named by {pointer} is missing");
    }

    /// <summary>Writes a checkpoint atomically and prunes old ones.</summary>
    public string Save(int step, INextScalePolicy policy, INextScalePolicy? reference, GrpoTrainer trainer, LoraSet? lora = null)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(trainer);
        Directory.CreateDirectory(_root);
        var name = $"step-{step:D6}";
        var final = Path.Combine(_root, name);
        var tmp = Path.Combine(_root, $".{name}.{Guid.NewGuid().ToString("N")[..8]}.tmp");
        if (lora is null)
        {
            policy.Save(Path.Combine(tmp, "policy"));
            reference?.Save(Path.Combine(tmp, "reference"));
        }
        else
        {
            // Adapters only; the base checkpoint stays where Train:Checkpoint names it (config.json of the run).
            Directory.CreateDirectory(tmp);
            lora.Save(Path.Combine(tmp, LoraFiles.Adapters));
            AtomicFile.WriteAllText(Path.Combine(tmp, LoraFiles.Description), JsonSerializer.Serialize(new LoraFiles.Info(lora.Rank, lora.Alpha, lora.Layers)));
        }
        trainer.SaveState(tmp);
        if (Directory.Exists(final)) Directory.Delete(final, recursive: true);
        Directory.Move(tmp, final);
        AtomicFile.WriteAllText(Path.Combine(_root, "latest"), name);
        foreach (var old in Directory.GetDirectories(_root, "step-*").OrderByDescending(d => d, StringComparer.Ordinal).Skip(_keep))
            Directory.Delete(old, recursive: true);
        foreach (var stale in Directory.GetDirectories(_root, ".step-*.tmp"))
            Directory.Delete(stale, recursive: true);
        return final;
    }
}
