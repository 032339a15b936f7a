using System.Diagnostics;
using Xunit;

namespace NextFlowRL.Rewards.Ocr.Tests;

public class CancellationTests
{
    [Fact]
    public async Task CancellingMidBatchStopsTheWorkersAndLeavesTheRewardUsable()
    {
        using var reward = new OcrReward("ocr", new OcrRewardOptions { Workers = 2 });
        var image = Render.Word("stop");
        await reward.ScoreAsync([Render.Sample(image, "'stop'")]); // engines created

        var batch = Enumerable.Range(0, 400).Select(_ => Render.Sample(image, "'stop'")).ToList();
        var fullEstimate = Stopwatch.StartNew();
        await reward.ScoreAsync(batch.Take(8).ToList());
        double perImage = fullEstimate.Elapsed.TotalSeconds / 8;

        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(150));
        var sw = Stopwatch.StartNew();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => reward.ScoreAsync(batch, cts.Token));
        // The whole batch would take about 400 x perImage; cancellation returns after at most one image per worker.
        Assert.True(sw.Elapsed.TotalSeconds < 0.15 + 0.5 + 10 * perImage && sw.Elapsed.TotalSeconds < 400 * perImage / 3,
            $"cancelled after {sw.Elapsed.TotalSeconds:0.00}s, per image {perImage:0.000}s");

        var after = Assert.Single(await reward.ScoreAsync([Render.Sample(image, "'stop'")]));
        Assert.Equal(1, after.Components["word_acc"]);
    }

    [Fact]
    public async Task AlreadyCancelledTokenThrowsBeforeAnyWork()
    {
        using var reward = new OcrReward("ocr", new OcrRewardOptions { Workers = 1 });
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => reward.ScoreAsync([Render.Sample(Render.Word("a"), "'a'")], cts.Token));
    }
}
