namespace NextFlowRL.Policies;

/// <summary>How a policy samples tokens. The same options and seed give the same tokens.</summary>
public sealed record SamplingOptions
{
    /// <summary>Seed of the sampler's random generator for this call (used when <see cref="RowSeeds"/> is null).</summary>
    public long Seed { get; init; }

    /// <summary>
    /// One seed per row of the call, or null. When set, row i draws every token from its own generator seeded with
    /// <c>RowSeeds[i]</c>, so a row's tokens depend on its seed and its inputs only, never on which other rows share the
    /// call: a batch split into shards (over processes or machines) samples what the whole batch samples. When null,
    /// one generator seeded with <see cref="Seed"/> serves the whole call. <see cref="SamplingRandom"/> implements both.
    /// </summary>
    public IReadOnlyList<long>? RowSeeds { get; init; }

    /// <summary>Classifier-free guidance scale; 0 disables guidance (plain conditional distribution).</summary>
    public double CfgScale { get; init; }

    /// <summary>Keep only the k most likely tokens per site; 0 disables.</summary>
    public int TopK { get; init; }

    /// <summary>Keep the smallest set of tokens with cumulative probability at least p; 1 disables.</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Softmax temperature (&gt; 0).</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary>The plain conditional distribution: no guidance, no truncation, temperature 1.</summary>
    public static SamplingOptions Plain(long seed) => new() { Seed = seed };

    /// <summary>Throws when a value is out of range.</summary>
    /// <exception cref="ArgumentException">Negative guidance or top-k, top-p outside (0, 1], temperature not positive.</exception>
    public void Validate()
    {
        if (!(CfgScale >= 0) || double.IsInfinity(CfgScale)) throw new ArgumentException($"CfgScale must be >= 0, got {CfgScale}.");
        if (TopK < 0) throw new ArgumentException($"TopK must be >= 0, got {TopK}.");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"TopP must be in (0, 1], got {TopP}.");
        if (!(Temperature > 0) || double.IsInfinity(Temperature)) throw new ArgumentException($"Temperature must be > 0, got {Temperature}.");
    }
}
