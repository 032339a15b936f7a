using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using NextFlowRL.Imaging;
using NextFlowRL.Training;

namespace NextFlowRL.Runs.Reporting;

/// <summary>What a run folder holds, read for the report.</summary>
public sealed class RunData
{
    /// <summary>The folder.</summary>
    public required string Directory { get; init; }

    /// <summary>A short name: the folder's last two path parts.</summary>
    public required string Name { get; init; }

    /// <summary>metrics.jsonl, one row per step.</summary>
    public required IReadOnlyList<IReadOnlyDictionary<string, double>> Rows { get; init; }

    /// <summary>config.json (the resolved training options), or null.</summary>
    public JsonObject? Config { get; init; }

    /// <summary>eval_before.json / eval_after.json: metric to (value, low, high).</summary>
    public IReadOnlyDictionary<string, (double Value, double? Low, double? High)>? Before { get; init; }

    /// <inheritdoc cref="Before"/>
    public IReadOnlyDictionary<string, (double Value, double? Low, double? High)>? After { get; init; }

    /// <summary>summary.json's paired after-minus-before intervals: metric to (estimate, low, high).</summary>
    public IReadOnlyDictionary<string, (double Value, double Low, double High)>? Delta { get; init; }

    /// <summary>
    /// The further evaluations (<c>eval_&lt;when&gt;.&lt;set&gt;.&lt;reader&gt;.json</c>: other prompt sets, other readers) by
    /// <c>set/reader</c>, each as a run view whose <see cref="Before"/>, <see cref="After"/> and <see cref="Delta"/> are that evaluation's.
    /// </summary>
    public IReadOnlyDictionary<string, RunData> Further { get; init; } = new Dictionary<string, RunData>();

    /// <summary>Wall time of the run in seconds, when finished.</summary>
    public double? ElapsedSeconds { get; init; }

    /// <summary>The run's PNG files under samples/ (sorted), as bytes.</summary>
    public required IReadOnlyList<(string Name, byte[] Png)> Images { get; init; }

    /// <summary>Names of the run's rewards (from the configuration), whose components are plotted.</summary>
    public IReadOnlyList<string> RewardNames =>
        Config?["Rewards"] is JsonArray rewards ? rewards.Select(r => r?[nameof(RewardSpec.Name)]?.GetValue<string>()).OfType<string>().ToList() : [];

    /// <summary>Reads a run folder. Missing parts (a run still going, a run without evaluation) stay empty.</summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="InvalidDataException">The folder is not a run folder (no metrics.jsonl), or a file in it is corrupt.</exception>
    public static RunData Read(string directory)
    {
        var dir = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(dir)) throw new DirectoryNotFoundException($"run folder not found: {directory}");
        var metrics = Path.Combine(dir, "metrics.jsonl");
        if (!File.Exists(metrics)) throw new InvalidDataException($"{directory} is not a run folder (no metrics.jsonl)");
        // The run folder's own reader: a last line cut by a killed run ends the rows instead of failing the report.
        var rows = RunFolder.ReadMetricRows(metrics);
        var summary = ReadObject(Path.Combine(dir, "summary.json"));
        var parts = dir.TrimEnd(Path.DirectorySeparatorChar).Split(Path.DirectorySeparatorChar);
        var samples = Path.Combine(dir, "samples");
        var name = string.Join("/", parts.TakeLast(2));
        var further = new Dictionary<string, RunData>(StringComparer.Ordinal);
        foreach (var (set, reader) in EvalFile.Further(dir).Union(EvalFile.Further(dir, "before")))
        {
            var key = $"{set}/{reader}";
            further[key] = new RunData
            {
                Directory = dir,
                Name = name,
                Rows = [],
                Images = [],
                Before = ReadEval(Path.Combine(dir, EvalFile.FileName("before", set, reader, main: false))),
                After = ReadEval(Path.Combine(dir, EvalFile.FileName("after", set, reader, main: false))),
                Delta = Triples(summary?["evaluations"]?[key]?["delta"]),
            };
        }
        return new RunData
        {
            Directory = dir,
            Name = name,
            Rows = rows.ToList<IReadOnlyDictionary<string, double>>(),
            Config = ReadObject(Path.Combine(dir, "config.json")),
            Before = ReadEval(Path.Combine(dir, "eval_before.json")),
            After = ReadEval(Path.Combine(dir, "eval_after.json")),
            Delta = Triples(summary?["delta"]),
            Further = further,
            ElapsedSeconds = summary?["elapsed_seconds"] is JsonValue e && e.TryGetValue<double>(out var s) ? s : null,
            Images = System.IO.Directory.Exists(samples)
                ? System.IO.Directory.GetFiles(samples, "*.png").Order(StringComparer.Ordinal).Select(f => (Path.GetFileNameWithoutExtension(f), File.ReadAllBytes(f))).ToList()
                : [],
        };
    }

    private static Dictionary<string, (double, double, double)>? Triples(JsonNode? node) =>
        node is JsonObject delta
            ? delta.Where(p => p.Value is JsonArray { Count: 3 }).ToDictionary(p => p.Key, p => (Num(p.Value![0]), Num(p.Value[1]), Num(p.Value[2])))
            : null;

    private static double Num(JsonNode? n) => n is JsonValue v && v.TryGetValue<double>(out var d) ? d : double.NaN;

    private static JsonObject? ReadObject(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON: {e.Message}", e);
        }
    }

    private static Dictionary<string, (double, double?, double?)>? ReadEval(string path) =>
        EvalFile.Read(path) is { } eval
            ? eval.Metrics.ToDictionary(kv => kv.Key, kv => eval.Intervals.TryGetValue(kv.Key, out var ci) ? (kv.Value, ci.Low, ci.High) : (kv.Value, (double?)null, (double?)null))
            : null;
}

/// <summary>
/// The self-contained HTML report of a run (<c>report.html</c> in the run folder) or of several runs side by side:
/// training curves raw and smoothed, health metrics, time per phase, evaluation tables with their intervals, the
/// sample grids inline, and the resolved configuration. No script and no external resource: images are data URIs,
/// charts are inline SVG.
/// </summary>
public static class RunReport
{
    /// <summary>The report's file name inside a run folder.</summary>
    public const string FileName = "report.html";

    /// <summary>Smoothing weight of the smoothed curves (TensorBoard's default is 0.6).</summary>
    public const double Smoothing = 0.6;

    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>Health metrics plotted when a run has them.</summary>
    public static IReadOnlyList<string> HealthMetrics { get; } =
    [
        "loss", "kl", "grad_norm", "clip_frac", "zero_std_ratio", "advantage_abs_mean", "parity_max_dev", "ratio_first_epoch_max_dev",
        "mask_fallback_group_ratio", "mask_fallback_ones_ratio", "token_prob", "updates_per_image", "nan_skipped", "dropped", "reward_retries",
    ];

    /// <summary>Writes <c>report.html</c> into <paramref name="runDirectory"/> atomically; returns its path.</summary>
    public static string Write(string runDirectory)
    {
        var run = RunData.Read(runDirectory);
        var path = Path.Combine(run.Directory, FileName);
        AtomicFile.WriteAllText(path, Render([run]));
        return path;
    }

    /// <summary>Writes one report comparing <paramref name="runDirectories"/> to <paramref name="outputPath"/>; returns its full path.</summary>
    public static string WriteComparison(IReadOnlyList<string> runDirectories, string outputPath)
    {
        ArgumentNullException.ThrowIfNull(runDirectories);
        if (runDirectories.Count == 0) throw new ArgumentException("no run folders given", nameof(runDirectories));
        var runs = runDirectories.Select(RunData.Read).ToList();
        var path = Path.GetFullPath(outputPath);
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        AtomicFile.WriteAllText(path, Render(runs));
        return path;
    }

    /// <summary>
    /// The run folders under <paramref name="path"/>: itself when it holds metrics.jsonl, otherwise every folder below it
    /// that does (an ablation directory), sorted.
    /// </summary>
    public static IReadOnlyList<string> FindRuns(string path)
    {
        if (File.Exists(Path.Combine(path, "metrics.jsonl"))) return [path];
        if (!System.IO.Directory.Exists(path)) throw new DirectoryNotFoundException($"run folder not found: {path}");
        return System.IO.Directory.EnumerateFiles(path, "metrics.jsonl", SearchOption.AllDirectories)
            .Select(f => Path.GetDirectoryName(f)!).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>The HTML of one run, or of several side by side.</summary>
    public static string Render(IReadOnlyList<RunData> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        bool compare = runs.Count > 1;
        var h = new StringBuilder();
        var title = compare ? $"NextFlowRL: {runs.Count} runs compared" : $"NextFlowRL run {runs[0].Name}";
        h.Append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
        h.Append(CultureInfo.InvariantCulture, $"<title>{E(title)}</title><style>{Css}</style></head><body><h1>{E(title)}</h1>");
        Overview(h, runs);
        Evaluation(h, runs);
        h.Append("<h2 id=\"curves\">Training curves</h2><p class=\"note\">");
        h.Append(compare ? "Smoothed (exponential moving average, weight 0.6), one colour per run." : "Raw values (light) and smoothed (exponential moving average, weight 0.6).");
        h.Append("</p>");
        var rewardMetrics = new[] { "reward_mean", "reward_std" }
            .Concat(runs.SelectMany(r => r.RewardNames).Distinct().SelectMany(name => Keys(runs).Where(k => k.StartsWith(name + "/", StringComparison.Ordinal))))
            .Distinct().ToList();
        Charts(h, runs, rewardMetrics);
        h.Append("<h2 id=\"health\">Health</h2>");
        Charts(h, runs, HealthMetrics);
        Timing(h, runs);
        Samples(h, runs);
        Configuration(h, runs);
        h.Append("<footer>Written by nextflow-rl report. Self-contained: no scripts, no external files.</footer></body></html>");
        return h.ToString();
    }

    private static IEnumerable<string> Keys(IReadOnlyList<RunData> runs) =>
        runs.SelectMany(r => r.Rows.SelectMany(row => row.Keys)).Distinct().Order(StringComparer.Ordinal);

    private static void Overview(StringBuilder h, IReadOnlyList<RunData> runs)
    {
        h.Append("<table><thead><tr><th>run</th><th>folder</th><th>steps</th><th>policy</th><th>rewards</th><th>seed</th><th>wall time</th></tr></thead><tbody>");
        foreach (var (run, i) in runs.Select((r, i) => (r, i)))
        {
            var steps = run.Rows.Count == 0 ? 0 : run.Rows.Max(r => r.TryGetValue("step", out var s) ? s : 0);
            var time = run.ElapsedSeconds is { } e ? TimeSpan.FromSeconds(e).ToString(@"h\:mm\:ss", Inv) : "running or stopped";
            h.Append(CultureInfo.InvariantCulture, $"<tr><td>{Swatch(i, runs.Count)}{E(run.Name)}</td><td class=\"path\">{E(run.Directory)}</td><td>{steps:0}</td>")
             .Append(CultureInfo.InvariantCulture, $"<td>{E(Str(run.Config, "Policy"))}</td><td>{E(string.Join(", ", run.RewardNames))}</td><td>{E(Str(run.Config, "Seed"))}</td><td>{E(time)}</td></tr>");
        }
        h.Append("</tbody></table>");
    }

    private static void Evaluation(StringBuilder h, IReadOnlyList<RunData> runs)
    {
        h.Append("<h2 id=\"evaluation\">Evaluation</h2>");
        if (runs.All(r => r.Before is null && r.After is null))
        {
            h.Append("<p class=\"note\">No evaluation in these runs (Train:Evaluate=false, or the run stopped before it).</p>");
            return;
        }
        h.Append("<p class=\"note\">Held-out prompts, the same images' seeds before and after; 95% bootstrap intervals in brackets; ")
         .Append(runs.Count == 1 ? "the last column is the paired after-minus-before difference." : "each cell is the value after training, with the run's paired after-minus-before difference under it.")
         .Append(" Metrics per bin are left out (see eval_*.json).</p>");
        EvalTables(h, runs);
        // The further prompt sets and readers, one section each (their per-bin metrics too: that is where they differ).
        foreach (var key in runs.SelectMany(r => r.Further.Keys).Distinct().Order(StringComparer.Ordinal))
        {
            var (set, reader) = (key[..key.IndexOf('/', StringComparison.Ordinal)], key[(key.IndexOf('/', StringComparison.Ordinal) + 1)..]);
            h.Append("<h3>").Append(E(set == EvalFile.MainSet ? $"Held-out prompts, read by {reader}" : $"Prompt set '{set}', read by {reader}")).Append("</h3>");
            EvalTables(h, runs.Select(r => r.Further.GetValueOrDefault(key)).OfType<RunData>().ToList(), includeBins: true);
        }
    }

    private static void EvalTables(StringBuilder h, IReadOnlyList<RunData> runs, bool includeBins = false)
    {
        var evaluated = runs.Where(r => r.Before is not null || r.After is not null).ToList();
        if (evaluated.Count == 0) return;
        var keys = evaluated.SelectMany(r => (r.After ?? r.Before)!.Keys).Distinct()
            .Where(k => includeBins || !k.StartsWith("bin/", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        // The whole set first; each group of prefixed metrics (facet/<name>/..., a reward's components) folded below it.
        EvalTable(h, evaluated, keys.Where(k => !k.Contains('/', StringComparison.Ordinal)).ToList());
        foreach (var group in keys.Where(k => k.Contains('/', StringComparison.Ordinal)).GroupBy(GroupOf))
        {
            h.Append("<details><summary>").Append(E(group.Key)).Append(CultureInfo.InvariantCulture, $" ({group.Count()} metrics)</summary>");
            EvalTable(h, evaluated, group.ToList());
            h.Append("</details>");
        }
    }

    private static string GroupOf(string key)
    {
        var parts = key.Split('/');
        return parts.Length > 2 ? parts[0] + "/" + parts[1] : parts[0];
    }

    /// <summary>One run: before, after and the paired difference as columns. Several runs: one column per run, each cell
    /// the value after training (before, when the run has no evaluation after) and the paired difference under it.</summary>
    private static void EvalTable(StringBuilder h, IReadOnlyList<RunData> runs, IReadOnlyList<string> keys)
    {
        if (keys.Count == 0) return;
        bool one = runs.Count == 1;
        h.Append("<table class=\"eval\"><thead><tr><th>metric</th>");
        if (one) h.Append("<th>before</th><th>after</th><th>after - before (paired)</th>");
        else foreach (var (run, i) in runs.Select((r, i) => (r, i))) h.Append("<th>").Append(Swatch(i, runs.Count)).Append(E(run.Name)).Append("</th>");
        h.Append("</tr></thead><tbody>");
        foreach (var key in keys)
        {
            h.Append("<tr><td>").Append(E(key)).Append("</td>");
            foreach (var run in runs)
            {
                var delta = run.Delta is not null && run.Delta.TryGetValue(key, out var d) ? $"{Signed(d.Value)} [{Signed(d.Low)}, {Signed(d.High)}]" : "";
                if (one) h.Append(CultureInfo.InvariantCulture, $"<td>{Cell(run.Before, key)}</td><td>{Cell(run.After, key)}</td><td>{delta}</td>");
                else h.Append(CultureInfo.InvariantCulture, $"<td>{Cell(run.After ?? run.Before, key)}{(delta.Length > 0 ? "<br><span class=\"delta\">" + delta + "</span>" : "")}</td>");
            }
            h.Append("</tr>");
        }
        h.Append("</tbody></table>");
    }

    private static string Cell(IReadOnlyDictionary<string, (double Value, double? Low, double? High)>? eval, string key) =>
        eval is null || !eval.TryGetValue(key, out var v) ? ""
        : v.Low is { } lo && v.High is { } hi && double.IsFinite(lo) ? $"{SvgChart.Format(v.Value)} [{SvgChart.Format(lo)}, {SvgChart.Format(hi)}]"
        : SvgChart.Format(v.Value);

    private static void Charts(StringBuilder h, IReadOnlyList<RunData> runs, IEnumerable<string> metrics)
    {
        h.Append("<div class=\"charts\">");
        bool any = false;
        foreach (var metric in metrics)
        {
            var series = new List<ChartSeries>();
            foreach (var (run, i) in runs.Select((r, i) => (r, i)))
            {
                var points = run.Rows.Where(r => r.ContainsKey(metric) && r.ContainsKey("step")).Select(r => (r["step"], r[metric])).ToList();
                if (points.Count == 0) continue;
                var color = SvgChart.Palette[i % SvgChart.Palette.Count];
                if (runs.Count == 1) series.Add(new ChartSeries($"{metric} (raw)", points, color, 1.0, 0.35));
                series.Add(new ChartSeries($"{run.Name} {metric} (smoothed)", SvgChart.Smooth(points, Smoothing), color, 1.8));
            }
            if (series.Count == 0) continue;
            any = true;
            h.Append(SvgChart.Line(metric, series));
        }
        if (!any) h.Append("<p class=\"note\">None of these metrics were logged.</p>");
        h.Append("</div>");
    }

    private static void Timing(StringBuilder h, IReadOnlyList<RunData> runs)
    {
        h.Append("<h2 id=\"time\">Time and memory per step</h2><p class=\"note\">Means over the logged steps (seconds; resident memory in MB).</p><div class=\"charts\">");
        foreach (var run in runs)
        {
            var bars = Keys([run]).Where(k => k.StartsWith("time_", StringComparison.Ordinal))
                .Select(k => (k["time_".Length..], Mean(run, k))).ToList();
            if (bars.Count > 0) h.Append(SvgChart.Bars($"{run.Name}: seconds per step", bars, "s"));
            var memory = Keys([run]).Where(k => k.StartsWith("rss_", StringComparison.Ordinal)).ToList();
            if (memory.Count > 0)
            {
                h.Append("<table><thead><tr><th>").Append(E(run.Name)).Append("</th><th>mean</th><th>max</th></tr></thead><tbody>");
                foreach (var k in memory)
                    h.Append(CultureInfo.InvariantCulture, $"<tr><td>{E(k)}</td><td>{SvgChart.Format(Mean(run, k))}</td><td>{SvgChart.Format(run.Rows.Where(r => r.ContainsKey(k)).Max(r => r[k]))}</td></tr>");
                h.Append("</tbody></table>");
            }
        }
        h.Append("</div>");
    }

    private static double Mean(RunData run, string key)
    {
        var values = run.Rows.Where(r => r.TryGetValue(key, out var v) && double.IsFinite(v)).Select(r => r[key]).ToList();
        return values.Count == 0 ? double.NaN : values.Average();
    }

    private static void Samples(StringBuilder h, IReadOnlyList<RunData> runs)
    {
        h.Append("<h2 id=\"samples\">Samples</h2><p class=\"note\">Evaluation grids before and after training (prompt | reward under each image) and training rollouts by step.</p>");
        foreach (var run in runs)
        {
            if (runs.Count > 1) h.Append(CultureInfo.InvariantCulture, $"<h3>{E(run.Name)}</h3>");
            if (run.Images.Count == 0) { h.Append("<p class=\"note\">No sample grids in this run.</p>"); continue; }
            var ordered = run.Images.OrderBy(i => i.Name switch { "eval-before" => 0, "eval-after" => 1, _ => 2 }).ThenBy(i => i.Name, StringComparer.Ordinal);
            h.Append("<div class=\"samples\">");
            foreach (var (name, png) in ordered)
                h.Append(CultureInfo.InvariantCulture, $"<figure><img alt=\"{E(name)}\" src=\"data:image/png;base64,{Convert.ToBase64String(png)}\"><figcaption>{E(name)}</figcaption></figure>");
            h.Append("</div>");
        }
    }

    private static void Configuration(StringBuilder h, IReadOnlyList<RunData> runs)
    {
        h.Append("<h2 id=\"configuration\">Configuration</h2>");
        if (runs.Count > 1)
        {
            var flat = runs.Select(r => Flatten(r.Config)).ToList();
            var differing = flat.SelectMany(f => f.Keys).Distinct().Order(StringComparer.Ordinal)
                .Where(k => flat.Select(f => f.GetValueOrDefault(k)).Distinct().Count() > 1).ToList();
            h.Append("<p class=\"note\">Settings that differ between the runs.</p><table><thead><tr><th>setting</th>");
            foreach (var run in runs) h.Append("<th>").Append(E(run.Name)).Append("</th>");
            h.Append("</tr></thead><tbody>");
            foreach (var key in differing)
            {
                h.Append("<tr><td>").Append(E(key)).Append("</td>");
                foreach (var f in flat) h.Append("<td>").Append(E(f.GetValueOrDefault(key) ?? "")).Append("</td>");
                h.Append("</tr>");
            }
            h.Append("</tbody></table>");
        }
        foreach (var run in runs)
        {
            h.Append("<details").Append(runs.Count == 1 ? " open" : "").Append("><summary>").Append(E(run.Name)).Append(": config.json</summary><pre>")
             .Append(E(run.Config?.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) ?? "(no config.json)")).Append("</pre></details>");
        }
    }

    private static Dictionary<string, string?> Flatten(JsonNode? node, string prefix = "")
    {
        var result = new Dictionary<string, string?>(StringComparer.Ordinal);
        switch (node)
        {
            case JsonObject o:
                foreach (var (k, v) in o) foreach (var kv in Flatten(v, prefix.Length == 0 ? k : prefix + ":" + k)) result[kv.Key] = kv.Value;
                break;
            case JsonArray a:
                for (int i = 0; i < a.Count; i++) foreach (var kv in Flatten(a[i], prefix + ":" + i.ToString(Inv))) result[kv.Key] = kv.Value;
                break;
            default:
                result[prefix] = node?.ToJsonString();
                break;
        }
        return result;
    }

    private static string Str(JsonObject? config, string key) => config?[key] is JsonValue v ? v.ToString() : "";

    private static string Signed(double v) => (v >= 0 ? "+" : "") + SvgChart.Format(v);

    private static string Swatch(int i, int count) =>
        count < 2 ? "" : $"<span class=\"swatch\" style=\"background:{SvgChart.Palette[i % SvgChart.Palette.Count]}\"></span>";

    private static string E(string s) => WebUtility.HtmlEncode(s);

    private const string Css = """
        body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;max-width:1500px}
        h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}h3{font-size:15px}
        table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
        th{background:#f4f4f4}td.path{font-family:monospace;font-size:12px;color:#555}
        .note{color:#666;font-size:13px}.charts{display:flex;flex-wrap:wrap;gap:8px}
        svg.chart{background:#fff;border:1px solid #eee}svg .title{font-size:12px;font-weight:600}svg .tick{font-size:10px;fill:#555}
        svg .note{font-size:11px;fill:#888}svg .frame{fill:none;stroke:#ccc}svg .grid{stroke:#eee}
        .samples{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}figure img{max-width:520px;image-rendering:pixelated;border:1px solid #eee}
        figcaption{font-size:12px;color:#555}pre{background:#f8f8f8;padding:8px;font-size:12px;overflow:auto;max-height:480px}
        .delta{color:#666;font-size:11px}.swatch{display:inline-block;width:10px;height:10px;margin-right:6px}footer{margin-top:32px;color:#999;font-size:12px}
        """;
}
