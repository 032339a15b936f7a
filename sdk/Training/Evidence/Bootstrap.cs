using NextFlowRL.Rewards;

namespace NextFlowRL.Training.Evidence;

/// <summary>A point estimate with its 95% confidence interval.</summary>
/// <param name="Estimate">The statistic on the data as observed.</param>
/// <param name="Low">2.5th percentile of the bootstrap distribution.</param>
/// <param name="High">97.5th percentile of the bootstrap distribution.</param>
public sealed record Interval(double Estimate, double Low, double High)
{
    /// <summary>True when the whole interval lies above zero (a difference that holds at 95%).</summary>
    public bool AboveZero => Low > 0;

    /// <summary>True when the whole interval lies below zero.</summary>
    public bool BelowZero => High < 0;

    /// <summary><c>0.1234 [0.1000, 0.1500]</c>.</summary>
    public override string ToString() =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Estimate:0.0000} [{Low:0.0000}, {High:0.0000}]");
}

/// <summary>
/// Percentile bootstrap over clusters (prompts: the images of one prompt share the prompt's difficulty, so prompts, not
/// images, are the independent units). Every metric a reward's summary produces gets an interval, including
/// word-weighted ratios such as Word Accuracy (recomputed on each resample, not averaged). Deterministic for a seed.
/// </summary>
public static class Bootstrap
{
    /// <summary>Resamples used unless told otherwise.</summary>
    public const int DefaultResamples = 1000;

    /// <summary>
    /// The core: <paramref name="statistic"/> of the identity selection and of <paramref name="resamples"/> selections of
    /// <paramref name="clusters"/> cluster indices drawn with replacement; percentile intervals per key (keys whose
    /// resampled values are not finite often enough get NaN bounds).
    /// </summary>
    public static IReadOnlyDictionary<string, Interval> Resample(int clusters, Func<int[], IReadOnlyDictionary<string, double>> statistic,
        int resamples = DefaultResamples, long seed = 1)
    {
        ArgumentNullException.ThrowIfNull(statistic);
        ArgumentOutOfRangeException.ThrowIfLessThan(clusters, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(resamples, 1);
        var rng = new Random(unchecked((int)(seed ^ (seed >> 32))));
        var draws = new List<IReadOnlyDictionary<string, double>> { statistic(Enumerable.Range(0, clusters).ToArray()) };
        var pick = new int[clusters];
        for (int b = 0; b < resamples; b++)
        {
            for (int i = 0; i < clusters; i++) pick[i] = rng.Next(clusters);
            draws.Add(statistic(pick));
        }
        return FromDraws(draws);
    }

    /// <summary>
    /// Intervals from a statistic's values: element 0 on the data as observed, the rest on bootstrap resamples. A key
    /// whose resampled values are finite in fewer than half of the resamples gets NaN bounds.
    /// </summary>
    public static IReadOnlyDictionary<string, Interval> FromDraws(IReadOnlyList<IReadOnlyDictionary<string, double>> draws)
    {
        ArgumentNullException.ThrowIfNull(draws);
        if (draws.Count == 0) throw new ArgumentException("no draws", nameof(draws));
        var estimate = draws[0];
        int resamples = draws.Count - 1;
        return estimate.ToDictionary(kv => kv.Key, kv =>
        {
            var list = draws.Skip(1).Select(d => d.TryGetValue(kv.Key, out var v) ? v : double.NaN).Where(double.IsFinite).ToList();
            if (resamples == 0 || list.Count < resamples / 2.0) return new Interval(kv.Value, double.NaN, double.NaN);
            list.Sort();
            return new Interval(kv.Value, Percentile(list, 0.025), Percentile(list, 0.975));
        }, StringComparer.Ordinal);
    }

    /// <summary>Linear-interpolated percentile of sorted values.</summary>
    public static double Percentile(IReadOnlyList<double> sorted, double q)
    {
        ArgumentNullException.ThrowIfNull(sorted);
        if (sorted.Count == 0) return double.NaN;
        double at = q * (sorted.Count - 1);
        int lo = (int)Math.Floor(at), hi = Math.Min(lo + 1, sorted.Count - 1);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
    }

    /// <summary>Intervals of every metric of a scored set (bins and facets included), resampling its prompts.</summary>
    public static IReadOnlyDictionary<string, Interval> Intervals(IRewardModel reward, ScoredSet set, int resamples = DefaultResamples, long seed = 1)
    {
        ArgumentNullException.ThrowIfNull(reward);
        ArgumentNullException.ThrowIfNull(set);
        var results = set.RewardResults();
        var byPrompt = set.RowsByPrompt();
        return Resample(byPrompt.Count, pick => Metrics(reward, results, set.Bins, Rows(byPrompt, pick)), resamples, seed);
    }

    /// <summary>
    /// The paired difference <c>metric(a) - metric(b)</c> of two scored sets with the same prompts and images per prompt
    /// (same evaluation seeds): both are resampled with the same prompt indices, so prompt difficulty cancels.
    /// </summary>
    /// <exception cref="ArgumentException">The sets do not hold the same prompts in the same layout.</exception>
    public static IReadOnlyDictionary<string, Interval> PairedDifference(IRewardModel reward, ScoredSet a, ScoredSet b, int resamples = DefaultResamples, long seed = 1)
    {
        ArgumentNullException.ThrowIfNull(reward);
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (!a.SameLayout(b)) throw new ArgumentException("a paired comparison needs the same prompts and images per prompt in both sets");
        var ra = a.RewardResults();
        var rb = b.RewardResults();
        var byPrompt = a.RowsByPrompt();
        return Resample(byPrompt.Count, pick =>
        {
            var rows = Rows(byPrompt, pick);
            return Difference(Metrics(reward, ra, a.Bins, rows), Metrics(reward, rb, b.Bins, rows));
        }, resamples, seed);
    }

    /// <summary>
    /// Runs of a variant and of a baseline at the same seeds (paired by position), all on the same prompts: the pooled
    /// metric of each and their difference, with a two-level bootstrap (seeds with replacement, then prompts with
    /// replacement, the same picks for variant and baseline), so the interval carries both the training seeds' and the
    /// prompts' variation.
    /// </summary>
    /// <returns>Per key: the variant's pooled metric, the baseline's (null without one) and the difference.</returns>
    public static (IReadOnlyDictionary<string, Interval> Variant, IReadOnlyDictionary<string, Interval>? Baseline, IReadOnlyDictionary<string, Interval>? Difference) Runs(
        IRewardModel reward, IReadOnlyList<ScoredSet> variant, IReadOnlyList<ScoredSet>? baseline, int resamples = DefaultResamples, long seed = 1)
    {
        ArgumentNullException.ThrowIfNull(reward);
        ArgumentNullException.ThrowIfNull(variant);
        if (variant.Count == 0) throw new ArgumentException("no runs", nameof(variant));
        var layout = variant[0];
        foreach (var s in variant.Concat(baseline ?? []))
            if (!s.SameLayout(layout)) throw new ArgumentException("every run must be evaluated on the same prompts with the same images per prompt");
        if (baseline is not null && baseline.Count != variant.Count) throw new ArgumentException($"{variant.Count} variant runs but {baseline.Count} baseline runs");
        var byPrompt = layout.RowsByPrompt();
        int p = byPrompt.Count, n = variant.Count;
        var v = variant.Select(s => s.RewardResults()).ToArray();
        var bl = baseline?.Select(s => s.RewardResults()).ToArray();
        var rng = new Random(unchecked((int)(seed * 7919 + 17)));
        // One draw = n seed picks, each with its own p prompt picks (shared by variant and baseline).
        IReadOnlyDictionary<string, double> Pooled(IReadOnlyList<RewardResult>[] runs, int[] seeds, int[][] prompts)
        {
            var results = new List<RewardResult>();
            var bins = new List<string?>();
            for (int i = 0; i < seeds.Length; i++)
                foreach (var c in prompts[i])
                    foreach (var row in byPrompt[c])
                    {
                        results.Add(runs[seeds[i]][row]);
                        bins.Add(layout.Bins[row]);
                    }
            return RewardMetrics.Summarize(reward, results, bins);
        }
        var identitySeeds = Enumerable.Range(0, n).ToArray();
        var identityPrompts = Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, p).ToArray()).ToArray();
        var draws = new List<(int[] Seeds, int[][] Prompts)> { (identitySeeds, identityPrompts) };
        for (int b = 0; b < resamples; b++)
            draws.Add((Enumerable.Range(0, n).Select(_ => rng.Next(n)).ToArray(), Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, p).Select(_ => rng.Next(p)).ToArray()).ToArray()));
        IReadOnlyDictionary<string, Interval> Over(Func<int[], int[][], IReadOnlyDictionary<string, double>> stat) =>
            FromDraws(draws.Select(d => stat(d.Seeds, d.Prompts)).ToList());
        var variantIntervals = Over((s, pr) => Pooled(v, s, pr));
        if (bl is null) return (variantIntervals, null, null);
        var baselineIntervals = Over((s, pr) => Pooled(bl, s, pr));
        var difference = Over((s, pr) => Difference(Pooled(v, s, pr), Pooled(bl, s, pr)));
        return (variantIntervals, baselineIntervals, difference);
    }

    private static int[] Rows(IReadOnlyList<int[]> byPrompt, int[] pick) => pick.SelectMany(c => byPrompt[c]).ToArray();

    private static IReadOnlyDictionary<string, double> Metrics(IRewardModel reward, IReadOnlyList<RewardResult> results, IReadOnlyList<string?> bins, int[] rows) =>
        RewardMetrics.Summarize(reward, rows.Select(r => results[r]).ToList(), rows.Select(r => bins[r]).ToList());

    private static Dictionary<string, double> Difference(IReadOnlyDictionary<string, double> a, IReadOnlyDictionary<string, double> b) =>
        a.Where(kv => b.ContainsKey(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value - b[kv.Key], StringComparer.Ordinal);
}
