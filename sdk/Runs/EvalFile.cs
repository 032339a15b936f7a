using System.Text.Json;
using NextFlowRL.Training;
using NextFlowRL.Training.Evidence;

namespace NextFlowRL.Runs;

/// <summary>
/// An evaluation file of a run folder (<c>eval_before.json</c>, <c>eval_after.json</c>): its metrics, their 95%
/// intervals and the scored set. The one reader of these files: resume, the ablation and the run report use it.
/// </summary>
/// <param name="Metrics">Set-level metrics (numbers only).</param>
/// <param name="Intervals">Bootstrap intervals of the metrics that have one.</param>
/// <param name="Set">Every image's prompt, bin and result (null in files written before sets were kept).</param>
public sealed record EvalFile(IReadOnlyDictionary<string, double> Metrics, IReadOnlyDictionary<string, (double Low, double High)> Intervals, ScoredSet? Set)
{
    /// <summary>The name of <see cref="TrainerOptions.EvalPrompts"/> among the evaluation sets.</summary>
    public const string MainSet = TrainerOptions.MainEvalSet;

    /// <summary>
    /// The file of one evaluation: <c>eval_&lt;when&gt;.json</c> for the run's own (the held-out prompts read by the first
    /// reward), <c>eval_&lt;when&gt;.&lt;set&gt;.&lt;reader&gt;.json</c> for every other set and reader
    /// (<see cref="TrainerOptions.EvalSets"/>, <see cref="TrainerOptions.EvalReaders"/>).
    /// </summary>
    /// <param name="when"><c>before</c> or <c>after</c>.</param>
    /// <param name="set">The set's name.</param>
    /// <param name="reader">The reader's name.</param>
    /// <param name="main">True for the run's own evaluation.</param>
    public static string FileName(string when, string set = MainSet, string? reader = null, bool main = true)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(when);
        if (main) return $"eval_{when}.json";
        ArgumentException.ThrowIfNullOrWhiteSpace(reader);
        return $"eval_{when}.{set}.{reader}.json";
    }

    /// <summary>The further evaluations in a run folder: (set, reader) of every <c>eval_&lt;when&gt;.&lt;set&gt;.&lt;reader&gt;.json</c>, sorted.</summary>
    public static IReadOnlyList<(string Set, string Reader)> Further(string runDirectory, string when = "after")
    {
        ArgumentNullException.ThrowIfNull(runDirectory);
        if (!Directory.Exists(runDirectory)) return [];
        var prefix = $"eval_{when}.";
        return Directory.EnumerateFiles(runDirectory, prefix + "*.json")
            .Select(f => Path.GetFileName(f)[prefix.Length..^".json".Length].Split('.'))
            .Where(parts => parts.Length == 2 && parts.All(p => p.Length > 0))
            .Select(parts => (parts[0], parts[1]))
            .OrderBy(x => x.Item1, StringComparer.Ordinal).ThenBy(x => x.Item2, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>Reads an evaluation file; null when it does not exist.</summary>
    /// <exception cref="InvalidDataException">Not JSON, or no <c>metrics</c> object, or an unreadable set.</exception>
    public static EvalFile? Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("metrics", out var m) || m.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{path} is not an evaluation file (no metrics object)");
            var metrics = m.EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.Number).ToDictionary(p => p.Name, p => p.Value.GetDouble(), StringComparer.Ordinal);
            var intervals = new Dictionary<string, (double, double)>(StringComparer.Ordinal);
            if (root.TryGetProperty("ci", out var ci) && ci.ValueKind == JsonValueKind.Object)
            {
                foreach (var p in ci.EnumerateObject())
                {
                    if (p.Value.ValueKind == JsonValueKind.Array && p.Value.GetArrayLength() == 2
                        && p.Value[0].ValueKind == JsonValueKind.Number && p.Value[1].ValueKind == JsonValueKind.Number)
                        intervals[p.Name] = (p.Value[0].GetDouble(), p.Value[1].GetDouble());
                }
            }
            var set = root.TryGetProperty("set", out var s) && s.ValueKind == JsonValueKind.Object ? ScoredSet.FromJson(s) : null;
            return new EvalFile(metrics, intervals, set);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON: {e.Message}", e);
        }
        catch (Exception e) when (e is NotSupportedException or InvalidOperationException or KeyNotFoundException)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }
}
