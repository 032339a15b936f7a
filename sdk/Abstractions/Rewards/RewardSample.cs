using NextFlowRL.Imaging;

namespace NextFlowRL.Rewards;

/// <summary>One generated image to score, with the prompt it was generated for.</summary>
/// <param name="Image">The generated image (RGB, any size).</param>
/// <param name="Prompt">The prompt the image was generated from.</param>
/// <param name="Metadata">
/// Per-sample facts a reward may use, for example <see cref="RewardMetadataKeys.TargetWords"/>. Never null; empty
/// when there is nothing to say.
/// </param>
public sealed record RewardSample(RgbImage Image, string Prompt, IReadOnlyDictionary<string, string> Metadata)
{
    /// <summary>A sample without metadata.</summary>
    public RewardSample(RgbImage image, string prompt)
        : this(image, prompt, EmptyMetadata)
    {
    }

    /// <summary>The shared empty metadata dictionary.</summary>
    public static IReadOnlyDictionary<string, string> EmptyMetadata { get; } = new Dictionary<string, string>();
}

/// <summary>Well-known keys of <see cref="RewardSample.Metadata"/>.</summary>
public static class RewardMetadataKeys
{
    /// <summary>The words the image should show, separated by single spaces (overrides words parsed from the prompt).</summary>
    public const string TargetWords = "target_words";

    /// <summary>
    /// The evaluation bin of the sample (e.g. <c>1region-heldout</c>): evaluations and <c>score --summary</c> report
    /// their metrics per bin and per dash-separated part shared by several bins.
    /// </summary>
    public const string Bin = "bin";
}
