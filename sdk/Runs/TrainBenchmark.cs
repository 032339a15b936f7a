using System.Diagnostics;
using Microsoft.Extensions.Logging;
using NextFlowRL.Policies;
using NextFlowRL.Rewards;
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

    /// <summary>Seconds per timed step of each part of the update (<c>time_update_old</c>, <see cref="GrpoTrainer.UpdateParts"/>).</summary>
    public IReadOnlyDictionary<string, double> UpdateParts { get; init; } = new Dictionary<string, double>();

    /// <summary>Achieved FLOP/s of the update phase (estimated FLOPs / measured time).</summary>
    public double UpdateFlopsPerSecond => UpdateFlops / Math.Max(UpdateSeconds, 1e-12);

    /// <summary>The update's achieved FLOP/s as a fraction of the machine's matmul FLOP/s measured in the same run.</summary>
    public double Fraction => UpdateFlopsPerSecond / Math.Max(MatmulFlopsPerSecond, 1e-12);
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
        double matmulFlops = NextFlowRL.Torch.Benchmarks.MatmulPeak.Measure();
        long parameters = policy.TrainableParameters().Sum(p => p.numel());
        double rollout = 0, reward = 0, update = 0, flops = 0;
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
        };
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
