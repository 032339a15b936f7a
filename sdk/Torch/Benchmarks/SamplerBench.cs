using System.Diagnostics;
using NextFlowRL.Policies;
using NextFlowRL.Torch.NextScale;

namespace NextFlowRL.Torch.Benchmarks;

/// <summary>Results of <see cref="SamplerBench.Run"/>.</summary>
/// <param name="Batch">Images per sampling call / training rows.</param>
/// <param name="CachedImagesPerSecond">Sampling throughput with the KV cache (the normal sampler).</param>
/// <param name="RecomputeImagesPerSecond">Sampling throughput recomputing the prefix every scale.</param>
/// <param name="TrainStepSeconds">Seconds of one training step (teacher-forced log-probs over all scales + backward).</param>
/// <param name="TrainFlops">Estimated matmul FLOPs of that step (3x a forward pass).</param>
/// <param name="SampleFlops">Estimated matmul FLOPs of one cached sampling call (a forward pass per CFG branch).</param>
/// <param name="MatmulFlopsPerSecond">Measured float32 matmul FLOP/s (<see cref="MatmulPeak"/>).</param>
/// <param name="CachedPositions">Token positions run through the transformer per image with the cache (the sequence length).</param>
/// <param name="RecomputePositions">Token positions per image without it (every scale re-runs its whole prefix).</param>
/// <param name="ParityMaxDev">Largest per-token difference (nats) between the sampler's log-probs and the teacher-forced ones of the same tokens.</param>
/// <param name="ParityMeanDev">Mean per-token difference of the same.</param>
public sealed record SamplerBenchResult(int Batch, double CachedImagesPerSecond, double RecomputeImagesPerSecond, double TrainStepSeconds, double TrainFlops,
    double SampleFlops, double MatmulFlopsPerSecond, long CachedPositions, long RecomputePositions, double ParityMaxDev = double.NaN, double ParityMeanDev = double.NaN)
{
    /// <summary>The largest speedup the cache can give on the linear layers: recompute positions / cached positions.</summary>
    public double PositionBound => (double)RecomputePositions / CachedPositions;

    /// <summary>KV-cache speedup.</summary>
    public double Speedup => CachedImagesPerSecond / RecomputeImagesPerSecond;

    /// <summary>KV-cache speedup as a fraction of <see cref="PositionBound"/>.</summary>
    public double BoundFraction => Speedup / PositionBound;

    /// <summary>Achieved training FLOP/s.</summary>
    public double TrainFlopsPerSecond => TrainFlops / TrainStepSeconds;

    /// <summary>Training FLOP/s as a fraction of matmul FLOP/s.</summary>
    public double TrainFraction => TrainFlopsPerSecond / MatmulFlopsPerSecond;

    /// <summary>Achieved sampling FLOP/s with the cache.</summary>
    public double SampleFlopsPerSecond => SampleFlops * CachedImagesPerSecond / Batch;

    /// <summary>Sampling FLOP/s as a fraction of matmul FLOP/s.</summary>
    public double SampleFraction => SampleFlopsPerSecond / MatmulFlopsPerSecond;
}

/// <summary>
/// The measurements behind <c>nextflow-rl bench policy</c> for any policy on the shared sampler: throughput with the KV
/// cache and with full recomputation, a training step's FLOP/s, and the matmul peak of the same run.
/// </summary>
public static class SamplerBench
{
    /// <summary>Runs the benchmark (one warm-up call per measurement, then <paramref name="repeats"/> timed calls).</summary>
    /// <param name="policy">The policy; must implement <see cref="ISamplerControl"/>.</param>
    /// <param name="prompts">Prompts, cycled to <paramref name="batch"/> rows.</param>
    /// <param name="batch">Rows per call.</param>
    /// <param name="repeats">Timed calls per measurement.</param>
    /// <param name="options">Sampling options (guidance doubles the batch through the transformer).</param>
    /// <param name="recompute">Also time full recomputation (slow for big models).</param>
    /// <exception cref="NotSupportedException">The policy does not expose its sampler.</exception>
    public static SamplerBenchResult Run(INextScalePolicy policy, IReadOnlyList<string> prompts, int batch, int repeats, SamplingOptions options, bool recompute = true)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(prompts);
        var control = policy as ISamplerControl ?? throw new NotSupportedException($"policy '{policy.Name}' does not expose the shared sampler (ISamplerControl)");
        var rows = Enumerable.Range(0, batch).Select(i => prompts.Count == 0 ? "" : prompts[i % prompts.Count]).ToArray();
        double Time(SamplerSettings s)
        {
            control.Run(rows, null, options, s).Trajectories.Dispose(); // warm-up
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < repeats; i++) control.Run(rows, null, options with { Seed = options.Seed + i }, s).Trajectories.Dispose();
            return batch * repeats / sw.Elapsed.TotalSeconds;
        }
        double cached = Time(new SamplerSettings(UseKvCache: true));
        double full = recompute ? Time(new SamplerSettings(UseKvCache: false)) : double.NaN;
        using var traj = policy.Sample(rows, SamplingOptions.Plain(2));
        double Step()
        {
            using var scope = NewDisposeScope();
            var sw = Stopwatch.StartNew();
            var lps = policy.LogProbs(traj, 0, policy.Schedule.Count);
            var loss = -stack(lps.Select(l => l.sum()).ToArray()).sum();
            loss.backward();
            foreach (var p in policy.TrainableParameters()) p.grad?.zero_();
            return sw.Elapsed.TotalSeconds;
        }
        Step();
        double step = Enumerable.Range(0, repeats).Select(_ => Step()).Min();
        var (maxDev, meanDev) = Parity(policy, control, rows, options);
        double peak = MatmulPeak.Measure();
        long cachedPositions = 0, recomputePositions = 0;
        foreach (var shape in policy.Schedule)
        {
            cachedPositions += shape.Tokens;
            recomputePositions += cachedPositions;
        }
        double branches = options.CfgScale > 0 ? 2 : 1;
        return new SamplerBenchResult(batch, cached, full, step, 3 * control.ForwardFlops(batch), branches * control.ForwardFlops(batch), peak, cachedPositions, recomputePositions, maxDev, meanDev);
    }

    /// <summary>
    /// Rollout/update parity: the sampler's (KV-cache) log-probs of the tokens it drew against the teacher-forced
    /// log-probs of the same tokens, the comparison the trainer's parity monitor makes every step. Float32 gives
    /// rounding-level differences; <c>Precision=bf16</c> shows its cost here.
    /// </summary>
    private static (double Max, double Mean) Parity(INextScalePolicy policy, ISamplerControl control, string[] rows, SamplingOptions options)
    {
        using var scope = NewDisposeScope();
        var (trajectories, sampled) = control.Run(rows, null, options, new SamplerSettings(RecordLogProbs: true));
        using var _ = trajectories;
        var forced = policy.LogProbs(trajectories, 0, policy.Schedule.Count);
        double max = 0, sum = 0;
        long count = 0;
        for (int k = 0; k < sampled.Count; k++)
        {
            var d = (sampled[k] - forced[k]).abs().to(ScalarType.Float64);
            max = Math.Max(max, d.max().item<double>());
            sum += d.sum().item<double>();
            count += d.numel();
        }
        return (max, count > 0 ? sum / count : double.NaN);
    }
}
