using System.Globalization;
using System.Text;

namespace NextFlowRL.Training;

/// <summary>One configuration of an ablation: a name and the changes it makes to the base options.</summary>
/// <param name="Name">Row label.</param>
/// <param name="Apply">Edits a copy of the base options.</param>
public sealed record AblationVariant(string Name, Action<TrainerOptions> Apply)
{
    /// <summary>
    /// The standard ladder: vanilla GRPO (joint, alpha 0, no mask), +PANW, +VMR, +MP, and the full method.
    /// <paramref name="alpha"/> is the PANW exponent of the variants that use PANW.
    /// </summary>
    public static IReadOnlyList<AblationVariant> Standard(double alpha) =>
    [
        new("vanilla GRPO", o => { o.Vmr.Schedule = AlternationSchedule.Joint; o.Alpha = 0; o.Mask.Enabled = false; }),
        new("+PANW", o => { o.Vmr.Schedule = AlternationSchedule.Joint; o.Alpha = alpha; o.Mask.Enabled = false; }),
        new("+VMR", o => { o.Vmr.Schedule = AlternationSchedule.Fine; o.Alpha = 0; o.Mask.Enabled = false; }),
        new("+MP", o => { o.Vmr.Schedule = AlternationSchedule.Joint; o.Alpha = 0; o.Mask.Enabled = true; }),
        new("full (VMR+PANW+MP)", o => { o.Vmr.Schedule = AlternationSchedule.Fine; o.Alpha = alpha; o.Mask.Enabled = true; }),
    ];

    /// <summary>
    /// Extra variants of the full method from <c>key=value</c> strings: <c>alpha=0.6</c>, <c>k=4</c> (continuations),
    /// <c>m=2</c> (split index) or <c>m=8x8</c> (split resolution), <c>schedule=coarse</c>.
    /// </summary>
    /// <exception cref="ArgumentException">An unknown key or a malformed value.</exception>
    public static AblationVariant Parse(string spec, double alpha)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec);
        var parts = spec.Split('=', 2);
        if (parts.Length != 2) throw new ArgumentException($"ablation variant '{spec}' is not key=value (alpha=0.6, k=4, m=2, m=8x8, schedule=coarse)");
        var (key, value) = (parts[0].Trim().ToLowerInvariant(), parts[1].Trim());
        var full = Standard(alpha)[^1];
        Action<TrainerOptions> change = key switch
        {
            "alpha" => double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var a) ? o => o.Alpha = a : throw Bad(spec),
            "k" => int.TryParse(value, out var k) ? o => o.Vmr.Continuations = k : throw Bad(spec),
            "m" => int.TryParse(value, out var m) ? o => { o.Vmr.SplitScale = m; o.Vmr.SplitResolution = null; } : o => o.Vmr.SplitResolution = value,
            "schedule" => Enum.TryParse<AlternationSchedule>(value, true, out var s) ? o => o.Vmr.Schedule = s : throw Bad(spec),
            _ => throw new ArgumentException($"unknown ablation key '{key}' in '{spec}' (alpha, k, m, schedule)"),
        };
        return new AblationVariant($"full, {key}={value}", o => { full.Apply(o); change(o); });
    }

    private static ArgumentException Bad(string spec) => new($"ablation variant '{spec}' has a malformed value");
}

/// <summary>Aggregates ablation results into a markdown table (mean ± std over seeds).</summary>
public static class AblationTable
{
    /// <summary>Metrics reported per variant when present.</summary>
    public static IReadOnlyList<(string Key, string Label)> Columns { get; } =
        [("word_accuracy", "Word Acc (eval prompts)"), ("ned", "NED (eval prompts)"), ("facet/heldout/word_accuracy", "Word Acc (held-out words)"),
         ("facet/heldout/ned", "NED (held-out words)"), ("mean_score", "reward (eval prompts)")];

    /// <summary>Markdown with one row per variant; <paramref name="results"/> maps variant -> per-seed metrics.</summary>
    public static string Markdown(IReadOnlyList<(string Variant, IReadOnlyList<IReadOnlyDictionary<string, double>> Seeds)> results, IReadOnlyDictionary<string, double>? baseModel)
    {
        ArgumentNullException.ThrowIfNull(results);
        var columns = Columns.Where(c => results.Any(r => r.Seeds.Any(s => s.ContainsKey(c.Key)))).ToList();
        var sb = new StringBuilder();
        sb.Append("| variant | seeds | ").Append(string.Join(" | ", columns.Select(c => c.Label))).Append(" |\n");
        sb.Append("|---|---|").Append(string.Concat(columns.Select(_ => "---|"))).Append('\n');
        if (baseModel is not null)
            sb.Append("| base model | - | ").Append(string.Join(" | ", columns.Select(c => baseModel.TryGetValue(c.Key, out var v) ? F(v) : "-"))).Append(" |\n");
        foreach (var (variant, seeds) in results)
        {
            sb.Append("| ").Append(variant).Append(" | ").Append(seeds.Count).Append(" | ");
            sb.Append(string.Join(" | ", columns.Select(c =>
            {
                var values = seeds.Where(s => s.ContainsKey(c.Key)).Select(s => s[c.Key]).ToList();
                if (values.Count == 0) return "-";
                double mean = values.Average();
                double std = values.Count > 1 ? Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1)) : 0;
                return $"{F(mean)} ± {F(std)}";
            })));
            sb.Append(" |\n");
        }
        return sb.ToString();
    }

    private static string F(double v) => v.ToString("0.0000", CultureInfo.InvariantCulture);
}
