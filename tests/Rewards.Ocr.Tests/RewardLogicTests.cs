using NextFlowRL.Rewards.Ocr.Engine;
using Xunit;

namespace NextFlowRL.Rewards.Ocr.Tests;

/// <summary>The reward's scoring of recognized words (no OCR): filtering, components, regions, summaries.</summary>
public class RewardLogicTests
{
    private static OcrReward Paper(Action<OcrRewardOptions>? configure = null)
    {
        var o = new OcrRewardOptions { Workers = 1 };
        configure?.Invoke(o);
        return new OcrReward("ocr", o);
    }

    [Fact]
    public void ComponentsCarryTheCountsForSetMetrics()
    {
        using var reward = Paper();
        var r = reward.Score(["Open", "Now"], [new RecognizedWord("OPEN!", 0.9, 1, 2, 3, 4), new RecognizedWord("nov", 0.8)]);
        Assert.Equal(2, r.Components["targets"]);
        Assert.Equal(1, r.Components["matched"]);
        Assert.Equal(0.5, r.Components["word_acc"]);
        Assert.Equal(2, r.Components["recognized"]);
        Assert.Equal(r.Components["comp"] + r.Components["sim"] - r.Components["pen"], r.Score, 12);
        Assert.Equal(new RewardRegion(1, 2, 3, 4, 0.9, "OPEN!", "open"), r.Regions[0]);
        Assert.Equal("now", r.Regions[1].Target); // near miss: best match with similarity 2/3
    }

    [Fact]
    public void WordsBelowMinimumConfidenceAreIgnoredButStillReported()
    {
        using var reward = Paper(o => o.MinConfidence = 0.5);
        var r = reward.Score(["open"], [new RecognizedWord("open", 0.4), new RecognizedWord("zzz", 0.3)]);
        Assert.Equal(0, r.Components["recognized"]);
        Assert.Equal(0, r.Components["word_acc"]);
        Assert.Equal(2, r.Regions.Count);
        Assert.All(r.Regions, g => Assert.Null(g.Target));
    }

    [Fact]
    public void DissimilarWordsAreUnmatchedRegions()
    {
        using var reward = Paper();
        var r = reward.Score(["coffee"], [new RecognizedWord("xyz", 1.0)]);
        Assert.Null(Assert.Single(r.Regions).Target);
    }

    [Fact]
    public void PunctuationCanBeKept()
    {
        using var strict = Paper(o => o.IgnoreEdgePunctuation = false);
        Assert.Equal(0, strict.Score(["open"], [new RecognizedWord("open.", 1)]).Components["word_acc"]);
        using var lenient = Paper();
        Assert.Equal(1, lenient.Score(["open"], [new RecognizedWord("open.", 1)]).Components["word_acc"]);
    }

    [Fact]
    public void EditFormulaJoinsTargetsAndWords()
    {
        using var reward = new OcrReward("ocr-edit", new OcrRewardOptions { Formula = OcrRewardFormula.Edit, Workers = 1 });
        var r = reward.Score(["big", "sale"], [new RecognizedWord("BIG", 0.9), new RecognizedWord("SALE", 0.9), new RecognizedWord("now", 0.9)]);
        Assert.Equal(1, r.Score);
        Assert.Equal(7, r.Components["target_chars"]);
        Assert.Equal(1, r.Components["word_acc"]);
        Assert.False(r.Components.ContainsKey("comp"));
    }

    [Fact]
    public void SummaryIsWordWeightedAndCountsFailedImagesAsMissed()
    {
        using var reward = Paper();
        var a = reward.Score(["a"], [new RecognizedWord("a", 1)]);
        var b = reward.Score(["b", "c", "d"], [new RecognizedWord("b", 1)]);
        var failedWithCounts = new RewardResult(double.NaN, new Dictionary<string, double> { ["targets"] = 4 }, [], "tesseract failed");
        var failedByHost = RewardResult.Failed("image 'x.png' is truncated");
        var s = reward.Summarize([a, b, failedWithCounts, failedByHost]);
        Assert.Equal(2 / 8.0, s["word_accuracy"], 12);
        Assert.Equal(8, s["target_words"]);
        Assert.Equal(2, s["matched_words"]);
        Assert.Equal(3, s["images"]);
        Assert.Equal(2, s["failed"]);
        Assert.Equal((a.Score + b.Score) / 2, s["mean_score"], 12);
        Assert.Equal((1 + 1 + 0 + 0) / 8.0 + (b.Components["ned_sum"] - 1) / 8.0, s["ned"], 12);
    }

    [Fact]
    public void SummaryOfNothingIsDefined()
    {
        using var reward = Paper();
        var s = reward.Summarize([]);
        Assert.Equal(0, s["word_accuracy"]);
        Assert.True(double.IsNaN(s["mean_score"]));
    }
}

public class EngineTests
{
    [Fact]
    public void NativeLibraryIsTesseract5() => Assert.StartsWith("5.", TesseractEngine.NativeVersion);

    [Fact]
    public void OpenMpThreadsAreLimitedBeforeTesseractLoads()
    {
        // Tesseract's OpenMP threads halve throughput on a busy machine (see the plugin README); the plugin sets the
        // limit in the native environment before loading the library, unless the user set it.
        _ = TesseractEngine.NativeVersion;
        var expected = Environment.GetEnvironmentVariable("OMP_THREAD_LIMIT") ?? "1";
        if (!OperatingSystem.IsWindows()) Assert.Equal(expected, TesseractLibrary.NativeEnvironmentVariable("OMP_THREAD_LIMIT"));
    }

    [Fact]
    public void PlatformLibraryNamesAreListed()
    {
        var names = TesseractLibrary.Candidates();
        if (OperatingSystem.IsLinux()) Assert.Contains("libtesseract.so.5", names);
    }

    [Theory]
    [InlineData(64, 64, 3)]
    [InlineData(300, 200, 1)]
    [InlineData(8192, 100, 0.5)]
    public void ScaleUpscalesSmallAndDownscalesHugeImages(int w, int h, double expected) =>
        Assert.Equal(expected, TesseractEngine.ScaleFor(w, h, new TesseractSettings(UpscaleBelow: 256, UpscaleFactor: 3, MaxSide: 4096)));

    [Fact]
    public void BoxesMapBackThroughBorderAndScale()
    {
        // Preprocessed box (border 10 px, scale 3) of original pixels [10, 20) x [5, 15).
        Assert.Equal((10, 5, 10, 10), TesseractEngine.ToOriginal(40, 25, 70, 55, 3, 64, 64));
        // Clamped to the image.
        Assert.Equal((0, 0, 64, 64), TesseractEngine.ToOriginal(0, 0, 1000, 1000, 3, 64, 64));
    }

    [Fact]
    public void PreprocessAddsABorderOfTheEdgeColour()
    {
        var image = Imaging.RgbImage.Filled(4, 2, 200, 200, 200);
        var (pixels, w, h) = TesseractEngine.Preprocess(image, 2);
        Assert.Equal((8 + 20, 4 + 20), (w, h));
        Assert.All(pixels, p => Assert.Equal(200, p));
    }

    [Fact]
    public void OneEngineIsReusableAcrossImages()
    {
        using var engine = new TesseractEngine(new TesseractSettings());
        Assert.Equal("cat", Assert.Single(engine.Recognize(Render.Word("cat", 96, 24))).Text);
        Assert.Equal("open", Assert.Single(engine.Recognize(Render.Word("open", 96, 24))).Text);
        engine.Dispose();
        Assert.Throws<ObjectDisposedException>(() => engine.Recognize(Render.Word("x")));
    }
}
