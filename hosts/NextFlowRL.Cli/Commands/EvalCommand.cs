using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using NextFlowRL.Imaging;
using NextFlowRL.Training;
using NextFlowRL.Training.Evidence;
using Spectre.Console;

namespace NextFlowRL.Cli.Commands;

/// <summary>
/// <c>nextflow-rl eval [--policy var] [--checkpoint DIR] [--prompts FILE] [--reward ocr [--reward ocr-block]] [--limit N] [--out DIR]</c>:
/// CVTG-style metrics (Word Accuracy and NED with the ocr reward) of a policy on a prompt file; with several
/// <c>--reward</c> every reader scores the same images.
/// </summary>
internal static class EvalCommand
{
    public static Command Create(CliContext context)
    {
        var policy = new PolicyOptions();
        var prompts = new Option<string?>("--prompts") { Description = "Prompt file (JSONL with prompt, target_words, bin). Default: Train:EvalPrompts." };
        var reward = new Option<string[]>("--reward") { Description = "Reward to evaluate with (default: the first of Train:Rewards); repeat it to read the same images with several readers (e.g. --reward ocr --reward ocr-block)." };
        var limit = new Option<int>("--limit") { Description = "Use only the first N prompts (0 = all).", DefaultValueFactory = _ => 0 };
        var format = Formats.Option();
        var outDir = new Option<string?>("--out") { Description = "Also write the images, a grid and metrics.json here." };
        var perPrompt = new Option<int?>("--images-per-prompt") { Description = "Images per prompt (default Train:EvalImagesPerPrompt)." };
        var baseline = new Option<string?>("--baseline") { Description = "A second checkpoint evaluated on the same prompts and seeds, or the folder of an earlier 'eval --out' (e.g. another --cfg): prints the paired difference (this - baseline) with its 95% CI." };
        var command = new Command("eval", "Evaluate a policy checkpoint on a prompt file (bootstrap 95% CIs over prompts; --baseline for a paired comparison).") { prompts, reward, limit, format, outDir, perPrompt, baseline };
        policy.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            var defaults = TrainingConfig.Bind(context);
            var file = TrainingConfig.Expand(parse.GetValue(prompts)) ?? defaults.EvalPrompts
                ?? throw new CliUsageException("no prompt file: give --prompts FILE (or set Train:EvalPrompts)");
            if (!File.Exists(file)) throw new CliUsageException($"prompt file '{file}' not found");
            var set = PromptSet.Load(file).Records;
            int n = parse.GetValue(limit);
            if (n < 0) throw new CliUsageException($"--limit must be >= 0, got {n}");
            if (n > 0) set = set.Take(n).ToList();
            string[] rewardNames = parse.GetValue(reward) is { Length: > 0 } given ? given.Distinct().ToArray()
                : [defaults.Rewards.FirstOrDefault()?.Name ?? throw new CliUsageException("no reward: give --reward NAME")];
            var readers = rewardNames.Select(context.ValidatedHost().GetReward).ToList();
            var sampling = policy.Sampling(context, parse);
            // Without --seed the protocol's evaluation seed: every checkpoint is evaluated on the same images' streams.
            if (parse.GetResult(policy.Seed) is not { Implicit: false }) sampling = sampling with { Seed = defaults.EvalSeed };
            int m = parse.GetValue(perPrompt) ?? defaults.EvalImagesPerPrompt;
            if (m < 1) throw new CliUsageException($"--images-per-prompt must be at least 1, got {m}");
            async Task<IReadOnlyList<EvalReport>> Evaluate(Policies.INextScalePolicy target, string label)
            {
                using var progress = new ConsoleProgress(label, set.Count * m, "img");
                return await PolicyEvaluator.EvaluateAsync(target, readers, set, sampling, m, resamples: defaults.BootstrapResamples,
                    pipelineRewards: defaults.Rollout.PipelineRewards,
                    progress: new CountProgress(progress), ct: ct);
            }
            IReadOnlyList<EvalReport> reports;
            using (var p = policy.Load(context, parse))
                reports = await Evaluate(p, "eval");
            var paired = new IReadOnlyDictionary<string, Interval>?[readers.Count];
            if (parse.GetValue(baseline) is { } earlier && File.Exists(Path.Combine(earlier, "metrics.json")))
            {
                for (int r = 0; r < readers.Count; r++)
                    paired[r] = Bootstrap.PairedDifference(readers[r], reports[r].Set, EarlierSet(earlier, r == 0 ? "metrics.json" : $"metrics.{rewardNames[r]}.json", rewardNames[r], reports[r].Set, m, sampling.Seed),
                        defaults.BootstrapResamples, sampling.Seed);
            }
            else if (parse.GetValue(baseline) is { } other)
            {
                var provider = context.ValidatedHost().GetPolicyProvider(parse.GetValue(policy.Policy) ?? defaults.Policy);
                using var b = provider.Load(PolicyOptions.ResolveCheckpoint(other));
                var baseReports = await Evaluate(b, "eval baseline");
                for (int r = 0; r < readers.Count; r++)
                    paired[r] = Bootstrap.PairedDifference(readers[r], reports[r].Set, baseReports[r].Set, defaults.BootstrapResamples, sampling.Seed);
            }
            var report = reports[0];
            if (parse.GetValue(outDir) is { } dir)
            {
                for (int i = 0; i < report.Images.Count; i++) ImageFile.SavePng(report.Images[i], Path.Combine(dir, $"{i:D3}.png"));
                int scale = Math.Max(1, 128 / report.Images.Max(i => i.Width));
                ImageFile.SavePng(ImageGrid.Compose(report.Images.Take(64).ToList(), 8,
                    report.Images.Take(64).Select((_, i) => $"{set[report.Set.Prompts[i]].Prompt} | {Score(report.Results[i].Score)}").ToList(), scale), Path.Combine(dir, "grid.png"));
                // metrics.json for the first reader, metrics.<reader>.json for each further one.
                for (int r = 0; r < readers.Count; r++)
                {
                    Imaging.AtomicFile.WriteAllText(Path.Combine(dir, r == 0 ? "metrics.json" : $"metrics.{rewardNames[r]}.json"), JsonSerializer.Serialize(new
                    {
                        prompts = file, reward = rewardNames[r], images_per_prompt = m, eval_seed = sampling.Seed, metrics = reports[r].Metrics,
                        ci = reports[r].Intervals.ToDictionary(kv => kv.Key, kv => new double?[] { Finite(kv.Value.Low), Finite(kv.Value.High) }),
                        set = reports[r].Set,
                    }, Formats.Json));
                }
            }
            if (parse.GetValue(format) == "json")
            {
                // Flat: each metric, its 95% CI as <metric>/ci_low and /ci_high, and with --baseline delta/<metric>[/ci_low|/ci_high];
                // with several readers every key starts with the reader's name (<reader>/<metric>).
                var flat = new SortedDictionary<string, double?>(StringComparer.Ordinal);
                for (int r = 0; r < readers.Count; r++)
                {
                    string prefix = readers.Count == 1 ? "" : rewardNames[r] + "/";
                    foreach (var (k, v) in reports[r].Metrics)
                    {
                        flat[prefix + k] = Finite(v);
                        if (reports[r].Intervals.TryGetValue(k, out var ci)) { flat[prefix + k + "/ci_low"] = Finite(ci.Low); flat[prefix + k + "/ci_high"] = Finite(ci.High); }
                    }
                    foreach (var (k, d) in paired[r] ?? new Dictionary<string, Interval>())
                    {
                        flat[prefix + "delta/" + k] = Finite(d.Estimate);
                        flat[prefix + "delta/" + k + "/ci_low"] = Finite(d.Low);
                        flat[prefix + "delta/" + k + "/ci_high"] = Finite(d.High);
                    }
                }
                Console.Out.WriteLine(JsonSerializer.Serialize(flat, Formats.Json));
            }
            else
            {
                for (int r = 0; r < readers.Count; r++)
                {
                    if (readers.Count > 1) AnsiConsole.MarkupLine(Markup.Escape($"read by {rewardNames[r]}:"));
                    var table = paired[r] is null ? new Table().AddColumns("metric", "value", "95% CI") : new Table().AddColumns("metric", "value", "95% CI", Markup.Escape("minus baseline [95% CI, paired]"));
                    foreach (var (k, v) in reports[r].Metrics)
                    {
                        var cells = new List<string> { Markup.Escape(k), v.ToString("0.0000", CultureInfo.InvariantCulture), reports[r].Intervals.TryGetValue(k, out var ci) ? Markup.Escape(Range(ci)) : "-" };
                        if (paired[r] is { } pr) cells.Add(pr.TryGetValue(k, out var d) ? Markup.Escape(d.ToString()) : "-");
                        table.AddRow(cells.ToArray());
                    }
                    AnsiConsole.Write(table);
                }
                Console.Error.WriteLine($"nextflow-rl: {set.Count} prompts x {m} images, evaluation seed {sampling.Seed}; intervals: {defaults.BootstrapResamples} bootstrap resamples of the prompts");
            }
            return Cli.Ok;
        });
        return command;
    }

    /// <summary>
    /// The scored set an earlier <c>eval --out</c> wrote, checked to pair with <paramref name="current"/>: same reader,
    /// images per prompt, evaluation seed, prompts and bins.
    /// </summary>
    private static ScoredSet EarlierSet(string dir, string file, string reader, ScoredSet current, int imagesPerPrompt, long seed)
    {
        var path = Path.Combine(dir, file);
        if (!File.Exists(path)) throw new CliUsageException($"--baseline {dir}: no {file} (that evaluation was not read by '{reader}')");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var root = doc.RootElement;
            string? Text(string name) => root.TryGetProperty(name, out var e) && e.ValueKind == JsonValueKind.String ? e.GetString() : null;
            long? Number(string name) => root.TryGetProperty(name, out var e) && e.ValueKind == JsonValueKind.Number ? e.GetInt64() : null;
            if (Text("reward") != reader) throw new CliUsageException($"--baseline {path} was read by '{Text("reward")}', not '{reader}'");
            if (Number("images_per_prompt") != imagesPerPrompt || Number("eval_seed") != seed)
                throw new CliUsageException($"--baseline {path}: {Number("images_per_prompt")} images per prompt with seed {Number("eval_seed")}, this evaluation {imagesPerPrompt} with seed {seed}: not paired");
            var set = root.TryGetProperty("set", out var s) && s.ValueKind == JsonValueKind.Object ? ScoredSet.FromJson(s) : null;
            if (set is null) throw new CliUsageException($"--baseline {path} holds no scored set");
            if (!set.SameLayout(current)) throw new CliUsageException($"--baseline {path} was evaluated on other prompts: not paired");
            return set;
        }
        catch (JsonException e)
        {
            throw new CliUsageException($"--baseline {path}: {e.Message}");
        }
    }

    private static string Score(double s) => double.IsFinite(s) ? s.ToString("0.00", CultureInfo.InvariantCulture) : "-";

    private static double? Finite(double v) => double.IsFinite(v) ? v : null;

    private static string Range(Interval ci) =>
        double.IsFinite(ci.Low) ? string.Create(CultureInfo.InvariantCulture, $"[{ci.Low:0.0000}, {ci.High:0.0000}]") : "-";
}
