using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using NextFlowRL.Imaging;
using NextFlowRL.Policies;
using NextFlowRL.Rewards;
using NextFlowRL.Torch.Adapters;
using NextFlowRL.Training;
using NextFlowRL.Training.Evidence;
using NextFlowRL.Training.Rollouts;

namespace NextFlowRL.Runs;

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

    /// <summary>Shows each evaluation's progress (images scored, rate, ETA); null: none. Started after <see cref="OnStatus"/> names the evaluation.</summary>
    public NextFlowRL.Plugins.IProgressDisplay? Progress { get; init; }

    /// <summary>
    /// Where the steps' rollouts and rewards run (e.g. workers of a cluster); null: in this process
    /// (<see cref="LocalRollouts"/>). The run's trainer disposes it when the run ends.
    /// </summary>
    public IRolloutExecutor? Rollouts { get; init; }
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
    public IReadOnlyDictionary<string, Interval>? Delta { get; init; }

    /// <summary>
    /// The further evaluations (<see cref="TrainerOptions.EvalSets"/> and <see cref="TrainerOptions.EvalReaders"/>), each
    /// set read by each reader; the evaluation of <see cref="Before"/>/<see cref="After"/> is not repeated here.
    /// </summary>
    public IReadOnlyList<EvaluationOutcome> Evaluations { get; init; } = [];
}

/// <summary>One further evaluation of a run: a prompt set read by one reader, before and after training.</summary>
/// <param name="Set">The set's name (<see cref="EvalFile.MainSet"/> for <see cref="TrainerOptions.EvalPrompts"/>).</param>
/// <param name="Reader">The reward that read the images.</param>
/// <param name="Before">Metrics before training (null when not evaluated).</param>
/// <param name="After">Metrics after training.</param>
/// <param name="Delta">After minus before, paired, with 95% intervals (null without both).</param>
public sealed record EvaluationOutcome(string Set, string Reader, IReadOnlyDictionary<string, double>? Before, IReadOnlyDictionary<string, double>? After,
    IReadOnlyDictionary<string, Interval>? Delta);

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
        IReadOnlyList<PromptRecord> Limited(string path)
        {
            var records = PromptSet.Load(path).Records;
            return o.EvalLimit > 0 ? records.Take(o.EvalLimit).ToList() : records;
        }
        // The evaluation sets: the held-out prompts first (the run's before/after), then the further sets by name.
        var evalSets = new List<(string Name, IReadOnlyList<PromptRecord> Prompts)>();
        if (o.Evaluate && o.EvalPrompts is not null)
        {
            evalSets.Add((EvalFile.MainSet, Limited(o.EvalPrompts)));
            evalSets.AddRange(o.ActiveEvalSets.Select(kv => (kv.Key, Limited(kv.Value))));
        }
        var evalPrompts = evalSets.Count > 0 ? evalSets[0].Prompts : null;
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
            // The first reward reads every evaluation, the further readers score the same images.
            IReadOnlyList<IRewardModel> readers = [evalReward, .. o.ActiveEvalReaders.Select(request.ResolveReward)];
            var beforeAll = evalSets.Count > 0 && o.EvaluateBefore
                ? await EvaluateAllAsync(folder, "before", policy, readers, evalSets, sampling, o, request, ct)
                : new Dictionary<(string, string), Evaluated>();
            var (before, beforeSet) = beforeAll.TryGetValue((EvalFile.MainSet, evalReward.Name), out var main) ? (main.Metrics, main.Set) : ReadEval(folder, EvalFile.FileName("before"));

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
            IReadOnlyDictionary<string, Interval>? delta = null;
            var outcomes = new List<EvaluationOutcome>();
            if (evalSets.Count > 0)
            {
                var afterAll = await EvaluateAllAsync(folder, "after", policy, readers, evalSets, sampling, o, request, ct, reuse: false);
                foreach (var ((set, reader), a) in afterAll)
                {
                    var model = readers.First(r => r.Name == reader);
                    var b = beforeAll.TryGetValue((set, reader), out var found) ? found : default;
                    if (b.Set is null && set == EvalFile.MainSet && reader == evalReward.Name) b = new Evaluated(before, beforeSet);
                    // The same prompts and evaluation seeds before and after: the paired difference, resampling prompts.
                    var d = b.Set is not null && a.Set is { } afterSet && afterSet.SameLayout(b.Set) && afterSet.PromptCount > 1
                        ? Bootstrap.PairedDifference(model, afterSet, b.Set, o.BootstrapResamples, o.EvalSeed)
                        : null;
                    if (set == EvalFile.MainSet && reader == evalReward.Name) (after, delta) = (a.Metrics, d);
                    else outcomes.Add(new EvaluationOutcome(set, reader, b.Metrics, a.Metrics, d));
                }
            }
            static Dictionary<string, double[]>? Triples(IReadOnlyDictionary<string, Interval>? d) =>
                d?.ToDictionary(kv => kv.Key, kv => new[] { kv.Value.Estimate, kv.Value.Low, kv.Value.High });
            folder.WriteJson("summary.json", new
            {
                steps = trainer.Step,
                before,
                after,
                delta = Triples(delta),
                evaluations = outcomes.ToDictionary(e => $"{e.Set}/{e.Reader}", e => new { before = e.Before, after = e.After, delta = Triples(e.Delta) }),
                elapsed_seconds = clock.Elapsed.TotalSeconds,
            });
            WriteReport(folder, request);
            return new TrainingSummary(folder.Directory, trainer.Step, before, after, clock.Elapsed, false) { Delta = delta, Evaluations = outcomes };
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
    public static (IReadOnlyDictionary<string, double>? Metrics, ScoredSet? Set) ReadEval(RunFolder folder, string name)
    {
        ArgumentNullException.ThrowIfNull(folder);
        return ReadEvalFile(folder.PathOf(name));
    }

    /// <summary>The metrics and the scored set of an <c>eval_*.json</c> file (nulls when missing or unreadable; <see cref="EvalFile"/>).</summary>
    public static (IReadOnlyDictionary<string, double>? Metrics, ScoredSet? Set) ReadEvalFile(string path)
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

    private record struct Evaluated(IReadOnlyDictionary<string, double>? Metrics, ScoredSet? Set);

    /// <summary>
    /// Evaluates every set once and scores its images with every reader, writing one <see cref="EvalFile"/> per set and
    /// reader. With <paramref name="reuse"/> a set whose files all exist (a resumed run) is read back instead.
    /// </summary>
    private static async Task<Dictionary<(string Set, string Reader), Evaluated>> EvaluateAllAsync(RunFolder folder, string when, INextScalePolicy policy,
        IReadOnlyList<IRewardModel> readers, IReadOnlyList<(string Name, IReadOnlyList<PromptRecord> Prompts)> sets, SamplingOptions sampling,
        TrainerOptions o, TrainingRunRequest request, CancellationToken ct, bool reuse = true)
    {
        var result = new Dictionary<(string, string), Evaluated>();
        foreach (var (name, prompts) in sets)
        {
            var files = readers.Select((r, i) => EvalFile.FileName(when, name, r.Name, main: name == EvalFile.MainSet && i == 0)).ToList();
            var saved = files.Select(f => ReadEval(folder, f)).ToList();
            if (reuse && saved.All(x => x.Set is not null))
            {
                for (int i = 0; i < readers.Count; i++) result[(name, readers[i].Name)] = new Evaluated(saved[i].Metrics, saved[i].Set);
                continue;
            }
            string what = name == EvalFile.MainSet ? "held-out" : $"'{name}'";
            string by = readers.Count == 1 ? "" : $", read by {string.Join(" and ", readers.Select(r => r.Name))}";
            request.OnStatus?.Invoke($"evaluating {prompts.Count} {what} prompts x {o.EvalImagesPerPrompt} images {when} training{by}");
            IReadOnlyList<EvalReport> reports;
            using (var bar = request.Progress?.Start($"eval {when} {(name == EvalFile.MainSet ? "held-out" : name)}", prompts.Count * o.EvalImagesPerPrompt, "img"))
                reports = await PolicyEvaluator.EvaluateAsync(policy, readers, prompts, sampling, o.EvalImagesPerPrompt, resamples: o.BootstrapResamples,
                    pipelineRewards: o.Rollout.PipelineRewards, progress: bar is null ? null : new CountProgress(bar), ct: ct);
            NextFlowRL.Torch.Memory.NativeHeap.Trim();
            for (int i = 0; i < readers.Count; i++)
            {
                var report = reports[i];
                folder.WriteJson(files[i], new
                {
                    reward = readers[i].Name,
                    prompt_set = name,
                    prompts = prompts.Count,
                    images_per_prompt = o.EvalImagesPerPrompt,
                    eval_seed = o.EvalSeed,
                    metrics = report.Metrics,
                    ci = report.Intervals.ToDictionary(kv => kv.Key, kv => new[] { kv.Value.Low, kv.Value.High }),
                    set = report.Set,
                });
                result[(name, readers[i].Name)] = new Evaluated(report.Metrics, report.Set);
            }
            // One grid per set, with the first reader's scores.
            var first = reports[0];
            var shown = Enumerable.Range(0, Math.Min(16, first.Images.Count))
                .Select(i => (first.Images[i], $"{prompts[first.Set.Prompts[i]].Prompt} | {(first.Results[i].IsValid ? first.Results[i].Score.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) : "-")}"))
                .ToList();
            folder.WriteGrid(name == EvalFile.MainSet ? $"eval-{when}" : $"eval-{when}.{name}", shown);
        }
        return result;
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
