using System.Text;

namespace NextFlowRL.Rewards.Ocr.Scoring;

/// <summary>Where the target words of a sample come from.</summary>
public enum TargetConvention
{
    /// <summary>
    /// CVTG-2K: every span in single quotes (<c>'...'</c> or <c>‘...’</c>), lowercased and split on whitespace.
    /// An apostrophe between two letters or digits (<c>don't</c>, <c>children's</c>) is part of a word, never a quote.
    /// </summary>
    SingleQuoted,

    /// <summary>Flow-GRPO: the first span in double quotes (<c>"..."</c> or <c>“...”</c>), lowercased and split on whitespace.</summary>
    DoubleQuoted,

    /// <summary>Only <see cref="RewardMetadataKeys.TargetWords"/>; a sample without it has no targets.</summary>
    MetadataOnly,
}

/// <summary>Extracts target words from prompts.</summary>
public static class Targets
{
    /// <summary>
    /// The target words of a sample: the metadata entry <see cref="RewardMetadataKeys.TargetWords"/> when present
    /// (whitespace-separated, lowercased; it overrides the prompt), else the prompt's quoted words by
    /// <paramref name="convention"/>. Empty when there are none.
    /// </summary>
    public static IReadOnlyList<string> For(RewardSample sample, TargetConvention convention)
    {
        ArgumentNullException.ThrowIfNull(sample);
        if (sample.Metadata.TryGetValue(RewardMetadataKeys.TargetWords, out var words) && words is not null)
            return SplitWords(words);
        return convention switch
        {
            TargetConvention.SingleQuoted => SingleQuoted(sample.Prompt),
            TargetConvention.DoubleQuoted => DoubleQuoted(sample.Prompt),
            _ => [],
        };
    }

    /// <summary>CVTG-2K targets: words of every single-quoted span, lowercased.</summary>
    public static IReadOnlyList<string> SingleQuoted(string? prompt)
    {
        var words = new List<string>();
        if (string.IsNullOrEmpty(prompt)) return words;
        var text = prompt.Replace('‘', '\'').Replace('’', '\'');
        int open = -1;
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] != '\'') continue;
            bool wordBefore = i > 0 && char.IsLetterOrDigit(text[i - 1]);
            bool wordAfter = i + 1 < text.Length && char.IsLetterOrDigit(text[i + 1]);
            if (open < 0)
            {
                // An opening quote starts a span: not glued to a word on its left, something other than space on its right.
                if (!wordBefore && i + 1 < text.Length && !char.IsWhiteSpace(text[i + 1]))
                    open = i;
            }
            else if (!wordAfter && i > open + 1 && !char.IsWhiteSpace(text[i - 1]))
            {
                words.AddRange(SplitWords(text.Substring(open + 1, i - open - 1)));
                open = -1;
            }
        }
        return words;
    }

    /// <summary>Flow-GRPO targets: words of the first double-quoted span, lowercased.</summary>
    public static IReadOnlyList<string> DoubleQuoted(string? prompt)
    {
        if (string.IsNullOrEmpty(prompt)) return [];
        var text = prompt.Replace('“', '"').Replace('”', '"');
        int start = text.IndexOf('"');
        if (start < 0) return [];
        int end = text.IndexOf('"', start + 1);
        if (end < 0) return [];
        return SplitWords(text.Substring(start + 1, end - start - 1));
    }

    /// <summary>Lowercases (invariant culture) and splits on whitespace.</summary>
    public static IReadOnlyList<string> SplitWords(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.ToLowerInvariant().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
    }
}

/// <summary>String helpers of the OCR formulas.</summary>
public static class TextMetrics
{
    /// <summary>Levenshtein distance (insert, delete, substitute cost 1) over UTF-16 code units.</summary>
    public static int Levenshtein(string a, string b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Length == 0) return b.Length;
        if (b.Length == 0) return a.Length;
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + cost);
            }
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }

    /// <summary>
    /// The normalized similarity of method.md section 6: <c>1 - EditDistance(x, y) / (max(|x|, |y|) + 1e-5)</c>
    /// (used both as the reward's <c>LD</c> and as the per-word NED of CVTG-2K).
    /// </summary>
    public static double Similarity(string x, string y) =>
        1 - Levenshtein(x, y) / (Math.Max(x.Length, y.Length) + 1e-5);

    /// <summary>
    /// Character multiset difference <c>sum_c |count_x(c) - count_y(c)|</c>, whitespace not counted.
    /// </summary>
    public static int BagDistance(string x, string y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        var counts = new Dictionary<char, int>();
        foreach (var c in x) if (!char.IsWhiteSpace(c)) counts[c] = counts.GetValueOrDefault(c) + 1;
        foreach (var c in y) if (!char.IsWhiteSpace(c)) counts[c] = counts.GetValueOrDefault(c) - 1;
        return counts.Values.Sum(Math.Abs);
    }

    /// <summary>
    /// Normalizes a recognized word or target for comparison: lowercase (invariant culture), and when
    /// <paramref name="ignoreEdgePunctuation"/>, without leading and trailing characters that are neither letters nor
    /// digits (<c>"Hello,"</c> → <c>hello</c>; <c>don't</c> keeps its apostrophe). May return an empty string.
    /// </summary>
    public static string Normalize(string word, bool ignoreEdgePunctuation)
    {
        ArgumentNullException.ThrowIfNull(word);
        var lower = word.Trim().ToLowerInvariant();
        if (!ignoreEdgePunctuation) return lower;
        int s = 0, e = lower.Length;
        while (s < e && !char.IsLetterOrDigit(lower[s])) s++;
        while (e > s && !char.IsLetterOrDigit(lower[e - 1])) e--;
        return lower[s..e];
    }

    /// <summary>Removes all whitespace.</summary>
    public static string RemoveWhitespace(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var sb = new StringBuilder(text.Length);
        foreach (var c in text) if (!char.IsWhiteSpace(c)) sb.Append(c);
        return sb.ToString();
    }
}
