using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace NextFlowRL.Training;

/// <summary>
/// Every step's metrics as <see cref="System.Diagnostics.Metrics"/> measurements of the meter
/// <c>NextFlowRL.Training</c>: one histogram per metric (<c>reward_mean</c>, <c>ocr/word_acc</c>, <c>time_step</c>, ...),
/// one measurement per step, tagged with the run (<c>nextflow.run</c>) and the step (<c>nextflow.step</c>). The run
/// folder writes metrics.jsonl, metrics.csv and TensorBoard from what it hears here (<see cref="StepListener"/>), and an
/// OpenTelemetry exporter subscribed to the meter receives the same values unchanged.
/// </summary>
public static class TrainingTelemetry
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "NextFlowRL.Training";

    /// <summary>Tag naming the run a measurement belongs to.</summary>
    public const string RunTag = "nextflow.run";

    /// <summary>Tag naming the step (1-based) a measurement belongs to.</summary>
    public const string StepTag = "nextflow.step";

    private static readonly Meter Meter = new(MeterName, typeof(TrainingTelemetry).Assembly.GetName().Version?.ToString());
    private static readonly ConcurrentDictionary<string, Histogram<double>> Instruments = new(StringComparer.Ordinal);

    /// <summary>Records one step's metrics (the <c>step</c> entry is the step tag, not a measurement).</summary>
    public static void Publish(string run, IReadOnlyDictionary<string, double> metrics)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(metrics);
        var step = new KeyValuePair<string, object?>(StepTag, (int)metrics.GetValueOrDefault("step"));
        var tag = new KeyValuePair<string, object?>(RunTag, run);
        foreach (var (name, value) in metrics)
        {
            if (name == "step") continue;
            Instruments.GetOrAdd(name, n => Meter.CreateHistogram<double>(n)).Record(value, tag, step);
        }
    }

    /// <summary>
    /// Hears one run's measurements and hands them over step by step (<see cref="Take"/>). Measurements are recorded on
    /// the trainer's thread, so a step's values are all here when its <see cref="GrpoTrainer.RunStep"/> returns.
    /// </summary>
    public sealed class StepListener : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly string _run;
        private readonly Dictionary<int, SortedDictionary<string, double>> _steps = [];
        private readonly Lock _lock = new();

        /// <summary>Starts listening to run <paramref name="run"/>.</summary>
        public StepListener(string run)
        {
            _run = run ?? throw new ArgumentNullException(nameof(run));
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == MeterName) listener.EnableMeasurementEvents(instrument);
            };
            _listener.SetMeasurementEventCallback<double>(OnMeasurement);
            _listener.Start();
        }

        private void OnMeasurement(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
        {
            string? run = null;
            int step = 0;
            foreach (var t in tags)
            {
                if (t.Key == RunTag) run = t.Value as string;
                else if (t.Key == StepTag && t.Value is int s) step = s;
            }
            if (run != _run) return;
            lock (_lock)
            {
                if (!_steps.TryGetValue(step, out var row)) _steps[step] = row = new(StringComparer.Ordinal) { ["step"] = step };
                row[instrument.Name] = value;
            }
        }

        /// <summary>The metrics heard for <paramref name="step"/>, removed from the listener (null when none were heard).</summary>
        public IReadOnlyDictionary<string, double>? Take(int step)
        {
            lock (_lock) return _steps.Remove(step, out var row) ? row : null;
        }

        /// <inheritdoc/>
        public void Dispose() => _listener.Dispose();
    }
}
