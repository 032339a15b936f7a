using NextFlowRL.Rewards.Ocr.Engine;
using Xunit;

namespace NextFlowRL.Rewards.Ocr.Tests;

public class CancellationTests
{
    [Fact]
    public async Task CancellingMidBatchStartsNoNewImageAndLeavesThePoolUsable()
    {
        // Counted, not timed: after cancellation a worker finishes the image it is reading and takes no other.
        // (A worker may have taken its next index just before the cancel: at most workers - 1 such images.)
        const int workers = 2;
        using var pool = new OcrEnginePool(new OcrRewardOptions().ToSettings(), workers);
        var image = Render.Word("stop");
        using var cts = new CancellationTokenSource();
        int started = 0, startedAfterCancel = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pool.RunAsync(400, (engine, i) =>
        {
            if (cts.IsCancellationRequested) Interlocked.Increment(ref startedAfterCancel);
            if (Interlocked.Increment(ref started) == 6) cts.Cancel();
            return engine.Recognize(image).Count;
        }, cts.Token));
        Assert.InRange(startedAfterCancel, 0, workers - 1);
        Assert.InRange(started, 6, 6 + workers - 1);

        var again = await pool.RunAsync(3, (engine, i) => engine.Recognize(image).Select(w => w.Text.ToLowerInvariant()).ToList());
        Assert.All(again, words => Assert.Contains("stop", words));
    }

    [Fact]
    public async Task CancellingAScoringBatchThrowsAndLeavesTheRewardUsable()
    {
        using var reward = new OcrReward("ocr", new OcrRewardOptions { Workers = 2 });
        var image = Render.Word("stop");
        var batch = Enumerable.Range(0, 400).Select(_ => Render.Sample(image, "'stop'")).ToList();
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => reward.ScoreAsync(batch, cts.Token));

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
