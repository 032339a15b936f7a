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
    public static double Measure(int repeats = 5) => Linear([(Size, Size)], Size, repeats);

    /// <summary>
    /// FLOP/s of linear layers of the given <c>[in, out]</c> shapes applied to <paramref name="rows"/> rows (each shape
    /// timed as the fastest of <paramref name="repeats"/> <c>[rows, in] x [in, out]</c> products after a warm-up, weighted
    /// by how often it occurs): the ceiling a model of these widths can reach at this batch, to read a "fraction of the
    /// peak" against. A narrow model's products are far from <see cref="Size"/>^3, and run slower than it.
    /// </summary>
    /// <exception cref="ArgumentException">No shapes, or a non-positive size.</exception>
    public static double Linear(IEnumerable<(long In, long Out)> shapes, long rows, int repeats = 3)
    {
        ArgumentNullException.ThrowIfNull(shapes);
        var counted = shapes.GroupBy(s => s).Select(g => (Shape: g.Key, Count: g.Count())).ToList();
        if (counted.Count == 0) throw new ArgumentException("no shapes to time", nameof(shapes));
        if (rows < 1 || counted.Any(c => c.Shape.In < 1 || c.Shape.Out < 1)) throw new ArgumentException("rows and every shape's sizes must be positive");
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        double flops = 0, seconds = 0;
        foreach (var ((inner, outer), count) in counted)
        {
            var x = randn(rows, inner);
            var w = randn(inner, outer);
            matmul(x, w).Dispose();
            double best = double.MaxValue;
            for (int i = 0; i < Math.Max(1, repeats); i++)
            {
                var clock = Stopwatch.StartNew();
                matmul(x, w).Dispose();
                best = Math.Min(best, clock.Elapsed.TotalSeconds);
            }
            flops += count * 2.0 * rows * inner * outer;
            seconds += count * best;
        }
        return flops / seconds;
    }
}
