using NextFlowRL.Plugins;
using Xunit;

namespace NextFlowRL.Tests;

/// <summary>The plain-line progress display hosts fall back on when standard error is not a terminal.</summary>
public sealed class ProgressDisplayTests
{
    [Fact]
    public void EveryUpdateIsALineWhenTheIntervalIsZero()
    {
        var writer = new StringWriter();
        using (var task = new PlainProgressDisplay(writer, TimeSpan.Zero).Start("pretrain", 4, "steps"))
        {
            for (int i = 0; i < 4; i++) task.Advance(1, $"loss {i}");
        }
        var lines = writer.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, lines.Length);
        Assert.StartsWith("pretrain [######..................] 1/4 -- steps/s ETA --:--  loss 0", lines[0], StringComparison.Ordinal);
        Assert.StartsWith("pretrain [########################] 4/4 ", lines[3], StringComparison.Ordinal);
        Assert.EndsWith("  loss 3", lines[3], StringComparison.Ordinal);
    }

    [Fact]
    public void ALongIntervalKeepsTheFirstAndTheLastLine()
    {
        var writer = new StringWriter();
        var task = new PlainProgressDisplay(writer, TimeSpan.FromHours(1)).Start("eval", 100, "img");
        for (int i = 0; i < 100; i++) task.Advance();
        var lines = writer.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.Contains(" 1/100 ", lines[0], StringComparison.Ordinal);
        Assert.Contains(" 100/100 ", lines[1], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(2.5, "steps", "2.5 steps/s")]
    [InlineData(1 / 18.3, "steps", "18.3 s/step")]
    [InlineData(0.5, "img", "2.0 s/img")]
    public void RatesReadAsUnitsPerSecondOrSecondsPerUnit(double perSecond, string unit, string expected) =>
        Assert.Equal(expected, PlainProgressDisplay.FormatRate(perSecond, unit));

    [Fact]
    public void DurationsGainHoursOnlyFromAnHourOn()
    {
        Assert.Equal("01:05", PlainProgressDisplay.FormatDuration(TimeSpan.FromSeconds(65)));
        Assert.Equal("1:00:05", PlainProgressDisplay.FormatDuration(TimeSpan.FromSeconds(3605)));
    }

    [Fact]
    public void BadArgumentsAreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new PlainProgressDisplay(interval: TimeSpan.FromSeconds(-1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PlainProgressDisplay().Start("x", -1));
    }
}
