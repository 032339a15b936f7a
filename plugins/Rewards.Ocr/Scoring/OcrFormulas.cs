namespace NextFlowRL.Rewards.Ocr.Scoring;

/// <summary>The paper's OCR reward of one image (method.md section 6) with its parts.</summary>
/// <param name="Comp">Completeness: <c>(1/N) sum_g [g in P] min(confidence of the copies of g)</c>.</param>
/// <param name="Sim">Similarity: <c>(1/N) sum_g LD(g, p*) s*</c>.</param>
/// <param name="Pen">Penalty, already including the 0.6 factor: <c>0.6 BagDist(join P, join G) / (|join P| + |join G|)</c>.</param>
/// <param name="Counts">The CVTG-2K counts of the same image.</param>
/// <param name="BestMatch">For each target word (in order), the index in the recognized list of <c>p*</c>; -1 when none.</param>
public sealed record PaperReward(double Comp, double Sim, double Pen, CvtgCounts Counts, IReadOnlyList<int> BestMatch)
{
    /// <summary><c>Comp + Sim - Pen</c>, at most 2.</summary>
    public double Reward => Comp + Sim - Pen;
}

/// <summary>Flow-GRPO's OCR reward of one image.</summary>
/// <param name="Target">The target with whitespace removed, lowercased.</param>
/// <param name="Recognized">The recognized text joined without whitespace, lowercased.</param>
/// <param name="Distance"><c>0</c> when the target is a substring of the recognized text, else <c>min(Levenshtein, |target|)</c>.</param>
/// <param name="Reward"><c>1 - Distance / |target|</c>; 0 when the target is empty (documented choice, no division by zero).</param>
public sealed record EditReward(string Target, string Recognized, int Distance, double Reward)
{
    /// <summary>True when the target occurs verbatim in the recognized text.</summary>
    public bool IsSubstring => Target.Length > 0 && Recognized.Contains(Target, StringComparison.Ordinal);
}

/// <summary>
/// The reward formulas of method.md section 6 on already-normalized words (see <see cref="TextMetrics.Normalize"/>).
/// Pure functions: unit-testable on hand-made word lists.
/// </summary>
public static class OcrFormulas
{
    /// <summary>The factor of the penalty term.</summary>
    public const double PenaltyWeight = 0.6;

    /// <summary>
    /// The paper's reward. <paramref name="targets"/> are the N target words G, <paramref name="recognized"/> the
    /// recognized words P with confidences in [0, 1]. With no targets, Comp and Sim are 0 and the reward is
    /// <c>-Pen</c> (0 when nothing was recognized, -0.6 when anything was): nothing to render means text is penalized.
    /// </summary>
    public static PaperReward Paper(IReadOnlyList<string> targets, IReadOnlyList<(string Text, double Confidence)> recognized)
    {
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(recognized);
        int n = targets.Count;
        double comp = 0, sim = 0;
        var best = new int[n];
        for (int gi = 0; gi < n; gi++)
        {
            var g = targets[gi];
            double minConf = double.PositiveInfinity;
            int bestIndex = -1;
            double bestLd = double.NegativeInfinity, bestConf = 0;
            for (int pi = 0; pi < recognized.Count; pi++)
            {
                var (p, s) = recognized[pi];
                if (p == g) minConf = Math.Min(minConf, s);
                double ld = TextMetrics.Similarity(g, p);
                // p* = highest LD; among equal LD the most confident copy.
                if (ld > bestLd || (ld == bestLd && s > bestConf))
                {
                    bestLd = ld;
                    bestConf = s;
                    bestIndex = pi;
                }
            }
            if (!double.IsPositiveInfinity(minConf)) comp += minConf;
            if (bestIndex >= 0) sim += bestLd * bestConf;
            best[gi] = bestIndex;
        }
        if (n > 0)
        {
            comp /= n;
            sim /= n;
        }
        string joinP = string.Concat(recognized.Select(r => TextMetrics.RemoveWhitespace(r.Text)));
        string joinG = string.Concat(targets.Select(TextMetrics.RemoveWhitespace));
        int total = joinP.Length + joinG.Length;
        double pen = total == 0 ? 0 : PenaltyWeight * TextMetrics.BagDistance(joinP, joinG) / total;
        return new PaperReward(comp, sim, pen, CvtgMetrics.Count(targets, recognized.Select(r => r.Text).ToList()), best);
    }

    /// <summary>
    /// Flow-GRPO's reward: <paramref name="target"/> and <paramref name="recognizedText"/> lose their whitespace and are
    /// lowercased; <c>d = 0</c> when the target is a substring of the recognized text, else
    /// <c>min(Levenshtein(rec, target), |target|)</c>; reward <c>1 - d/|target|</c>. An empty target scores 0.
    /// </summary>
    public static EditReward Edit(string target, string recognizedText)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(recognizedText);
        var t = TextMetrics.RemoveWhitespace(target).ToLowerInvariant();
        var r = TextMetrics.RemoveWhitespace(recognizedText).ToLowerInvariant();
        if (t.Length == 0) return new EditReward(t, r, 0, 0);
        int d = r.Contains(t, StringComparison.Ordinal) ? 0 : Math.Min(TextMetrics.Levenshtein(r, t), t.Length);
        return new EditReward(t, r, d, 1 - d / (double)t.Length);
    }
}

/// <summary>CVTG-2K counts of one image: summed over a set they give word-weighted Word Accuracy and NED.</summary>
/// <param name="TargetWords">Number of target words.</param>
/// <param name="MatchedWords">Target words that appear exactly in the recognized word list.</param>
/// <param name="NedSum">Sum over target words of <c>1 - Levenshtein(w, best) / (max(|w|, |best|) + 1e-5)</c> (0 per word when nothing was recognized).</param>
public sealed record CvtgCounts(int TargetWords, int MatchedWords, double NedSum)
{
    /// <summary>No targets.</summary>
    public static CvtgCounts Empty { get; } = new(0, 0, 0);

    /// <summary>This image's Word Accuracy; 0 without targets.</summary>
    public double WordAccuracy => TargetWords == 0 ? 0 : MatchedWords / (double)TargetWords;

    /// <summary>This image's NED; 0 without targets.</summary>
    public double Ned => TargetWords == 0 ? 0 : NedSum / TargetWords;

    /// <summary>Adds two counts.</summary>
    public static CvtgCounts operator +(CvtgCounts a, CvtgCounts b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        return new(a.TargetWords + b.TargetWords, a.MatchedWords + b.MatchedWords, a.NedSum + b.NedSum);
    }

    /// <summary>Adds two counts.</summary>
    public static CvtgCounts Add(CvtgCounts a, CvtgCounts b) => a + b;
}

/// <summary>
/// The CVTG-2K text-rendering evaluator (method.md section 6): Word Accuracy and NED, word-weighted over the whole set
/// (not a mean of per-image ratios), case-insensitive. Call <see cref="Count"/> per image and <see cref="Summarize"/>
/// over the set, or <see cref="Evaluate"/> on a whole set of word lists at once.
/// </summary>
public static class CvtgMetrics
{
    /// <summary>
    /// Counts one image. Words are compared lowercased (invariant culture) and otherwise as given; normalize them first
    /// (<see cref="TextMetrics.Normalize"/>) to ignore punctuation. Empty recognized words are ignored.
    /// </summary>
    public static CvtgCounts Count(IReadOnlyList<string> targets, IReadOnlyList<string> recognized)
    {
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(recognized);
        var rec = recognized.Select(r => r.ToLowerInvariant()).Where(r => r.Length > 0).ToList();
        var set = rec.ToHashSet(StringComparer.Ordinal);
        int matched = 0;
        double ned = 0;
        foreach (var raw in targets)
        {
            var w = raw.ToLowerInvariant();
            if (set.Contains(w)) matched++;
            if (rec.Count > 0) ned += rec.Max(r => TextMetrics.Similarity(w, r));
        }
        return new CvtgCounts(targets.Count, matched, ned);
    }

    /// <summary>Set-level Word Accuracy and NED from per-image counts (word-weighted; 0 when the set has no target words).</summary>
    public static CvtgSummary Summarize(IEnumerable<CvtgCounts> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        var total = CvtgCounts.Empty;
        int count = 0;
        foreach (var c in images)
        {
            total += c;
            count++;
        }
        return new CvtgSummary(total.WordAccuracy, total.Ned, total.TargetWords, total.MatchedWords, count);
    }

    /// <summary>Evaluates a set of images given as (targets, recognized words) pairs.</summary>
    public static CvtgSummary Evaluate(IEnumerable<(IReadOnlyList<string> Targets, IReadOnlyList<string> Recognized)> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        return Summarize(images.Select(i => Count(i.Targets, i.Recognized)));
    }
}

/// <summary>Set-level CVTG-2K metrics.</summary>
/// <param name="WordAccuracy">Matched target words / target words over the whole set.</param>
/// <param name="Ned">Mean over all target words of the set of the per-word normalized similarity.</param>
/// <param name="TargetWords">Target words in the set.</param>
/// <param name="MatchedWords">Target words recognized exactly.</param>
/// <param name="Images">Images counted.</param>
public sealed record CvtgSummary(double WordAccuracy, double Ned, int TargetWords, int MatchedWords, int Images);
