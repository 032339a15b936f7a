using System.Diagnostics;
using System.Globalization;

namespace NextFlowRL.Plugins;

/// <summary>
/// Progress of long work (pretraining, data generation) shown by the host. <c>nextflow-rl</c> registers one that draws
/// Spectre.Console's live display on a terminal and <see cref="PlainProgressDisplay"/> lines when standard error is
/// redirected, the same display as its own <c>train</c> and <c>eval</c>. A plugin command takes it as a constructor
/// parameter (commands are created by the host's container); a host that registers none leaves commands to fall back
/// on <see cref="PlainProgressDisplay"/>.
/// </summary>
public interface IProgressDisplay
{
    /// <summary>Starts showing work of <paramref name="total"/> units (<c>steps</c>, <c>img</c>).</summary>
    /// <returns>The task to advance; dispose it when the work ends or stops early.</returns>
    IProgressTask Start(string label, int total, string unit = "items");
}

/// <summary>One piece of work on an <see cref="IProgressDisplay"/>.</summary>
public interface IProgressTask : IDisposable
{
    /// <summary>Advances by <paramref name="count"/> units; <paramref name="detail"/> (e.g. <c>loss 0.1234</c>) is shown beside the bar.</summary>
    void Advance(int count = 1, string? detail = null);
}

/// <summary>
/// Progress as plain lines, <c>label [####....] done/total rate ETA detail</c>, at most one per <see cref="Interval"/>
/// and one at the end: what logs, CI and pipes can hold (a live display's redraws would fill them with control codes).
/// Rate and ETA are measured from the first update, since the first unit's start is not observed.
/// </summary>
public sealed class PlainProgressDisplay : IProgressDisplay
{
    private readonly TextWriter _writer;

    /// <summary>Writes to <paramref name="writer"/> (standard error when null), at most one line per <paramref name="interval"/> (default 10 s).</summary>
    public PlainProgressDisplay(TextWriter? writer = null, TimeSpan? interval = null)
    {
        _writer = writer ?? Console.Error;
        Interval = interval ?? TimeSpan.FromSeconds(10);
        if (Interval < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(interval), "the interval cannot be negative");
    }

    /// <summary>The shortest time between two lines (the last line is always written).</summary>
    public TimeSpan Interval { get; }

    /// <inheritdoc/>
    public IProgressTask Start(string label, int total, string unit = "items")
    {
        ArgumentNullException.ThrowIfNull(label);
        ArgumentOutOfRangeException.ThrowIfNegative(total);
        return new PlainTask(this, label, total, unit);
    }

    /// <summary>Units per second, or seconds per unit when slower than one a second (<c>2.5 steps/s</c>, <c>18.3 s/step</c>).</summary>
    public static string FormatRate(double perSecond, string unit)
    {
        ArgumentNullException.ThrowIfNull(unit);
        return perSecond >= 1
            ? string.Create(CultureInfo.InvariantCulture, $"{perSecond:0.0} {unit}/s")
            : string.Create(CultureInfo.InvariantCulture, $"{1 / perSecond:0.0} s/{(unit.Length > 1 && unit.EndsWith('s') ? unit[..^1] : unit)}");
    }

    /// <summary><c>mm:ss</c>, or <c>h:mm:ss</c> from an hour on.</summary>
    public static string FormatDuration(TimeSpan t) => t.TotalHours >= 1 ? t.ToString(@"h\:mm\:ss", CultureInfo.InvariantCulture) : t.ToString(@"mm\:ss", CultureInfo.InvariantCulture);

    private sealed class PlainTask(PlainProgressDisplay display, string label, int total, string unit) : IProgressTask
    {
        private const int Width = 24;
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private TimeSpan _lastWrite = TimeSpan.FromDays(-1);
        private (TimeSpan Time, int Done)? _first;
        private int _done;

        public void Advance(int count = 1, string? detail = null)
        {
            _done += count;
            var now = _clock.Elapsed;
            bool last = _done >= total;
            if (!last && now - _lastWrite < display.Interval) return;
            _lastWrite = now;
            _first ??= (now, _done);
            double seconds = (now - _first.Value.Time).TotalSeconds;
            int counted = _done - _first.Value.Done;
            double rate = seconds > 0.5 && counted > 0 ? counted / seconds : double.NaN;
            int filled = total == 0 ? Width : (int)Math.Round(Width * Math.Min(1.0, (double)_done / total));
            display._writer.WriteLine($"{label} [{new string('#', filled)}{new string('.', Width - filled)}] {_done}/{total} " +
                (double.IsNaN(rate) ? $"-- {unit}/s ETA --:--" : $"{FormatRate(rate, unit)} ETA {FormatDuration(TimeSpan.FromSeconds((total - _done) / rate))}") +
                (detail is null ? "" : "  " + detail));
            display._writer.Flush();
        }

        public void Dispose()
        {
        }
    }
}
