using NextFlowRL.Imaging;
using NextFlowRL.Rewards.Ocr.Engine;
using Xunit;

namespace NextFlowRL.Rewards.Ocr.Tests;

/// <summary>Every bad input of the issue has a defined result or one clear error.</summary>
public class BadInputTests(RewardFixture fixture) : IClassFixture<RewardFixture>
{
    [Fact]
    public async Task PromptWithoutQuotedTargetScoresMinusPenOnlyWhenTextIsSeen()
    {
        var results = await fixture.Paper.ScoreAsync(
        [
            Render.Sample(RgbImage.Filled(64, 64, 255, 255, 255), "a quiet lake at dawn"),
            Render.Sample(Render.Word("open"), "a quiet lake at dawn"),
        ]);
        Assert.All(results, r => Assert.Null(r.Error));
        Assert.Equal(0, results[0].Score);
        Assert.Equal(-0.6, results[1].Score, 12);
        Assert.All(results, r => Assert.Equal(0, r.Components["targets"]));
        Assert.All(results, r => Assert.Equal(0, r.Components["word_acc"]));
        var edit = await fixture.Edit.ScoreAsync([Render.Sample(Render.Word("open"), "no quotes here")]);
        Assert.Equal(0, edit[0].Score);
        // Without targets the image adds nothing to the set-level word accuracy.
        var summary = fixture.Paper.Summarize(results);
        Assert.Equal(0, summary["target_words"]);
        Assert.Equal(0, summary["word_accuracy"]);
    }

    [Fact]
    public async Task FailWithoutTargetsGivesOneClearError()
    {
        using var reward = new OcrReward("ocr", new OcrRewardOptions { Workers = 1, FailWithoutTargets = true });
        var r = Assert.Single(await reward.ScoreAsync([Render.Sample(Render.Word("open"), "a quiet lake")]));
        Assert.False(r.IsValid);
        Assert.Contains("no target words", r.Error);
        Assert.Contains("single-quoted", r.Error);
    }

    [Fact]
    public async Task TinyImageReadsNothingAndScoresTheEmptyResult()
    {
        var tiny = Render.Words(8, 8, ("a", 4, 4, 6));
        var r = Assert.Single(await fixture.Paper.ScoreAsync([Render.Sample(tiny, "the letter 'a'")]));
        Assert.Null(r.Error);
        Assert.Equal(0, r.Components["word_acc"]);
        Assert.True(r.Score <= 0);
        Assert.All(r.Regions, g => Assert.True(g.X + g.Width <= 8 && g.Y + g.Height <= 8));
    }

    [Fact]
    public async Task HugeImageIsDownscaledAndBoxesStayInOriginalPixels()
    {
        var huge = Render.Words(6000, 400, ("welcome", 4500, 200, 160));
        Assert.True(TesseractEngine.ScaleFor(6000, 400, new TesseractSettings()) < 1);
        var r = Assert.Single(await fixture.Paper.ScoreAsync([Render.Sample(huge, "a banner saying 'welcome'")]));
        Assert.Equal(1, r.Components["word_acc"]);
        var box = r.Regions.Single(g => g.Target == "welcome");
        Assert.InRange(box.X + box.Width / 2.0, 4400, 4600);
        Assert.InRange(box.Width, 500, 900);
    }

    [Theory]
    [InlineData(8)]
    [InlineData(16)]
    public async Task GrayscalePngOfAnyBitDepthIsConvertedAndRead(int bitDepth)
    {
        var path = Path.Combine(Path.GetTempPath(), $"ocr-gray{bitDepth}-{Guid.NewGuid():N}.png");
        try
        {
            await File.WriteAllBytesAsync(path, Render.GrayPng(Render.Word("stop"), bitDepth));
            var image = ImageFile.Load(path);
            var r = Assert.Single(await fixture.Paper.ScoreAsync([Render.Sample(image, "a sign that says 'stop'")]));
            Assert.Equal(1, r.Components["word_acc"]);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task CorruptFileIsOneClearLineNamingTheFile()
    {
        var path = Path.Combine(Path.GetTempPath(), $"ocr-corrupt-{Guid.NewGuid():N}.png");
        try
        {
            var png = ImageFile.EncodePng(Render.Word("stop"));
            await File.WriteAllBytesAsync(path, png.AsSpan(0, png.Length / 2).ToArray());
            var e = Assert.Throws<ImageFormatException>(() => ImageFile.Load(path));
            Assert.Contains(path, e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task MissingTessdataNamesThePathAndThePackage()
    {
        using var reward = new OcrReward("ocr", new OcrRewardOptions { Workers = 1, TessdataPath = "/nonexistent/tessdata" });
        var e = await Assert.ThrowsAsync<OcrEngineException>(() => reward.ScoreAsync([Render.Sample(Render.Word("a"), "'a'")]));
        Assert.Contains("/nonexistent/tessdata/eng.traineddata", e.Message);
        Assert.Contains("apt-get install -y tesseract-ocr-eng", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void MissingLanguageIsReportedByTheStartValidator()
    {
        var result = new OcrRewardOptionsValidator().Validate("ocr", new OcrRewardOptions { Language = "eng+xyz" });
        Assert.True(result.Failed);
        Assert.Contains("xyz.traineddata", result.FailureMessage);
        Assert.Contains("tesseract-ocr-xyz", result.FailureMessage);
        Assert.True(new OcrRewardOptionsValidator().Validate("ocr", new OcrRewardOptions()).Succeeded);
    }

    [Fact]
    public async Task NullSampleIsAnArgumentError()
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() => fixture.Paper.ScoreAsync([null!]));
        Assert.Contains("sample 0", e.Message);
    }

    [Fact]
    public async Task EmptyBatchGivesNoResults() => Assert.Empty(await fixture.Paper.ScoreAsync([]));
}
