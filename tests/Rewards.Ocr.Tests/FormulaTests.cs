using NextFlowRL.Rewards.Ocr.Scoring;
using Xunit;

namespace NextFlowRL.Rewards.Ocr.Tests;

/// <summary>The formulas of method.md section 6 on hand-made recognized-word lists.</summary>
public class FormulaTests
{
    private const double Eps = 1e-5;

    private static double Ld(int distance, int maxLen) => 1 - distance / (maxLen + Eps);

    [Theory]
    [InlineData("", "", 0)]
    [InlineData("abc", "", 3)]
    [InlineData("kitten", "sitting", 3)]
    [InlineData("hello", "hallo", 1)]
    [InlineData("flaw", "lawn", 2)]
    [InlineData("x", "abcd", 4)] // the first row's last column matters here (a mutation-testing gap)
    public void LevenshteinCountsEdits(string a, string b, int expected)
    {
        Assert.Equal(expected, TextMetrics.Levenshtein(a, b));
        Assert.Equal(expected, TextMetrics.Levenshtein(b, a));
    }

    [Fact]
    public void BagDistanceIgnoresOrderAndSpaces()
    {
        Assert.Equal(0, TextMetrics.BagDistance("listen", "silent"));
        Assert.Equal(0, TextMetrics.BagDistance("a b", "ab"));
        Assert.Equal(2, TextMetrics.BagDistance("hallo", "hello"));
        Assert.Equal(3, TextMetrics.BagDistance("abc", ""));
    }

    [Fact]
    public void ExactWordsScoreConfidenceTwice()
    {
        var r = OcrFormulas.Paper(["open", "shop"], [("open", 0.9), ("shop", 0.7)]);
        Assert.Equal(0.8, r.Comp, 12);
        Assert.Equal((0.9 * Ld(0, 4) + 0.7 * Ld(0, 4)) / 2, r.Sim, 12);
        Assert.Equal(0, r.Pen, 12);
        Assert.Equal(r.Comp + r.Sim - r.Pen, r.Reward, 12);
        Assert.Equal(1, r.Counts.WordAccuracy);
    }

    [Fact]
    public void PerfectRecognitionReachesTheMaximumOfTwo()
    {
        var r = OcrFormulas.Paper(["stop"], [("stop", 1.0)]);
        Assert.Equal(2, r.Reward, 4);
    }

    [Fact]
    public void DuplicatesTakeTheLowestConfidenceForCompAndArePenalized()
    {
        var r = OcrFormulas.Paper(["hello"], [("hello", 0.9), ("hello", 0.6)]);
        Assert.Equal(0.6, r.Comp, 12);                     // min over copies
        Assert.Equal(Ld(0, 5) * 0.9, r.Sim, 12);           // p* among equal LD: the most confident
        Assert.Equal(0.6 * 5 / 15.0, r.Pen, 12);           // "hellohello" vs "hello": 5 extra letters of 15
        Assert.Equal(0, r.BestMatch[0]);
        var clean = OcrFormulas.Paper(["hello"], [("hello", 0.9)]);
        Assert.True(r.Reward < clean.Reward);
    }

    [Fact]
    public void NearMissGetsSimilarityButNoCompleteness()
    {
        var r = OcrFormulas.Paper(["hello"], [("hallo", 1.0)]);
        Assert.Equal(0, r.Comp);
        Assert.Equal(Ld(1, 5), r.Sim, 12);
        Assert.Equal(0.6 * 2 / 10.0, r.Pen, 12);
        Assert.Equal(0, r.Counts.MatchedWords);
        Assert.Equal(Ld(1, 5), r.Counts.Ned, 12);
    }

    [Fact]
    public void ExtraWordsArePenalized()
    {
        var r = OcrFormulas.Paper(["open"], [("open", 1.0), ("sale", 1.0)]);
        Assert.Equal(1, r.Comp);
        Assert.Equal(Ld(0, 4), r.Sim, 12);
        Assert.Equal(0.6 * 4 / 12.0, r.Pen, 12);
        Assert.Equal(1, r.Counts.WordAccuracy);
    }

    [Fact]
    public void NothingRecognizedScoresMinusTheFullPenalty()
    {
        var r = OcrFormulas.Paper(["open", "now"], []);
        Assert.Equal(0, r.Comp);
        Assert.Equal(0, r.Sim);
        Assert.Equal(0.6, r.Pen, 12);
        Assert.Equal(-0.6, r.Reward, 12);
        Assert.Equal([-1, -1], r.BestMatch);
        Assert.Equal(new CvtgCounts(2, 0, 0), r.Counts);
    }

    [Fact]
    public void NoTargetsNeverDividesByZero()
    {
        var empty = OcrFormulas.Paper([], []);
        Assert.Equal(0, empty.Reward);
        var text = OcrFormulas.Paper([], [("sale", 0.8)]);
        Assert.Equal(0, text.Comp);
        Assert.Equal(0, text.Sim);
        Assert.Equal(-0.6, text.Reward, 12);
        Assert.Equal(CvtgCounts.Empty, text.Counts);
    }

    [Fact]
    public void BestMatchIsTheHighestSimilarity()
    {
        var r = OcrFormulas.Paper(["coffee"], [("cat", 1.0), ("coffe", 0.5), ("toffee", 0.9)]);
        // "coffe" (1 deletion, max len 6) and "toffee" (1 substitution) tie on LD; the more confident wins.
        Assert.Equal(2, r.BestMatch[0]);
        Assert.Equal(Ld(1, 6) * 0.9, r.Sim, 12);
    }

    [Theory]
    [InlineData("hello", "hello", 0, 1.0)]
    [InlineData("hello", "ohellothere", 0, 1.0)]      // substring credit
    [InlineData("hello", "hallo", 1, 0.8)]
    [InlineData("hello", "", 5, 0.0)]
    [InlineData("hi", "a much longer text", 2, 0.0)]  // distance capped at |target|
    [InlineData("Coffee Shop", "COFFEESHOP", 0, 1.0)] // spaces removed, case ignored
    public void EditRewardFollowsFlowGrpo(string target, string recognized, int distance, double reward)
    {
        var r = OcrFormulas.Edit(target, recognized);
        Assert.Equal(distance, r.Distance);
        Assert.Equal(reward, r.Reward, 12);
    }

    [Fact]
    public void EditRewardWithEmptyTargetIsZero()
    {
        var r = OcrFormulas.Edit("  ", "anything");
        Assert.Equal(0, r.Reward);
        Assert.False(r.IsSubstring);
    }

    [Fact]
    public void CvtgCountsAreCaseInsensitiveExactMatches()
    {
        var c = CvtgMetrics.Count(["Open", "shop", "now"], ["OPEN", "shops", "", "now"]);
        Assert.Equal(3, c.TargetWords);
        Assert.Equal(2, c.MatchedWords);
        Assert.Equal(1 + Ld(1, 5) + 1, c.NedSum, 12);
    }

    [Fact]
    public void CvtgNedIsZeroWhenNothingWasRecognized()
    {
        var c = CvtgMetrics.Count(["open"], []);
        Assert.Equal(0, c.Ned);
        Assert.Equal(0, c.WordAccuracy);
    }

    [Fact]
    public void WordAccuracyIsWordWeightedOverTheSet()
    {
        var s = CvtgMetrics.Evaluate(
        [
            (["a"], ["a"]),                 // 1 of 1
            (["b", "c", "d"], ["x"]),       // 0 of 3
        ]);
        Assert.Equal(0.25, s.WordAccuracy, 12); // not the mean of ratios (0.5)
        Assert.Equal(4, s.TargetWords);
        Assert.Equal(1, s.MatchedWords);
        Assert.Equal(2, s.Images);
        Assert.Equal((1 + 3 * Ld(1, 1)) / 4, s.Ned, 12);
    }

    [Fact]
    public void EmptySetSummarizesToZero()
    {
        var s = CvtgMetrics.Summarize([]);
        Assert.Equal(0, s.WordAccuracy);
        Assert.Equal(0, s.Ned);
        Assert.Equal(0, s.Images);
    }

    [Theory]
    [InlineData("Hello,", true, "hello")]
    [InlineData("'don't'", true, "don't")]
    [InlineData("...", true, "")]
    [InlineData("Hello,", false, "hello,")]
    public void NormalizeLowercasesAndTrimsEdgePunctuation(string word, bool ignore, string expected) =>
        Assert.Equal(expected, TextMetrics.Normalize(word, ignore));
}
