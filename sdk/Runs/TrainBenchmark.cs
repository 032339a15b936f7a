using System.Diagnostics;
using Microsoft.Extensions.Logging;
using NextFlowRL.Policies;
using NextFlowRL.Rewards;
using NextFlowRL.Torch.Benchmarks;
using NextFlowRL.Torch.NextScale;
using static TorchSharp.torch;
using NextFlowRL.Training;

namespace NextFlowRL.Runs;

/// <summary>What <see cref="TrainBenchmark"/> measured.</summary>
public sealed record TrainBenchmarkReport(
    int Steps,
    double RolloutSeconds,
    double RewardSeconds,
    double UpdateSeconds,
    double UpdateFlops,
    double MatmulFlopsPerSecond,
    long RssStartBytes,
    long RssEndBytes,
    long LiveTensorsStart,
    long LiveTensorsEnd)
{
    /// <summary>Largest resident size of each phase over the timed steps (<c>rss_peak_rollout_mb</c>, ..., sampled every 10 ms), in MB.</summary>
    public IReadOnlyDictionary<string, double> PhasePeaks { get; init; } = new Dictionary<string, double>();

    /// <summary>Seconds per timed step the step waited for its rewards (<c>time_reward_wait</c>): the reward time the pipeline did not hide.</summary>
    public double RewardWaitSeconds { get; init; }

    /// <summary>The share of the reward time hidden behind other work (1 - wait / reward; 0 when scoring is sequential).</summary>
    public double RewardOverlap => RewardSeconds > 0 ? Math.Clamp(1 - RewardWaitSeconds / RewardSeconds, 0, 1) : 0;

    /// <summary>Updates per sampled image, averaged over the timed steps (<c>updates_per_image</c>).</summary>
    public double UpdatesPerImage { get; init; }

    /// <summary>The process's largest resident size from before the first step to the end (<c>VmHWM</c>: every phase, not only step ends).</summary>
    public long PeakRssBytes { get; init; }

    /// <summary>Least-squares slope of the resident size at the ends of the timed steps, in bytes per step (flat memory: about 0).</summary>
    public double RssSlopeBytesPerStep { get; init; }

    /// <summary>Seconds per timed step of each part of the update (<c>time_update_old</c>, <see cref="GrpoTrainer.UpdateParts"/>).</summary>
    public IReadOnlyDictionary<string, double> UpdateParts { get; init; } = new Dictionary<string, double>();

    /// <summary>Achieved FLOP/s of the update phase (estimated FLOPs / measured time).</summary>
    public double UpdateFlopsPerSecond => UpdateFlops / Math.Max(UpdateSeconds, 1e-12);

    /// <summary>The update's achieved FLOP/s as a fraction of the machine's matmul FLOP/s measured in the same run.</summary>
    public double Fraction => UpdateFlopsPerSecond / Math.Max(MatmulFlopsPerSecond, 1e-12);

    /// <summary>
    /// FLOP/s of the policy's own linear shapes (every 2-D trainable parameter as an <c>[in, out]</c> layer) at one
    /// micro-batch of whole sequences (<see cref="MatmulPeak.Linear"/>), measured in the same run: what the update's
    /// products can reach at best on this machine.
    /// </summary>
    public double ModelShapeFlopsPerSecond { get; init; }

    /// <summary><see cref="ModelShapeFlopsPerSecond"/> as a fraction of the square matmul peak: the ceiling of <see cref="Fraction"/> for this model's widths.</summary>
    public double ModelShapeFraction => ModelShapeFlopsPerSecond / Math.Max(MatmulFlopsPerSecond, 1e-12);
}

/// <summary>
/// Times the phases of training steps and relates the update's throughput to the machine's dense matmul throughput,
/// measured in the same process (FLOPs: see <see cref="UpdateFlops"/>).
/// </summary>
public static class TrainBenchmark
{
    /// <summary>Runs <paramref name="steps"/> training steps (no checkpoints) and reports phase times, FLOP/s and memory.</summary>
    public static async Task<TrainBenchmarkReport> RunAsync(TrainerOptions options, INextScalePolicy policy, IReadOnlyList<(RewardSpec, IRewardModel)> rewards,
        int steps, ILogger logger, Action<int, StepResult>? onStep = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(policy);
        var o = options.Clone();
        o.Steps = Math.Max(o.Steps, steps);
        using var reference = o.KlBeta > 0 ? policy.CreateFrozenCopy() : null;
        using var trainer = new GrpoTrainer(o, policy, reference, new RewardEnsemble(rewards, logger), PromptSet.Load(o.TrainPrompts!), logger);
        double matmulFlops = MatmulPeak.Measure();
        var shapes = policy.TrainableParameters().Where(p => p.dim() == 2).Select(p => (p.shape[1], p.shape[0])).ToList();
        double shapeFlops = shapes.Count == 0 ? double.NaN
            : MatmulPeak.Linear(shapes, (long)Math.Min(o.MicroBatch, o.PromptsPerStep * o.GroupSize) * policy.Schedule.TotalTokens);
        long parameters = policy.TrainableParameters().Sum(p => p.numel());
        double rollout = 0, reward = 0, rewardWait = 0, update = 0, flops = 0, updatesPerImage = 0;
        var stepEnds = new List<(double Step, double Rss)>();
        NextFlowRL.Torch.Memory.ResidentMemory.ResetPeak();
        var parts = new SortedDictionary<string, double>(StringComparer.Ordinal);
        var peaks = new SortedDictionary<string, double>(StringComparer.Ordinal);
        long rssStart = 0, liveStart = 0;
        for (int i = 0; i < steps; i++)
        {
            var r = trainer.RunStep(ct);
            if (i == Math.Min(2, steps - 1))
            {
                GC.Collect();
                rssStart = Process.GetCurrentProcess().WorkingSet64;
                liveStart = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            }
            if (i == 0 && steps > 1)
            {
                onStep?.Invoke(i, r);
                continue; // the first step includes one-time costs
            }
            rollout += r.Metrics["time_rollout"];
            reward += r.Metrics["time_reward"];
            rewardWait += r.Metrics.GetValueOrDefault("time_reward_wait");
            updatesPerImage += r.Metrics.GetValueOrDefault("updates_per_image");
            stepEnds.Add((i, NextFlowRL.Torch.Memory.ResidentMemory.Current()));
            update += r.Metrics["time_update"];
            foreach (var (k, v) in r.Metrics.Where(m => m.Key.StartsWith("time_update_", StringComparison.Ordinal)))
                parts[k] = parts.GetValueOrDefault(k) + v;
            foreach (var (k, v) in r.Metrics.Where(m => m.Key.StartsWith("rss_peak_", StringComparison.Ordinal)))
                peaks[k] = Math.Max(peaks.GetValueOrDefault(k), v);
            flops += UpdateFlops(policy, parameters, r, o);
            onStep?.Invoke(i, r);
        }
        GC.Collect();
        int measured = steps > 1 ? steps - 1 : steps;
        return new TrainBenchmarkReport(measured, rollout / measured, reward / measured, update / measured, flops / measured,
            matmulFlops, rssStart, Process.GetCurrentProcess().WorkingSet64, liveStart, TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount)
        {
            UpdateParts = parts.ToDictionary(p => p.Key, p => p.Value / measured),
            PhasePeaks = peaks,
            RewardWaitSeconds = rewardWait / measured,
            ModelShapeFlopsPerSecond = shapeFlops,
            UpdatesPerImage = updatesPerImage / measured,
            PeakRssBytes = NextFlowRL.Torch.Memory.ResidentMemory.Peak(),
            RssSlopeBytesPerStep = Slope(stepEnds),
        };
    }

    /// <summary>The least-squares slope of y over x (0 with fewer than two points).</summary>
    public static double Slope(IReadOnlyList<(double X, double Y)> points)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (points.Count < 2) return 0;
        double mx = points.Average(p => p.X), my = points.Average(p => p.Y);
        double sxx = points.Sum(p => (p.X - mx) * (p.X - mx));
        return sxx > 0 ? points.Sum(p => (p.X - mx) * (p.Y - my)) / sxx : 0;
    }

    /// <summary>
    /// Matmul FLOPs of one step's updates. Every update of the pass counts (a prefix update, and on suffix turns the
    /// suffix update too): per row and token position, one forward for the old log-probs of a later update, one for the
    /// reference (KL), and forward + backward (3 forwards) per inner epoch. A policy on the shared sampler states its
    /// forward FLOPs (linear layers, attention products, head: <see cref="ISamplerControl.ForwardFlops"/>), spread
    /// evenly over the sequence's positions; otherwise <c>2 * parameters</c> per position.
    /// </summary>
    private static double UpdateFlops(INextScalePolicy policy, long parameters, StepResult r, TrainerOptions o)
    {
        var schedule = policy.Schedule;
        double perPosition = policy is ISamplerControl control ? control.ForwardFlops(1) / schedule.TotalTokens : 2.0 * parameters;
        int G = o.GroupSize, P = o.PromptsPerStep, K = o.Vmr.Schedule == AlternationSchedule.Joint ? 1 : o.Vmr.Continuations;
        int split = o.Vmr.Schedule == AlternationSchedule.Joint ? 0 : Alternation.ResolveSplit(o.Vmr, schedule);
        var kinds = new List<UpdateKind> { r.Kind };
        if (r.Metrics.ContainsKey("suffix/loss")) kinds.Add(UpdateKind.Suffix);
        double total = 0;
        for (int i = 0; i < kinds.Count; i++)
        {
            double positions = kinds[i] switch
            {
                UpdateKind.Prefix => (double)P * G * schedule.Take(split).Sum(s => s.Tokens),
                UpdateKind.Suffix => (double)P * G * K * schedule.TotalTokens, // teacher forcing of the suffix runs over the whole sequence
                _ => (double)P * G * schedule.TotalTokens,
            };
            double passes = (i > 0 ? 1 : 0) + (o.KlBeta > 0 ? 1 : 0) + 3 * o.InnerEpochs;
            total += passes * positions * perPosition;
        }
        return total;
    }
}
