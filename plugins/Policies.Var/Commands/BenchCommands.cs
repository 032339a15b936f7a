using NextFlowRL.Torch.NextScale;
using System.Diagnostics;
using NextFlowRL.Plugins;
using NextFlowRL.Policies.Var.Data;
using NextFlowRL.Policies.Var.Model;

namespace NextFlowRL.Policies.Var.Commands;

/// <summary>
/// <c>nextflow-rl bench policy</c>: sampling throughput with the KV cache vs full recompute, and the training step's
/// achieved FLOP/s as a fraction of the machine's float32 matmul FLOP/s measured in the same run.
/// </summary>
public sealed class BenchPolicyCommand : INextFlowRLCommand
{
    private const string Usage = "nextflow-rl bench policy [--checkpoint DIR] [--batch N] [--repeats R] [--threads T]";

    /// <inheritdoc/>
    public IReadOnlyList<string> Path { get; } = ["bench", "policy"];

    /// <inheritdoc/>
    public string Description => "VAR policy: KV-cache vs full-recompute sampling throughput and training-step FLOP/s.";

    /// <inheritdoc/>
    public Task<int> InvokeAsync(IReadOnlyList<string> args, CancellationToken cancellationToken) =>
        PretrainArgs.Run(Usage, args, ["checkpoint", "repeats"], a =>
        {
            int threads = a.Int("threads", 2, 0, 256);
            if (threads > 0) set_num_threads(threads);
            using var policy = (VarPolicy)new VarPolicyProvider("var", new VarPolicyOptions()).Load(a.String("checkpoint"));
            var r = PolicyBench.Run(policy, a.Int("batch", 8, 1, 1024), a.Int("repeats", 3, 1, 1000));
            Console.WriteLine($"sampling, batch {r.Batch}: KV cache {r.CachedImagesPerSecond:F2} img/s, full recompute {r.RecomputeImagesPerSecond:F2} img/s, speedup {r.Speedup:F1}x (target >= 5x)");
            Console.WriteLine($"  the schedule bounds the saving: recompute processes {r.RecomputePositions} positions per image, the cache {r.CachedPositions} ({r.PositionBound:F2}x)");
            Console.WriteLine($"training step (teacher-forced log-probs + backward, batch {r.Batch}): {r.TrainStepSeconds * 1000:F0} ms, {r.TrainFlops / 1e9:F2} GFLOP -> {r.TrainFlopsPerSecond / 1e9:F2} GFLOP/s");
            Console.WriteLine($"matmul peak (float32 {PolicyBench.MatmulSize}^3, {threads} threads): {r.MatmulFlopsPerSecond / 1e9:F2} GFLOP/s; training step achieves {r.TrainFraction:P1} of it");
            return 0;
        });
}

/// <summary>Results of <see cref="PolicyBench.Run"/>.</summary>
/// <param name="Batch">Images per sampling call / training rows.</param>
/// <param name="CachedImagesPerSecond">Sampling throughput with the KV cache.</param>
/// <param name="RecomputeImagesPerSecond">Sampling throughput recomputing the prefix every scale.</param>
/// <param name="TrainStepSeconds">Seconds of one training step (forward + backward).</param>
/// <param name="TrainFlops">Estimated matmul FLOPs of that step.</param>
/// <param name="MatmulFlopsPerSecond">Measured float32 matmul FLOP/s.</param>
/// <param name="CachedPositions">Token positions run through the transformer per image with the cache (the sequence length).</param>
/// <param name="RecomputePositions">Token positions per image without it (every scale re-runs its whole prefix).</param>
public sealed record PolicyBenchResult(int Batch, double CachedImagesPerSecond, double RecomputeImagesPerSecond, double TrainStepSeconds, double TrainFlops, double MatmulFlopsPerSecond,
    long CachedPositions = 0, long RecomputePositions = 0)
{
    /// <summary>The largest speedup the cache can give on the linear layers: recompute positions / cached positions.</summary>
    public double PositionBound => (double)RecomputePositions / CachedPositions;

    /// <summary>KV-cache speedup.</summary>
    public double Speedup => CachedImagesPerSecond / RecomputeImagesPerSecond;

    /// <summary>Achieved training FLOP/s.</summary>
    public double TrainFlopsPerSecond => TrainFlops / TrainStepSeconds;

    /// <summary>Training FLOP/s as a fraction of matmul FLOP/s.</summary>
    public double TrainFraction => TrainFlopsPerSecond / MatmulFlopsPerSecond;
}

/// <summary>The measurements behind <c>bench policy</c>.</summary>
public static class PolicyBench
{
    /// <summary>Side of the square matmul used to measure peak FLOP/s.</summary>
    public const int MatmulSize = 1024;

    /// <summary>Runs the benchmark on a policy.</summary>
    public static PolicyBenchResult Run(VarPolicy policy, int batch, int repeats)
    {
        ArgumentNullException.ThrowIfNull(policy);
        var prompts = TextDataset.EvaluationPrompts(WordLists.Default, 2).Select(r => r.Prompt).ToArray();
        var batchPrompts = Enumerable.Range(0, batch).Select(i => prompts[i % prompts.Length]).ToArray();
        var options = new SamplingOptions { Seed = 1, CfgScale = 3, TopK = 0 };
        double Time(SamplerSettings s)
        {
            policy.Run(batchPrompts, null, options, s).Trajectories.Dispose(); // warm-up
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < repeats; i++) policy.Run(batchPrompts, null, options, s).Trajectories.Dispose();
            return batch * repeats / sw.Elapsed.TotalSeconds;
        }
        double cached = Time(new SamplerSettings(UseKvCache: true));
        double recompute = Time(new SamplerSettings(UseKvCache: false));
        // Training step: teacher-forced log-probs over all scales + backward.
        using var traj = policy.Sample(batchPrompts, SamplingOptions.Plain(2));
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
        double flops = 3 * ForwardFlops(policy.Model.Config, batch);
        // Matmul peak in the same run.
        double peak;
        using (var scope = NewDisposeScope())
        {
            var x = randn(MatmulSize, MatmulSize);
            var y = randn(MatmulSize, MatmulSize);
            x.matmul(y).Dispose();
            double best = double.MaxValue;
            for (int i = 0; i < Math.Max(3, repeats); i++)
            {
                var sw = Stopwatch.StartNew();
                x.matmul(y).Dispose();
                best = Math.Min(best, sw.Elapsed.TotalSeconds);
            }
            peak = 2.0 * MatmulSize * MatmulSize * MatmulSize / best;
        }
        long cachedPositions = 0, recomputePositions = 0;
        foreach (var shape in policy.Schedule)
        {
            cachedPositions += shape.Tokens;
            recomputePositions += cachedPositions;
        }
        return new PolicyBenchResult(batch, cached, recompute, step, flops, peak, cachedPositions, recomputePositions);
    }

    /// <summary>
    /// Matmul FLOPs of one teacher-forced generator forward pass over all scales for <paramref name="batch"/> rows
    /// (linear layers, self- and cross-attention products, head; element-wise work and the frozen tokenizer excluded).
    /// </summary>
    public static double ForwardFlops(VarModelConfig config, int batch)
    {
        double d = config.Generator.Dim, l = config.Tokenizer.Scales.Sum(s => s[0] * s[1]);
        double m = 1 + config.Generator.MaxWords * config.Generator.MaxWordChars, v = config.Tokenizer.CodebookSize;
        double perTokenBlock = 3 * d * d + d * d + d * d + d * d + 2 * config.Generator.MlpRatio * d * d;
        double perRowBlock = 6 * d * d + m * 2 * d * d + 2 * l * l * d + 2 * l * m * d;
        double text = m * (3 * d * d + d * d + 4 * d * d) + 2 * m * m * d + 2 * d * d;
        double macs = batch * (config.Generator.Depth * (l * perTokenBlock + perRowBlock) + l * (d * v + config.Tokenizer.LatentChannels * d + 22 * d) + text);
        return 2 * macs;
    }
}
