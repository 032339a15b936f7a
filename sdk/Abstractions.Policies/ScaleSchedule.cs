namespace NextFlowRL.Policies;

/// <summary>The token-grid shape of one generation step.</summary>
/// <param name="Height">Rows of the grid (h_t).</param>
/// <param name="Width">Columns of the grid (w_t).</param>
public readonly record struct ScaleShape(int Height, int Width)
{
    /// <summary>Number of tokens of the step (h_t * w_t).</summary>
    public int Tokens => Height * Width;

    /// <inheritdoc/>
    public override string ToString() => $"{Height}x{Width}";
}

/// <summary>
/// The scale schedule of a next-scale generator: grid shapes r_1..r_T from coarse to fine. Grids never shrink from
/// one step to the next; non-square grids are allowed.
/// </summary>
public sealed class ScaleSchedule : IReadOnlyList<ScaleShape>
{
    private readonly ScaleShape[] _scales;

    /// <summary>Creates a schedule.</summary>
    /// <exception cref="ArgumentException">Empty, a non-positive size, or a grid smaller than its predecessor.</exception>
    public ScaleSchedule(IEnumerable<ScaleShape> scales)
    {
        ArgumentNullException.ThrowIfNull(scales);
        _scales = scales.ToArray();
        if (_scales.Length == 0)
            throw new ArgumentException("A scale schedule needs at least one scale.", nameof(scales));
        for (int i = 0; i < _scales.Length; i++)
        {
            if (_scales[i].Height <= 0 || _scales[i].Width <= 0)
                throw new ArgumentException($"Scale {i} has a non-positive size {_scales[i]}.", nameof(scales));
            if (i > 0 && (_scales[i].Height < _scales[i - 1].Height || _scales[i].Width < _scales[i - 1].Width))
                throw new ArgumentException($"Scale {i} ({_scales[i]}) is smaller than scale {i - 1} ({_scales[i - 1]}).", nameof(scales));
        }
    }

    /// <summary>A square schedule from side lengths, e.g. 1,2,3,4,6,8.</summary>
    public static ScaleSchedule Square(params int[] sides) => new(sides.Select(s => new ScaleShape(s, s)));

    /// <inheritdoc/>
    public ScaleShape this[int index] => _scales[index];

    /// <inheritdoc/>
    public int Count => _scales.Length;

    /// <summary>The finest grid r_T.</summary>
    public ScaleShape Final => _scales[^1];

    /// <summary>Total number of tokens over all steps.</summary>
    public int TotalTokens => _scales.Sum(s => s.Tokens);

    /// <summary>Index of the first scale whose grid is exactly <paramref name="shape"/>, or -1.</summary>
    public int IndexOf(ScaleShape shape) => Array.IndexOf(_scales, shape);

    /// <inheritdoc/>
    public IEnumerator<ScaleShape> GetEnumerator() => ((IEnumerable<ScaleShape>)_scales).GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => _scales.GetEnumerator();

    /// <inheritdoc/>
    public override string ToString() => string.Join(",", _scales.Select(s => s.Height == s.Width ? s.Height.ToString() : s.ToString()));
}
