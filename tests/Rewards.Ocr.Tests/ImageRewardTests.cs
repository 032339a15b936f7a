using NextFlowRL.Imaging;
using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Rewards.Ocr.Tests;

/// <summary>Full rewards on images rendered with the embedded fonts (identical on every machine), as snapshots.</summary>
public class ImageRewardTests(RewardFixture fixture) : IClassFixture<RewardFixture>
{
    private const double Eps = 1e-5;

    private async Task<RewardResult> ScoreAsync(RgbImage image, string prompt, bool edit = false)
    {
        var results = await (edit ? fixture.Edit : fixture.Paper).ScoreAsync([Render.Sample(image, prompt)]);
        var r = Assert.Single(results);
        Assert.Null(r.Error);
        return r;
    }

    private static object Snapshot(RewardResult r) => new { score = r.Score, components = r.Components, regions = r.Regions };

    [Fact]
    public async Task CleanWordsReadPerfectly()
    {
        var r = await ScoreAsync(Render.Words(256, 96, ("Open Now", 128, 48, 36)), "A door sign that says 'Open Now'");
        Assert.Equal(1, r.Components["word_acc"]);
        Assert.Equal(1, r.Components["ned"], 4);
        Assert.Equal(0, r.Components["pen"]);
        Assert.True(r.Score > 1.8, $"score {r.Score}");
        Assert.Equal(["open", "now"], r.Regions.Select(g => g.Target));
        Snapshots.Match(Snapshot(r));
    }

    [Fact]
    public async Task MultiRegionImageReportsEveryWordBox()
    {
        var image = Render.Words(256, 256, ("FRESH", 70, 40, 30), ("bread", 180, 130, 30), ("daily", 90, 220, 26));
        var r = await ScoreAsync(image, "A bakery with 'Fresh' on the awning, 'Bread' on the window and 'Daily' on a board");
        Assert.Equal(1, r.Components["word_acc"]);
        Assert.Equal(3, r.Regions.Count);
        // Each box lies around the place the word was drawn, in the image's own pixels.
        var fresh = r.Regions.Single(g => g.Target == "fresh");
        Assert.InRange(fresh.X + fresh.Width / 2.0, 60, 80);
        Assert.InRange(fresh.Y + fresh.Height / 2.0, 30, 50);
        var daily = r.Regions.Single(g => g.Target == "daily");
        Assert.InRange(daily.Y + daily.Height / 2.0, 205, 230);
        Snapshots.Match(Snapshot(r));
    }

    [Fact]
    public async Task SmallTextOn64x64IsUpscaledAndBoxesMappedBack()
    {
        var r = await ScoreAsync(Render.Word("cat", 64, 18), "a shirt with 'cat'");
        Assert.Equal(1, r.Components["word_acc"]);
        var box = Assert.Single(r.Regions);
        Assert.True(box.X >= 0 && box.Y >= 0 && box.X + box.Width <= 64 && box.Y + box.Height <= 64, $"box {box}");
        Assert.InRange(box.X + box.Width / 2.0, 28, 36);
        Snapshots.Match(Snapshot(r));
    }

    [Fact]
    public async Task OneLetterOffGetsTheExactNed()
    {
        var r = await ScoreAsync(Render.Word("hallo"), "a sign that says 'hello'");
        Assert.Equal(0, r.Components["word_acc"]);
        Assert.Equal(0, r.Components["comp"]);
        Assert.Equal(1 - 1 / (5 + Eps), r.Components["ned"], 10);
        Assert.Equal("hello", Assert.Single(r.Regions).Target); // near miss above the region threshold
        Snapshots.Match(Snapshot(r));
    }

    [Fact]
    public async Task RepeatedWordSpamScoresBelowTheCleanRender()
    {
        var clean = await ScoreAsync(Render.Word("open", 256, 40), "a sign that says 'open'");
        var spam = await ScoreAsync(
            Render.Words(256, 256, ("open open", 128, 50, 36), ("open open", 128, 130, 36), ("open", 128, 210, 36)),
            "a sign that says 'open'");
        Assert.Equal(1, spam.Components["word_acc"]);
        Assert.True(spam.Components["pen"] > 0.39, $"pen {spam.Components["pen"]}");
        Assert.True(spam.Score < clean.Score - 0.3, $"spam {spam.Score} vs clean {clean.Score}");
        Assert.Equal(5, spam.Regions.Count(g => g.Target == "open"));
        Snapshots.Match(new { clean = Snapshot(clean), spam = Snapshot(spam) });
    }

    [Fact]
    public async Task ExtraWordsArePenalized()
    {
        var exact = await ScoreAsync(Render.Words(256, 128, ("SALE", 128, 64, 40)), "a poster with 'sale'");
        var extra = await ScoreAsync(Render.Words(256, 128, ("SALE", 128, 40, 40), ("today only", 128, 100, 28)), "a poster with 'sale'");
        Assert.Equal(1, extra.Components["word_acc"]);
        Assert.True(extra.Components["pen"] > exact.Components["pen"]);
        Assert.True(extra.Score < exact.Score);
        Assert.Contains(extra.Regions, g => g.Target is null);
    }

    [Fact]
    public async Task BlankImageScoresAtMostZero()
    {
        var r = await ScoreAsync(RgbImage.Filled(128, 128, 255, 255, 255), "a sign that says 'open'");
        Assert.True(r.Score <= 0);
        Assert.Equal(-0.6, r.Score, 12);
        Assert.Empty(r.Regions);
        Snapshots.Match(Snapshot(r));
    }

    [Fact]
    public async Task EditRewardReadsTheDoubleQuotedSpan()
    {
        var exact = await ScoreAsync(Render.Words(256, 96, ("Big Sale", 128, 48, 36)), "A banner reading \"Big Sale\"", edit: true);
        Assert.Equal(1, exact.Score);
        Assert.Equal(1, exact.Components["substring"]);
        var off = await ScoreAsync(Render.Word("hallo"), "A sign reading \"hello\"", edit: true);
        Assert.Equal(0.8, off.Score, 12);
        Assert.Equal(1, off.Components["edit_distance"]);
        Snapshots.Match(new { exact = Snapshot(exact), off = Snapshot(off) });
    }

    [Fact]
    public async Task BatchResultsKeepInputOrderAcrossWorkers()
    {
        string[] words = ["cat", "open", "sale", "stop", "lemon", "train", "cloud", "pizza", "tiger", "smile"];
        var samples = words.Select(w => Render.Sample(Render.Word(w, 96, 24), $"'{w}'")).ToList();
        var results = await fixture.Paper.ScoreAsync(samples);
        Assert.Equal(words.Length, results.Count);
        for (int i = 0; i < words.Length; i++)
            Assert.Equal(words[i], Assert.Single(results[i].Regions).Target);
        var summary = fixture.Paper.Summarize(results);
        Assert.Equal(1, summary["word_accuracy"]);
        Assert.Equal(words.Length, summary["target_words"]);
        await fixture.Paper.ScoreAsync(samples);
        Assert.Equal(2, fixture.Paper.EnginesCreated); // one per worker, created once, reused across batches
    }
}
