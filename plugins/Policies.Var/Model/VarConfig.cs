using System.Text.Json;
using System.Text.Json.Serialization;

namespace NextFlowRL.Policies.Var.Model;

/// <summary>Architecture of the multi-scale residual VQ-VAE tokenizer.</summary>
public sealed record TokenizerConfig
{
    /// <summary>Image side (square RGB images).</summary>
    public int ImageSize { get; init; } = 64;

    /// <summary>
    /// Encoder/decoder family: <c>linear</c> (a patch projection fitted by PCA and a codebook fitted by k-means; no
    /// gradient training, for CPU-only budgets), <c>patch</c> (a strided patch convolution, then convolutions on the
    /// latent grid) or <c>conv</c> (a stack of stride-2 convolutions at full resolution); the last two train by gradient.
    /// </summary>
    public string Architecture { get; init; } = "linear";

    /// <summary>Base channel count of the convolutional encoder/decoder (the patch family uses 4x this).</summary>
    public int Channels { get; init; } = 16;

    /// <summary>Latent (code) channels.</summary>
    public int LatentChannels { get; init; } = 48;

    /// <summary>Number of stride-2 downsamplings (latent side = ImageSize / 2^Downsamples).</summary>
    public int Downsamples { get; init; } = 2;

    /// <summary>Codebook size V.</summary>
    public int CodebookSize { get; init; } = 4096;

    /// <summary>Number of shared phi refinement convolutions (spread over the scales).</summary>
    public int PhiCount { get; init; } = 2;

    /// <summary>Scale schedule as [height, width] pairs; the last one must equal the latent grid.</summary>
    public int[][] Scales { get; init; } = [[1, 1], [2, 2], [3, 3], [4, 4], [6, 6], [8, 8], [12, 12], [16, 16]];

    /// <summary>Latent grid side.</summary>
    [JsonIgnore] public int LatentSize => ImageSize >> Downsamples;

    /// <summary>The schedule as a contract object.</summary>
    public ScaleSchedule Schedule() => new(Scales.Select(s => new ScaleShape(s[0], s[1])));

    /// <summary>Throws with a clear message when the configuration is inconsistent.</summary>
    public void Validate()
    {
        if (ImageSize <= 0 || Channels <= 0 || LatentChannels <= 0 || CodebookSize < 2 || PhiCount < 1 || Downsamples < 0)
            throw new InvalidDataException("Tokenizer config: sizes must be positive (codebook >= 2).");
        if (Architecture is not ("linear" or "patch" or "conv")) throw new InvalidDataException($"Tokenizer config: unknown architecture '{Architecture}' (linear, patch or conv).");
        if (ImageSize % (1 << Downsamples) != 0) throw new InvalidDataException($"Tokenizer config: image size {ImageSize} not divisible by 2^{Downsamples}.");
        if (Scales.Length == 0 || Scales.Any(s => s.Length != 2)) throw new InvalidDataException("Tokenizer config: scales must be [height, width] pairs.");
        var schedule = Schedule();
        if (schedule.Final != new ScaleShape(LatentSize, LatentSize))
            throw new InvalidDataException($"Tokenizer config: the last scale {schedule.Final} must equal the latent grid {LatentSize}x{LatentSize}.");
    }
}

/// <summary>Architecture of the next-scale transformer and its character-level text encoder.</summary>
public sealed record GeneratorConfig
{
    /// <summary>Model width.</summary>
    public int Dim { get; init; } = 128;

    /// <summary>Transformer blocks.</summary>
    public int Depth { get; init; } = 4;

    /// <summary>Attention heads.</summary>
    public int Heads { get; init; } = 4;

    /// <summary>MLP hidden size as a multiple of Dim.</summary>
    public int MlpRatio { get; init; } = 4;

    /// <summary>Maximum quoted words the text encoder reads (one per text region).</summary>
    public int MaxWords { get; init; } = 2;

    /// <summary>Maximum characters per quoted word (longer words are cut).</summary>
    public int MaxWordChars { get; init; } = 8;

    /// <summary>Probability of dropping the condition during pretraining (for classifier-free guidance).</summary>
    public double CondDropout { get; init; } = 0.1;

    /// <summary>Throws with a clear message when the configuration is inconsistent.</summary>
    public void Validate()
    {
        if (Dim <= 0 || Depth <= 0 || Heads <= 0 || Dim % Heads != 0 || MlpRatio <= 0 || MaxWords <= 0 || MaxWordChars <= 0)
            throw new InvalidDataException("Generator config: sizes must be positive and Dim divisible by Heads.");
        if (CondDropout is < 0 or >= 1) throw new InvalidDataException("Generator config: CondDropout must be in [0, 1).");
    }
}

/// <summary>The full model configuration stored as <c>config.json</c> beside the weights.</summary>
public sealed record VarModelConfig
{
    /// <summary>Format marker.</summary>
    public string Format { get; init; } = "nextflowrl-var/1";

    /// <summary>Model name (e.g. <c>tiny-text</c>).</summary>
    public string Name { get; init; } = "tiny-text";

    /// <summary>Tokenizer architecture.</summary>
    public TokenizerConfig Tokenizer { get; init; } = new();

    /// <summary>Generator architecture.</summary>
    public GeneratorConfig Generator { get; init; } = new();

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>Serializes to indented JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Parses and validates a configuration.</summary>
    /// <exception cref="InvalidDataException">Not valid JSON or inconsistent.</exception>
    public static VarModelConfig FromJson(string json, string source)
    {
        VarModelConfig? c;
        try { c = JsonSerializer.Deserialize<VarModelConfig>(json); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: invalid model config JSON ({e.Message})."); }
        if (c is null || c.Tokenizer is null || c.Generator is null) throw new InvalidDataException($"{source}: empty model config.");
        if (c.Format != "nextflowrl-var/1") throw new InvalidDataException($"{source}: unknown format '{c.Format}' (expected nextflowrl-var/1).");
        try
        {
            c.Tokenizer.Validate();
            c.Generator.Validate();
        }
        catch (InvalidDataException e) { throw new InvalidDataException($"{source}: {e.Message}"); }
        return c;
    }
}
