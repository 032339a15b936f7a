using System.Diagnostics;
using Spectre.Console;

namespace NextFlowRL.Cli;

/// <summary>
/// Progress with rate and ETA on standard error (so standard output stays machine-readable). On a terminal it is
/// Spectre.Console's live progress display (bar, percentage, rate, remaining time, and the caller's detail); when
/// standard error is redirected (logs, CI, pipes) it falls back to a plain line at most every <see cref="LogInterval"/>
/// and at the end, which a live display cannot give: its redraws would fill a log with control codes.
/// </summary>
internal sealed class ConsoleProgress : IDisposable
{
    private readonly string _label;
    private readonly int _total;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Live? _live;
    private TimeSpan _lastWrite = TimeSpan.FromDays(-1);
    private int _done;
    private (TimeSpan Time, int Done)? _first;

    public ConsoleProgress(string label, int total, string unit = "items")
    {
        _label = label;
        _total = total;
        Unit = unit;
        if (Interactive) _live = new Live(label, total, unit);
    }

    /// <summary>Whether the live display is used: standard error is a terminal (<c>NEXTFLOW_PLAIN_PROGRESS=1</c> forces plain lines).</summary>
    public static bool Interactive =>
        !Console.IsErrorRedirected && Environment.GetEnvironmentVariable("NEXTFLOW_PLAIN_PROGRESS") != "1";

    public static TimeSpan LogInterval { get; set; } = TimeSpan.FromSeconds(10);

    public string Unit { get; }

    public TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>Advances by <paramref name="count"/>; <paramref name="detail"/> is shown beside the bar (e.g. metrics).</summary>
    public void Advance(int count = 1, string? detail = null)
    {
        _done += count;
        if (_live is not null)
        {
            _live.Advance(count, detail);
            if (_done >= _total) _live.Dispose();
            return;
        }
        var now = _clock.Elapsed;
        bool last = _done >= _total;
        if (!last && now - _lastWrite < LogInterval) return;
        _lastWrite = now;
        // Rate and ETA from the time since the first update: the first unit's start is not observed.
        _first ??= (now, _done);
        double seconds = (now - _first.Value.Time).TotalSeconds;
        int counted = _done - _first.Value.Done;
        double rate = seconds > 0.5 && counted > 0 ? counted / seconds : double.NaN;
        const int width = 24;
        int filled = _total == 0 ? width : (int)Math.Round(width * Math.Min(1.0, (double)_done / _total));
        Console.Error.WriteLine($"{_label} [{new string('#', filled)}{new string('.', width - filled)}] {_done}/{_total} " +
            (double.IsNaN(rate) ? $"-- {Unit}/s ETA --:--" : $"{FormatRate(rate, Unit)} ETA {Format(TimeSpan.FromSeconds((_total - _done) / rate))}") +
            (detail is null ? "" : "  " + detail));
    }

    /// <summary>Ends the live display (a run stopped early); the plain fallback has nothing to end.</summary>
    public void Dispose() => _live?.Dispose();

    /// <summary>Units per second, or seconds per unit when slower than one a second ("2.5 steps/s", "18.3 s/step").</summary>
    public static string FormatRate(double perSecond, string unit) =>
        perSecond >= 1 ? $"{perSecond:0.0} {unit}/s" : $"{1 / perSecond:0.0} s/{(unit.Length > 1 && unit.EndsWith('s') ? unit[..^1] : unit)}";

    public static string Format(TimeSpan t) => t.TotalHours >= 1 ? t.ToString(@"h\:mm\:ss") : t.ToString(@"mm\:ss");

    /// <summary>
    /// Spectre's progress display on standard error. Its <c>StartAsync</c> owns the rendering loop, so it runs on a
    /// background task until the work ends; the caller's thread only advances the task, which Spectre synchronizes.
    /// </summary>
    private sealed class Live : IDisposable
    {
        private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource<ProgressTask> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Task _display;
        private readonly string _label;
        private readonly string _unit;
        private int _disposed;

        public Live(string label, int total, string unit)
        {
            _label = label;
            _unit = unit;
            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
            var progress = console.Progress().AutoClear(false).HideCompleted(false)
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                    new RateColumn(unit), new RemainingTimeColumn(), new SpinnerColumn());
            _display = Task.Run(async () =>
            {
                try
                {
                    await progress.StartAsync(async context =>
                    {
                        var task = context.AddTask(Markup.Escape(label), maxValue: Math.Max(1, total));
                        _started.SetResult(task);
                        await _finished.Task;
                        task.StopTask();
                    });
                }
                catch (Exception e) when (e is IOException or InvalidOperationException)
                {
                    _started.TrySetException(e); // no display (a terminal that went away): the work goes on without one
                }
            });
        }

        public void Advance(int count, string? detail)
        {
            // Waits for the display to start (at most 5 s once); without one the work goes on undisplayed.
            Task.WaitAny([_started.Task], TimeSpan.FromSeconds(5));
            if (!_started.Task.IsCompletedSuccessfully) return;
            var task = _started.Task.Result;
            if (detail is not null) task.Description = Markup.Escape($"{_label}  {detail}");
            task.Increment(count);
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            _finished.TrySetResult();
            // The display's last frame is drawn before the caller writes its results.
            try { _display.Wait(TimeSpan.FromSeconds(5)); }
            catch (AggregateException) { }
        }

        /// <summary>Units per second, or seconds per unit for slow work (Spectre's own speed column has no unit).</summary>
        private sealed class RateColumn(string unit) : ProgressColumn
        {
            public override Spectre.Console.Rendering.IRenderable Render(Spectre.Console.Rendering.RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
                new Text(task.Speed is { } speed and > 0 ? FormatRate(speed, unit) : $"-- {unit}/s", Style.Plain);
        }
    }
}
