using System.Diagnostics;

namespace NextFlowRL.Cli;

/// <summary>
/// Progress with rate and ETA on standard error (so standard output stays machine-readable). On a terminal the line
/// is redrawn in place; when redirected, a line is written at most every <see cref="LogInterval"/>.
/// </summary>
internal sealed class ConsoleProgress
{
    private readonly string _label;
    private readonly int _total;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly bool _interactive = !Console.IsErrorRedirected;
    private TimeSpan _lastWrite = TimeSpan.FromDays(-1);
    private int _done;
    private (TimeSpan Time, int Done)? _first;

    public ConsoleProgress(string label, int total, string unit = "items")
    {
        _label = label;
        _total = total;
        Unit = unit;
    }

    public static TimeSpan LogInterval { get; set; } = TimeSpan.FromSeconds(10);

    public string Unit { get; }

    public TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>Advances by <paramref name="count"/> and redraws; <paramref name="detail"/> is appended (e.g. metrics).</summary>
    public void Advance(int count = 1, string? detail = null)
    {
        _done += count;
        var now = _clock.Elapsed;
        bool last = _done >= _total;
        if (!last && !_interactive && now - _lastWrite < LogInterval) return;
        if (!last && _interactive && now - _lastWrite < TimeSpan.FromMilliseconds(100)) return;
        _lastWrite = now;
        // Rate and ETA from the time since the first update: the first unit's start is not observed.
        _first ??= (now, _done);
        double seconds = (now - _first.Value.Time).TotalSeconds;
        int counted = _done - _first.Value.Done;
        double rate = seconds > 0.5 && counted > 0 ? counted / seconds : double.NaN;
        int width = 24;
        int filled = _total == 0 ? width : (int)Math.Round(width * Math.Min(1.0, (double)_done / _total));
        var line = $"{_label} [{new string('#', filled)}{new string('.', width - filled)}] {_done}/{_total} " +
                   (double.IsNaN(rate) ? $"-- {Unit}/s ETA --:--" : $"{FormatRate(rate, Unit)} ETA {Format(TimeSpan.FromSeconds((_total - _done) / rate))}") + (detail is null ? "" : "  " + detail);
        if (_interactive)
        {
            Console.Error.Write("\r" + line.PadRight(Math.Min(Console.BufferWidth > 0 ? Console.BufferWidth - 1 : 120, 200)));
            if (last) Console.Error.WriteLine();
        }
        else
        {
            Console.Error.WriteLine(line);
        }
    }

    /// <summary>Units per second, or seconds per unit when slower than one a second ("2.5 steps/s", "18.3 s/step").</summary>
    public static string FormatRate(double perSecond, string unit) =>
        perSecond >= 1 ? $"{perSecond:0.0} {unit}/s" : $"{1 / perSecond:0.0} s/{(unit.Length > 1 && unit.EndsWith('s') ? unit[..^1] : unit)}";

    public static string Format(TimeSpan t) => t.TotalHours >= 1 ? t.ToString(@"h\:mm\:ss") : t.ToString(@"mm\:ss");
}
