using NextFlowRL.Rewards.Ocr.Engine;
using Xunit;

namespace NextFlowRL.Rewards.Ocr.Tests;

public class PoolTests
{
    [Fact]
    public async Task WorkersRunConcurrentlyEachWithItsOwnEngine()
    {
        using var pool = new OcrEnginePool(new TesseractSettings(), workers: 2);
        int inFlight = 0, maxInFlight = 0;
        var enginesSeen = new System.Collections.Concurrent.ConcurrentDictionary<TesseractEngine, int>();
        var results = await pool.RunAsync(8, (engine, i) =>
        {
            int now = Interlocked.Increment(ref inFlight);
            int seen;
            while ((seen = Volatile.Read(ref maxInFlight)) < now && Interlocked.CompareExchange(ref maxInFlight, now, seen) != seen) { }
            enginesSeen.TryAdd(engine, 0);
            Thread.Sleep(50); // not CPU: concurrency shows even on a busy machine
            Interlocked.Decrement(ref inFlight);
            return i * 10;
        });
        Assert.Equal(Enumerable.Range(0, 8).Select(i => i * 10), results);
        Assert.Equal(2, maxInFlight);
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
}
