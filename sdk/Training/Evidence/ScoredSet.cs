using System.Text.Json;
using System.Text.Json.Serialization;
using NextFlowRL.Rewards;

namespace NextFlowRL.Training.Evidence;

/// <summary>
/// The scored images of one evaluation, kept so that intervals and paired comparisons can be recomputed later (after a
/// resume, in an ablation table): one entry per image, with the prompt it belongs to (the bootstrap's resampling unit,
/// since the images of a prompt are not independent) and its bin. Regions are not kept.
/// </summary>
public sealed class ScoredSet
{
    /// <summary>The reward that scored the images.</summary>
    public required string Reward { get; init; }

    /// <summary>Index of the prompt of each image (0..prompts-1, images of a prompt consecutive).</summary>
    public required IReadOnlyList<int> Prompts { get; init; }

    /// <summary>The bin of each image's prompt, or null.</summary>
    public required IReadOnlyList<string?> Bins { get; init; }

    /// <summary>The reward result of each image.</summary>
    public required IReadOnlyList<StoredResult> Results { get; init; }

    /// <summary>Number of prompts.</summary>
    [JsonIgnore]
    public int PromptCount => Prompts.Count == 0 ? 0 : Prompts.Max() + 1;

    /// <summary>Builds a set from evaluation results.</summary>
    public static ScoredSet From(string reward, IReadOnlyList<int> prompts, IReadOnlyList<string?> bins, IReadOnlyList<RewardResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        if (prompts.Count != results.Count || bins.Count != results.Count)
            throw new ArgumentException($"{prompts.Count} prompt indices and {bins.Count} bins for {results.Count} results");
        return new ScoredSet
        {
            Reward = reward,
            Prompts = prompts.ToArray(),
            Bins = bins.ToArray(),
            Results = results.Select(r => new StoredResult(r.Score, r.Components.ToDictionary(kv => kv.Key, kv => kv.Value), r.Error)).ToArray(),
        };
    }

    /// <summary>The results as reward results (no regions).</summary>
    public IReadOnlyList<RewardResult> RewardResults() =>
        Results.Select(r => new RewardResult(r.Score, r.Components, Array.Empty<RewardRegion>(), r.Error)).ToArray();

    /// <summary>Row indices of each prompt.</summary>
    public IReadOnlyList<int[]> RowsByPrompt()
    {
        var rows = Enumerable.Range(0, PromptCount).Select(_ => new List<int>()).ToArray();
        for (int i = 0; i < Prompts.Count; i++) rows[Prompts[i]].Add(i);
        return rows.Select(r => r.ToArray()).ToArray();
    }

    /// <summary>True when both sets hold the same prompts in the same layout (a precondition of a paired comparison).</summary>
    public bool SameLayout(ScoredSet other) =>
        other is not null && Prompts.SequenceEqual(other.Prompts) && Bins.SequenceEqual(other.Bins);

    /// <summary>A set as the run folder (PascalCase) and <c>eval --out</c> (camelCase) write it.</summary>
    /// <exception cref="JsonException">The element is not a scored set.</exception>
    public static ScoredSet? FromJson(JsonElement element) => element.Deserialize<ScoredSet>(Json);

    /// <summary>Reads what the run folder (PascalCase) and <c>eval --out</c> (camelCase) write.</summary>
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        PropertyNameCaseInsensitive = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
}

/// <summary>One stored reward result.</summary>
/// <param name="Score">The scalar reward (NaN when failed).</param>
/// <param name="Components">Named parts (the OCR reward's counts among them).</param>
/// <param name="Error">The failure, or null.</param>
public sealed record StoredResult(double Score, IReadOnlyDictionary<string, double> Components, string? Error);
