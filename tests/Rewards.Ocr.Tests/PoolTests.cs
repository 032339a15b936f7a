using NextFlowRL.Rewards.Ocr.Engine;
using Xunit;

namespace NextFlowRL.Rewards.Ocr.Tests;

public class PoolTests
{
    [Fact]
    public async Task WorkersRunConcurrentlyEachWithItsOwnEngine()
    {
        using var pool = new OcrEnginePool(new TesseractSettings(), workers: 2);
        // The first two items meet at a barrier: a worker that takes item 0 waits there, so item 1 can only be taken
        // by the other worker, and the barrier opens only if both run at once. No timing assumption (engine creation
        // can take longer than a whole batch on a busy machine).
        using var meet = new Barrier(2);
        int met = 0;
        var enginesSeen = new System.Collections.Concurrent.ConcurrentDictionary<TesseractEngine, int>();
        var results = await pool.RunAsync(8, (engine, i) =>
        {
            enginesSeen.TryAdd(engine, 0);
            if (i < 2 && meet.SignalAndWait(TimeSpan.FromSeconds(60))) Interlocked.Increment(ref met);
            return i * 10;
        });
        Assert.Equal(Enumerable.Range(0, 8).Select(i => i * 10), results);
        Assert.Equal(2, met);
        Assert.Equal(2, enginesSeen.Count);
        Assert.Equal(2, pool.EnginesCreated);
    }

    [Fact]
    public async Task AFailingItemFailsTheBatchWithItsException()
    {
        using var pool = new OcrEnginePool(new TesseractSettings(), workers: 2);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            pool.RunAsync<int>(50, (_, i) => i == 3 ? throw new InvalidOperationException("item 3") : i));
        Assert.Equal("item 3", e.Message);
        var again = await pool.RunAsync(2, (_, i) => i);
        Assert.Equal(new[] { 0, 1 }, again); // still usable
    }

    [Fact]
    public async Task PinnedWorkersEachStayOnTheirOwnProcessor()
    {
        if (!OperatingSystem.IsLinux() || Environment.ProcessorCount < 2) return; // binding is a Linux feature
        using var pool = new OcrEnginePool(new TesseractSettings(), workers: 2);
        Assert.True(pool.PinWorkers);
        var cpus = new System.Collections.Concurrent.ConcurrentDictionary<TesseractEngine, System.Collections.Concurrent.ConcurrentBag<int>>();
        await pool.RunAsync(40, (engine, i) =>
        {
            for (int k = 0; k < 5; k++)
            {
                cpus.GetOrAdd(engine, _ => []).Add(Thread.GetCurrentProcessorId());
                Thread.Sleep(1);
            }
            return i;
        });
        var perEngine = cpus.Values.Select(b => b.Distinct().ToArray()).ToArray();
        Assert.All(perEngine, ids => Assert.Single(ids));
        Assert.Equal(perEngine.Length, perEngine.Select(ids => ids[0]).Distinct().Count());
    }

    [Fact]
    public void PinningIsOffWhenAskedOrWhenWorkersOutnumberProcessors()
    {
        using var off = new OcrEnginePool(new TesseractSettings(), workers: 2, pinWorkers: false);
        Assert.False(off.PinWorkers);
        using var many = new OcrEnginePool(new TesseractSettings(), workers: Environment.ProcessorCount + 1);
        Assert.False(many.PinWorkers);
        using var single = new OcrEnginePool(new TesseractSettings(), workers: 1);
        Assert.False(single.PinWorkers);
    }
}
