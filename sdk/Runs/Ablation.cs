using System.Globalization;
using System.Text;
using NextFlowRL.Rewards;
using NextFlowRL.Training.Evidence;
using NextFlowRL.Training;

namespace NextFlowRL.Runs;

/// <summary>One configuration of an ablation: a name and the changes it makes to the base options.</summary>
/// <param name="Name">Row label.</param>
/// <param name="Apply">Edits a copy of the base options.</param>
public sealed record AblationVariant(string Name, Action<TrainerOptions> Apply)
{
    /// <summary>
    /// The standard ladder: vanilla GRPO (joint, alpha 0, no mask), vanilla with the full method's G x K images per
    /// prompt (compute-matched), +PANW, +VMR, +MP, and the full method.
    /// <paramref name="alpha"/> is the PANW exponent of the variants that use PANW.
    /// </summary>
    public static IReadOnlyList<AblationVariant> Standard(double alpha) =>
    [
        new("vanilla GRPO", o => { o.Vmr.Schedule = AlternationSchedule.Joint; o.Alpha = 0; o.Mask.Enabled = false; }),
        // Compute-matched: as many sampled (and scored) images per prompt as the full method's G x K.
        new("vanilla GRPO, G x K samples", o => { o.GroupSize *= Math.Max(1, o.Vmr.Continuations); o.Vmr.Schedule = AlternationSchedule.Joint; o.Alpha = 0; o.Mask.Enabled = false; }),
        new("+PANW", o => { o.Vmr.Schedule = AlternationSchedule.Joint; o.Alpha = alpha; o.Mask.Enabled = false; }),
        new("+VMR", o => { o.Vmr.Schedule = AlternationSchedule.Fine; o.Alpha = 0; o.Mask.Enabled = false; }),
        new("+MP", o => { o.Vmr.Schedule = AlternationSchedule.Joint; o.Alpha = 0; o.Mask.Enabled = true; }),
        new("full (VMR+PANW+MP)", o => { o.Vmr.Schedule = AlternationSchedule.Fine; o.Alpha = alpha; o.Mask.Enabled = true; }),
    ];

    /// <summary>
    /// Extra variants of the full method from <c>key=value</c> strings: <c>alpha=0.6</c>, <c>k=4</c> (continuations),
    /// <c>m=2</c> (split index) or <c>m=8x8</c> (split resolution), <c>schedule=coarse</c>, <c>epochs=2</c> (inner epochs),
    /// <c>kl=0.05</c> (KL weight), <c>cfg=1</c> (guidance scale of the rollouts and evaluations).
    /// </summary>
    /// <exception cref="ArgumentException">An unknown key or a malformed value.</exception>
    public static AblationVariant Parse(string spec, double alpha)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec);
        var parts = spec.Split('=', 2);
        if (parts.Length != 2) throw new ArgumentException($"ablation variant '{spec}' is not key=value ({Examples})");
        var (key, value) = (parts[0].Trim().ToLowerInvariant(), parts[1].Trim());
        var full = Standard(alpha)[^1];
        Action<TrainerOptions> change = key switch
        {
            "alpha" => double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var a) ? o => o.Alpha = a : throw Bad(spec),
            "k" => int.TryParse(value, out var k) ? o => o.Vmr.Continuations = k : throw Bad(spec),
            "m" => int.TryParse(value, out var m) ? o => { o.Vmr.SplitScale = m; o.Vmr.SplitResolution = null; } : o => o.Vmr.SplitResolution = value,
            "schedule" => Enum.TryParse<AlternationSchedule>(value, true, out var s) ? o => o.Vmr.Schedule = s : throw Bad(spec),
            "epochs" => int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var e) ? o => o.InnerEpochs = e : throw Bad(spec),
            "kl" => double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var kl) ? o => o.KlBeta = kl : throw Bad(spec),
            "cfg" => double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var cfg) ? o => o.Rollout.CfgScale = cfg : throw Bad(spec),
            _ => throw new ArgumentException($"unknown ablation key '{key}' in '{spec}' ({Keys})"),
        };
        return new AblationVariant($"full, {key}={value}", o => { full.Apply(o); change(o); });
    }

    /// <summary>
    /// The variants whose names contain one of <paramref name="words"/> as whole words, case-insensitively:
    /// <c>MP</c> selects <c>+MP</c> and the full method, not <c>G x K samples</c>; <c>G x K</c> the compute-matched vanilla.
    /// </summary>
    public static IEnumerable<AblationVariant> Select(IEnumerable<AblationVariant> variants, IEnumerable<string> words)
    {
        ArgumentNullException.ThrowIfNull(variants);
        var patterns = words.Where(w => !string.IsNullOrWhiteSpace(w))
            .Select(w => new System.Text.RegularExpressions.Regex($@"(?<![A-Za-z0-9]){System.Text.RegularExpressions.Regex.Escape(w.Trim())}(?![A-Za-z0-9])",
                System.Text.RegularExpressions.RegexOptions.IgnoreCase | System.Text.RegularExpressions.RegexOptions.CultureInvariant)).ToList();
        return variants.Where(v => patterns.Any(p => p.IsMatch(v.Name)));
    }

    /// <summary>The keys <see cref="Parse"/> knows.</summary>
    public const string Keys = "alpha, k, m, schedule, epochs, kl, cfg";

    /// <summary>One example of each key.</summary>
    public const string Examples = "alpha=0.6, k=4, m=2, m=8x8, schedule=coarse, epochs=2, kl=0.05, cfg=1";

    private static ArgumentException Bad(string spec) => new($"ablation variant '{spec}' has a malformed value");
}

/// <summary>
/// The ablation table: per variant and metric the pooled value over its seeds with a 95% interval, and the paired
/// difference to the baseline variant (vanilla GRPO) with its interval and a verdict the interval supports. Intervals
/// come from a two-level bootstrap (<see cref="Bootstrap.Runs"/>: seeds, then prompts), so they carry the training
/// seeds' variation as well as the prompts'.
/// </summary>
public static class AblationTable
{
    /// <summary>The columns when a run names none (<see cref="TrainerOptions.ReportMetrics"/>): any reward's mean score, as the headline.</summary>
    public static IReadOnlyList<ReportMetric> DefaultColumns { get; } = [new ReportMetric { Key = "mean_score", Label = "reward (eval prompts)", Headline = true }];

    /// <summary>One sentence the interval supports: "helps", "hurts" or "no measurable effect".</summary>
    public static string Verdict(Interval difference)
    {
        ArgumentNullException.ThrowIfNull(difference);
        if (!double.IsFinite(difference.Low)) return "not measured";
        return difference.AboveZero ? "helps" : difference.BelowZero ? "hurts" : "no measurable effect";
    }

    /// <summary>
    /// Markdown with one row per variant. <paramref name="results"/> maps a variant to its runs' evaluation sets (one per
    /// seed, all on the same prompts and evaluation seeds); <paramref name="baselineVariant"/> names the row the others
    /// are paired against (runs paired by seed position); <paramref name="baseModel"/> is the untrained model's set.
    /// The paired column and verdict are the headline metric's (<see cref="ReportMetric.Headline"/>; the first column
    /// present when the headline is not).
    /// </summary>
    public static string Markdown(IReadOnlyList<(string Variant, IReadOnlyList<ScoredSet> Runs)> results, IRewardModel reward, string? baselineVariant,
        ScoredSet? baseModel, int resamples = Bootstrap.DefaultResamples, long seed = 1, IReadOnlyList<ReportMetric>? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(results);
        ArgumentNullException.ThrowIfNull(reward);
        var wanted = metrics is { Count: > 0 } ? metrics : DefaultColumns;
        var baseline = results.FirstOrDefault(r => r.Variant == baselineVariant);
        var computed = results.Where(r => r.Runs.Count > 0).Select(r =>
        {
            bool paired = baseline.Runs is { Count: > 0 } && r.Variant != baselineVariant && baseline.Runs.Count == r.Runs.Count;
            var (v, _, d) = Bootstrap.Runs(reward, r.Runs, paired ? baseline.Runs : null, resamples, seed);
            return (r.Variant, Seeds: r.Runs.Count, Values: v, Difference: d);
        }).ToList();
        var present = computed.SelectMany(c => c.Values.Keys).ToHashSet(StringComparer.Ordinal);
        var columns = wanted.Where(c => present.Contains(c.Key)).ToList();
        // The configured headline, or the first column when this evaluation lacks it (another prompt set's table).
        var headlineMetric = columns.FirstOrDefault(c => c.Headline) ?? columns.FirstOrDefault();
        bool headline = headlineMetric is not null && baselineVariant is not null;
        var sb = new StringBuilder();
        sb.Append("| variant | seeds | ").Append(string.Join(" | ", columns.Select(c => c.Label)));
        if (headline) sb.Append(" | ").Append(headlineMetric!.Label).Append(" minus ").Append(baselineVariant).Append(" (paired) | verdict");
        sb.Append(" |\n|---|---|").Append(string.Concat(columns.Select(_ => "---|"))).Append(headline ? "---|---|" : "").Append('\n');
        if (baseModel is not null)
        {
            var m = RewardMetrics.Summarize(reward, baseModel.RewardResults(), baseModel.Bins);
            sb.Append("| base model | - | ").Append(string.Join(" | ", columns.Select(c => m.TryGetValue(c.Key, out var x) ? F(x) : "-")));
            sb.Append(headline ? " | - | - |\n" : " |\n");
        }
        foreach (var c in computed)
        {
            sb.Append("| ").Append(c.Variant).Append(" | ").Append(c.Seeds).Append(" | ");
            sb.Append(string.Join(" | ", columns.Select(col => c.Values.TryGetValue(col.Key, out var i) ? Cell(i) : "-")));
            if (headline)
            {
                if (c.Difference is not null && c.Difference.TryGetValue(headlineMetric!.Key, out var d)) sb.Append(" | ").Append(Signed(d)).Append(" | ").Append(Verdict(d));
                else sb.Append(" | - | -");
            }
            sb.Append(" |\n");
        }
        return sb.ToString();
    }

    private static string Cell(Interval i) => double.IsFinite(i.Low) ? $"{F(i.Estimate)} [{F(i.Low)}, {F(i.High)}]" : F(i.Estimate);

    private static string Signed(Interval i) =>
        string.Create(CultureInfo.InvariantCulture, $"{i.Estimate:+0.0000;-0.0000;0} [{i.Low:+0.0000;-0.0000;0}, {i.High:+0.0000;-0.0000;0}]");

    private static string F(double v) => v.ToString("0.0000", CultureInfo.InvariantCulture);
}
