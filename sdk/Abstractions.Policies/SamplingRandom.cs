using TorchSharp;
using static TorchSharp.torch;

namespace NextFlowRL.Policies;

/// <summary>
/// The random streams of one sampling call, as <see cref="SamplingOptions"/> asks for them: one generator for the whole
/// call (<see cref="SamplingOptions.Seed"/>), or one per row (<see cref="SamplingOptions.RowSeeds"/>). Policies draw
/// every token through <see cref="Draw"/>, so both modes behave the same in every policy.
/// </summary>
public sealed class SamplingRandom : IDisposable
{
    private readonly Generator? _batch;
    private readonly Generator[]? _rows;

    /// <summary>Creates the streams for a call of <paramref name="rows"/> rows on <paramref name="device"/> (null: CPU).</summary>
    /// <exception cref="ArgumentException"><see cref="SamplingOptions.RowSeeds"/> is set and its length is not <paramref name="rows"/>.</exception>
    public SamplingRandom(SamplingOptions options, int rows, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        Rows = rows;
        if (options.RowSeeds is null)
        {
            _batch = new Generator((ulong)options.Seed, device ?? CPU);
            return;
        }
        if (options.RowSeeds.Count != rows)
            throw new ArgumentException($"SamplingOptions.RowSeeds has {options.RowSeeds.Count} seeds for a call of {rows} rows; give one seed per row.", nameof(options));
        _rows = options.RowSeeds.Select(s => new Generator((ulong)s, device ?? CPU)).ToArray();
    }

    /// <summary>Rows of the call.</summary>
    public int Rows { get; }

    /// <summary>Whether every row has its own generator.</summary>
    public bool PerRow => _rows is not null;

    /// <summary>
    /// Draws one token per site from probabilities <c>[rows, n, V]</c> (rows need not be normalized): <c>[rows, n]</c>
    /// int64 token ids.
    /// </summary>
    /// <exception cref="ArgumentException">The first dimension is not <see cref="Rows"/>.</exception>
    public Tensor Draw(Tensor probabilities)
    {
        ArgumentNullException.ThrowIfNull(probabilities);
        if (probabilities.dim() != 3 || probabilities.shape[0] != Rows)
            throw new ArgumentException($"expected probabilities [{Rows}, n, V], got [{string.Join(",", probabilities.shape)}]", nameof(probabilities));
        long n = probabilities.shape[1], v = probabilities.shape[2];
        if (_batch is not null)
            return multinomial(probabilities.reshape(-1, v), 1, replacement: true, generator: _batch).view(Rows, n);
        using var scope = NewDisposeScope();
        var drawn = new Tensor[Rows];
        for (int r = 0; r < Rows; r++)
            drawn[r] = multinomial(probabilities[r], 1, replacement: true, generator: _rows![r]).view(n);
        return stack(drawn).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _batch?.Dispose();
        foreach (var g in _rows ?? []) g.Dispose();
    }
}
