using Spectre.Console;
using NextFlowRL.Plugins;

namespace NextFlowRL.Cli;

/// <summary>
/// Progress with rate and ETA on standard error (so standard output stays machine-readable). On a terminal it is
/// Spectre.Console's live progress display (bar, percentage, rate, remaining time, and the caller's detail); when
/// standard error is redirected (logs, CI, pipes) it falls back to <see cref="PlainProgressDisplay"/>'s lines, at most
/// one every <see cref="LogInterval"/> and one at the end. The CLI's commands and, through <see cref="Display"/>
/// (registered as <see cref="IProgressDisplay"/>), plugin commands show the same display.
/// </summary>
internal sealed class ConsoleProgress : IProgressTask
{
    private readonly IProgressTask _task;

    public ConsoleProgress(string label, int total, string unit = "items") =>
        _task = Interactive ? new Live(label, total, unit) : new PlainProgressDisplay(Console.Error, LogInterval).Start(label, total, unit);

    /// <summary>Whether the live display is used: standard error is a terminal (<c>NEXTFLOW_PLAIN_PROGRESS=1</c> forces plain lines).</summary>
    public static bool Interactive =>
        !Console.IsErrorRedirected && Environment.GetEnvironmentVariable("NEXTFLOW_PLAIN_PROGRESS") != "1";

    public static TimeSpan LogInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Advances by <paramref name="count"/>; <paramref name="detail"/> is shown beside the bar (e.g. metrics).</summary>
    public void Advance(int count = 1, string? detail = null) => _task.Advance(count, detail);

    /// <summary>Ends the live display (a run stopped early); the plain fallback has nothing to end.</summary>
    public void Dispose() => _task.Dispose();

    /// <summary>The display plugin commands get from the container.</summary>
    public sealed class Display : IProgressDisplay
    {
        public IProgressTask Start(string label, int total, string unit = "items") => new ConsoleProgress(label, total, unit);
    }

    /// <summary>
    /// Spectre's progress display on standard error. Its <c>StartAsync</c> owns the rendering loop, so it runs on a
    /// background task until the work ends; the caller's thread only advances the task, which Spectre synchronizes.
    /// </summary>
    private sealed class Live : IProgressTask
    {
        private const int BarWidth = 20;

        private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource<ProgressTask> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Task _display;
        private volatile string? _detail;
        private readonly int _total;
        private int _done;
        private int _disposed;

        public Live(string label, int total, string unit)
        {
            _total = total;
            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
            var progress = console.Progress().AutoClear(false).HideCompleted(false)
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn { Width = BarWidth }, new PercentageColumn(),
                    new RateColumn(unit), new RemainingTimeColumn(), new SpinnerColumn(), new DetailColumn(this, label.Length));
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

        public void Advance(int count = 1, string? detail = null)
        {
            _done += count;
            if (detail is not null) _detail = detail;
            // Waits for the display to start (at most 5 s once); without one the work goes on undisplayed.
            Task.WaitAny([_started.Task], TimeSpan.FromSeconds(5));
            if (_started.Task.IsCompletedSuccessfully) _started.Task.Result.Increment(count);
            if (_done >= _total) Dispose(); // the last frame is drawn before the caller writes its results
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
        /// <summary>
        /// The caller's detail (metrics) in a column of its own, cut with an ellipsis on a narrow terminal: inside the
        /// description it made the whole row collapse to one ellipsis once label and detail outgrew the width.
        /// </summary>
        private sealed class DetailColumn(Live live, int labelWidth) : ProgressColumn
        {
            // What the other columns take: the label, the bar, "100%", a rate ("18.3 s/step"), "00:00", the spinner and
            // one space between columns.
            private readonly int _reserved = labelWidth + BarWidth + 4 + 12 + 8 + 1 + 7;

            protected override bool NoWrap => true;

            public override Spectre.Console.Rendering.IRenderable Render(Spectre.Console.Rendering.RenderOptions options, ProgressTask task, TimeSpan deltaTime)
            {
                var text = live._detail ?? "";
                int room = Math.Max(0, options.ConsoleSize.Width - _reserved);
                if (text.Length > room) text = room <= 1 ? "" : text[..(room - 1)] + "\u2026";
                return new Text(text, Style.Plain);
            }
        }

        private sealed class RateColumn(string unit) : ProgressColumn
        {
            public override Spectre.Console.Rendering.IRenderable Render(Spectre.Console.Rendering.RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
                new Text(task.Speed is { } speed and > 0 ? PlainProgressDisplay.FormatRate(speed, unit) : $"-- {unit}/s", Style.Plain);
        }
    }
}
