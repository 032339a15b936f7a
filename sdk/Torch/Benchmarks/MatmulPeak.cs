using System.Diagnostics;

namespace NextFlowRL.Torch.Benchmarks;

/// <summary>
/// The machine's dense float32 matmul throughput, measured in the running process: the one reference every bench's
/// "fraction of peak" is relative to, so fractions from different benches compare.
/// </summary>
public static class MatmulPeak
{
    /// <summary>Side of the square matrices.</summary>
    public const int Size = 1024;

    /// <summary>FLOP/s of the fastest of <paramref name="repeats"/> <see cref="Size"/>^3 matmuls after one warm-up (current thread setting).</summary>
    public static double Measure(int repeats = 5)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var a = randn(Size, Size);
        var b = randn(Size, Size);
        matmul(a, b).Dispose();
        double best = double.MaxValue;
        for (int i = 0; i < Math.Max(1, repeats); i++)
        {
            var clock = Stopwatch.StartNew();
            matmul(a, b).Dispose();
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }
        return 2.0 * Size * Size * Size / best;
    }
}
