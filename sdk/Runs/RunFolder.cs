using System.Globalization;
using System.Text;
using System.Text.Json;
using NextFlowRL.Imaging;
using NextFlowRL.Training;

namespace NextFlowRL.Runs;

/// <summary>
/// The files of a training run directory:
/// <c>config.json</c> (resolved options), <c>metrics.jsonl</c> and <c>metrics.csv</c> (one row per step),
/// <c>tensorboard/</c> (event files), <c>samples/step-N.png</c> (captioned rollout grids), <c>curves.png</c>,
/// <c>eval_before.json</c> / <c>eval_after.json</c>, <c>checkpoints/step-N/</c> with <c>checkpoints/latest</c>.
/// Every file is written atomically.
/// </summary>
public sealed class RunFolder : IDisposable
{
    private readonly List<SortedDictionary<string, double>> _rows = [];
    private TorchSharp.Modules.SummaryWriter? _tensorBoard;

    /// <summary>Opens (creating) a run directory.</summary>
    public RunFolder(string directory)
    {
        Directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(Directory);
    }

    /// <summary>The run directory.</summary>
    public string Directory { get; }

    /// <summary>Path of a file in the run directory.</summary>
    public string PathOf(params string[] parts) => Path.Combine([Directory, .. parts]);

    /// <summary>Metric rows logged so far (after <see cref="LoadMetrics"/>, including earlier ones).</summary>
    public IReadOnlyList<IReadOnlyDictionary<string, double>> Rows => _rows;

    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
    };

    private static readonly JsonSerializerOptions Compact = new(Json) { WriteIndented = false };

    /// <summary>Writes any object as indented JSON, atomically.</summary>
    public void WriteJson(string name, object value) => AtomicFile.WriteAllText(PathOf(name), JsonSerializer.Serialize(value, Json));

    /// <summary>Reads <c>metrics.jsonl</c>, keeping rows up to <paramref name="lastStep"/> (a resumed run drops later rows and rewrites the files).</summary>
    public void LoadMetrics(int lastStep)
    {
        _rows.Clear();
        _rows.AddRange(ReadMetricRows(PathOf("metrics.jsonl")).Where(r => r["step"] <= lastStep));
        RewriteMetrics();
    }

    /// <summary>
    /// The rows of a <c>metrics.jsonl</c> file that have a <c>step</c>, up to the first line a crash cut short (everything
    /// before it is intact); none when the file does not exist.
    /// </summary>
    public static List<SortedDictionary<string, double>> ReadMetricRows(string path)
    {
        var rows = new List<SortedDictionary<string, double>>();
        if (!File.Exists(path)) return rows;
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            SortedDictionary<string, double>? row;
            try
            {
                row = JsonSerializer.Deserialize<SortedDictionary<string, double>>(line, Json);
            }
            catch (JsonException)
            {
                break; // a line cut by a crash: everything before it is intact
            }
            if (row is null || !row.ContainsKey("step")) continue;
            rows.Add(new SortedDictionary<string, double>(row, StringComparer.Ordinal));
        }
        return rows;
    }

    /// <summary>Appends a step's metrics to the JSONL, CSV and TensorBoard logs.</summary>
    public void AppendMetrics(IReadOnlyDictionary<string, double> metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        var row = new SortedDictionary<string, double>(metrics.ToDictionary(kv => kv.Key, kv => kv.Value), StringComparer.Ordinal);
        _rows.Add(row);
        using (var stream = new FileStream(PathOf("metrics.jsonl"), FileMode.Append, FileAccess.Write, FileShare.Read))
        {
            stream.Write(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(row, Compact) + "\n"));
            stream.Flush(flushToDisk: true);
        }
        WriteCsv();
        // TorchSharp's writer: one event per scalar, each appended and flushed (a killed run keeps every finished step).
        _tensorBoard ??= TorchSharp.torch.utils.tensorboard.SummaryWriter(PathOf("tensorboard"));
        int step = (int)row["step"];
        foreach (var (tag, value) in row)
            if (tag != "step" && double.IsFinite(value)) _tensorBoard.add_scalar(tag, (float)value, step);
    }

    private void RewriteMetrics()
    {
        AtomicFile.WriteAllText(PathOf("metrics.jsonl"), string.Concat(_rows.Select(r => JsonSerializer.Serialize(r, Compact) + "\n")));
        WriteCsv();
    }

    private void WriteCsv()
    {
        var columns = _rows.SelectMany(r => r.Keys).Distinct().OrderBy(k => k == "step" ? "" : k, StringComparer.Ordinal).ToList();
        var csv = new StringBuilder(string.Join(",", columns)).Append('\n');
        foreach (var row in _rows)
            csv.Append(string.Join(",", columns.Select(c => row.TryGetValue(c, out var v) ? v.ToString("R", CultureInfo.InvariantCulture) : ""))).Append('\n');
        AtomicFile.WriteAllText(PathOf("metrics.csv"), csv.ToString());
    }

    /// <summary>Writes a captioned grid of images as <c>samples/&lt;name&gt;.png</c>.</summary>
    public string WriteGrid(string name, IReadOnlyList<(RgbImage Image, string Caption)> images, int columns = 4)
    {
        ArgumentNullException.ThrowIfNull(images);
        var path = PathOf("samples", name + ".png");
        int scale = Math.Max(1, 128 / Math.Max(1, images.Max(i => i.Image.Width)));
        ImageFile.SavePng(ImageGrid.Compose(images.Select(i => i.Image).ToList(), columns, images.Select(i => i.Caption).ToList(), scale), path);
        return path;
    }

    /// <summary>Plots the training curves (one panel per metric present) into <c>curves.png</c>.</summary>
    public string WriteCurves(IReadOnlyList<string> metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        var panels = new List<RgbImage>();
        var captions = new List<string>();
        foreach (var metric in metrics)
        {
            var points = _rows.Where(r => r.TryGetValue(metric, out var v) && double.IsFinite(v)).Select(r => (X: r["step"], Y: r[metric])).ToList();
            if (points.Count == 0) continue;
            var plot = new ScottPlot.Plot();
            var line = plot.Add.Scatter(points.Select(p => p.X).ToArray(), points.Select(p => p.Y).ToArray());
            line.MarkerSize = points.Count > 60 ? 0 : 4;
            plot.XLabel("step");
            plot.YLabel(metric);
            panels.Add(ImageFile.Decode(plot.GetImageBytes(360, 240, ScottPlot.ImageFormat.Png)));
            captions.Add(metric);
        }
        var path = PathOf("curves.png");
        if (panels.Count > 0)
            ImageFile.SavePng(ImageGrid.Compose(panels, 3, captions), path);
        return path;
    }

    /// <inheritdoc/>
    public void Dispose() => _tensorBoard = null; // the writer holds no open file between events
}
