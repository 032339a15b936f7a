namespace NextFlowRL.Rewards;

/// <summary>The score of one sample.</summary>
/// <param name="Score">The scalar reward. Finite unless <paramref name="Error"/> is set.</param>
/// <param name="Components">Named parts of the score (for example <c>word_acc</c>, <c>ned</c>), logged by trainers.</param>
/// <param name="Regions">Image regions that determined the score (used by Mask Propagation); empty when the reward has none.</param>
/// <param name="Error">
/// Set when this one sample could not be scored (the others in the batch still are); <paramref name="Score"/> is then NaN.
/// </param>
public sealed record RewardResult(
    double Score,
    IReadOnlyDictionary<string, double> Components,
    IReadOnlyList<RewardRegion> Regions,
    string? Error = null)
{
    /// <summary>A score without components or regions.</summary>
    public static RewardResult Of(double score) => new(score, new Dictionary<string, double>(), Array.Empty<RewardRegion>());

    /// <summary>A failed sample with a reason.</summary>
    public static RewardResult Failed(string error) =>
        new(double.NaN, new Dictionary<string, double>(), Array.Empty<RewardRegion>(), error);

    /// <summary>True when the sample was scored and the score is finite.</summary>
    public bool IsValid => Error is null && double.IsFinite(Score);
}

/// <summary>
/// A pixel box of the scored image that determined the reward, e.g. a recognized word.
/// </summary>
/// <param name="X">Left edge in pixels.</param>
/// <param name="Y">Top edge in pixels.</param>
/// <param name="Width">Width in pixels.</param>
/// <param name="Height">Height in pixels.</param>
/// <param name="Confidence">Confidence in [0, 1].</param>
/// <param name="Label">What was seen there (e.g. the recognized text).</param>
/// <param name="Target">
/// The reward target this region was matched to (e.g. the target word), or null when the region was seen but did not
/// count toward the reward. Mask Propagation uses matched regions.
/// </param>
public sealed record RewardRegion(int X, int Y, int Width, int Height, double Confidence, string Label, string? Target = null);
