using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using NextFlowRL.Imaging;
using NextFlowRL.Runs;
using NextFlowRL.Training;
using NextFlowRL.Training.Evidence;

namespace NextFlowRL.Cli.Commands;

/// <summary>
/// <c>nextflow-rl ablate [--steps N] [--seeds 1,2,3] [--out DIR] [--extra alpha=0.6 ...]</c>: vanilla GRPO, +PANW, +VMR,
/// +MP and the full method (plus extra variants) with the same seeds and steps; writes ablation.md. Finished runs are
/// reused and unfinished ones resumed, so an interrupted ablation continues where it stopped.
/// </summary>
internal static class AblateCommand
{
    public static Command Create(CliContext context)
    {
        var steps = new Option<int?>("--steps") { Description = "Updates per run (overrides Train:Steps)." };
        var seeds = new Option<string>("--seeds") { Description = "Comma-separated run seeds.", DefaultValueFactory = _ => "1,2,3" };
        var outDir = new Option<string>("--out") { Description = "Ablation directory.", DefaultValueFactory = _ => Path.Combine("runs", "ablation") };
        var extra = new Option<string[]>("--extra") { Description = $"Extra variants of the full method: {AblationVariant.Examples} (repeatable)." };
        var only = new Option<string[]>("--only") { Description = "Run only the standard variants whose names contain one of these words, as whole words (e.g. vanilla, full, PANW, \"G x K\")." };
        var command = new Command("ablate", "Compare vanilla GRPO, +PANW, +VMR, +MP and the full method at equal steps and seeds.") { steps, seeds, outDir, extra, only };
        command.SetAction(async (parse, ct) =>
        {
            if (parse.GetValue(steps) is { } n) context.Override("Train:Steps", n);
            var baseOptions = TrainingConfig.Bind(context);
            var seedList = ParseSeeds(parse.GetValue(seeds)!);
            var variants = AblationVariant.Standard(baseOptions.Alpha > 0 ? baseOptions.Alpha : 0.7).ToList();
            if (parse.GetValue(only) is { Length: > 0 } filters)
                variants = AblationVariant.Select(variants, filters).ToList();
            try
            {
                variants.AddRange((parse.GetValue(extra) ?? []).Select(e => AblationVariant.Parse(e, baseOptions.Alpha)));
            }
            catch (ArgumentException e)
            {
                throw new CliUsageException(e.Message);
            }
            if (variants.Count == 0) throw new CliUsageException("no variants selected");
            TrainingConfig.EnsureValid(baseOptions);
            var root = parse.GetValue(outDir)!;
            var results = new List<(string, IReadOnlyList<ScoredSet>)>();
            var runDirs = variants.SelectMany(v => seedList.Select(seed => Path.Combine(root, Slug(v.Name), $"seed-{seed}"))).ToList(); // variant-major, seed-minor
            // The base model is evaluated once per ablation (the evaluation does not depend on the variant or the seed):
            // by whichever run has it already (a reused run), else by the first run trained.
            ScoredSet? baseModel = FirstEvaluation(runDirs, EvalFile.FileName("before"));
            int total = variants.Count * seedList.Count, index = 0;
            foreach (var variant in variants)
            {
                var perSeed = new List<ScoredSet>();
                foreach (var seed in seedList)
                {
                    index++;
                    var options = baseOptions.Clone();
                    variant.Apply(options);
                    options.Seed = seed;
                    options.EvaluateBefore = baseModel is null;
                    TrainingConfig.EnsureValid(options);
                    var dir = runDirs[index - 1];
                    Console.Error.WriteLine($"nextflow-rl: ablation run {index}/{total}: {variant.Name}, seed {seed} -> {dir}");
                    await RunOrReuseAsync(context, options, dir, ct);
                    baseModel ??= TrainingRun.ReadEvalFile(Path.Combine(dir, EvalFile.FileName("before"))).Set;
                    var after = TrainingRun.ReadEvalFile(Path.Combine(dir, "eval_after.json")).Set;
                    if (after is not null) perSeed.Add(after);
                    else Console.Error.WriteLine($"nextflow-rl: {dir} has no evaluation set (eval_after.json without \"set\": a run of an older version?); it is left out of the table");
                }
                results.Add((variant.Name, perSeed));
            }
            var reward = context.ValidatedHost().GetReward(baseOptions.Rewards[0].Name);
            // The last columns pair every variant with the first one (vanilla GRPO in the standard ladder, the full method
            // when only it and its --extra variants run).
            string? baselineVariant = variants.Count > 1 ? variants[0].Name : null;
            var table = AblationTable.Markdown(results, reward, baselineVariant,
                baseModel, baseOptions.BootstrapResamples, baseOptions.EvalSeed, baseOptions.ReportMetrics);
            // The further evaluations (Train:EvalSets x Train:EvalReaders) of the same runs, one table each.
            foreach (var (set, reader) in runDirs.SelectMany(d => EvalFile.Further(d)).Distinct().ToList())
            {
                var further = variants.Select((v, i) => (v.Name, (IReadOnlyList<ScoredSet>)runDirs.Skip(i * seedList.Count).Take(seedList.Count)
                    .Select(d => TrainingRun.ReadEvalFile(Path.Combine(d, EvalFile.FileName("after", set, reader, main: false))).Set)
                    .OfType<ScoredSet>().ToList())).ToList();
                var furtherBase = FirstEvaluation(runDirs, EvalFile.FileName("before", set, reader, main: false));
                var columns = baseOptions.ReportMetrics.Select(c => new ReportMetric { Key = c.Key, Label = c.Key, Headline = c.Headline }).ToList();
                table += $"\n## Prompt set '{set}', read by {reader}\n\n" + AblationTable.Markdown(further, context.ValidatedHost().GetReward(reader), baselineVariant,
                    furtherBase, baseOptions.BootstrapResamples, baseOptions.EvalSeed, columns);
            }
            var md = $"# Ablation\n\n{baseOptions.Steps} steps per run, seeds {string.Join(", ", seedList)}, evaluated on {baseOptions.EvalPrompts} " +
                     $"(limit {baseOptions.EvalLimit}, {baseOptions.EvalImagesPerPrompt} images per prompt, evaluation seed {baseOptions.EvalSeed}). " +
                     $"Cells: the metric pooled over the seeds' evaluations with a 95% interval from {baseOptions.BootstrapResamples} two-level bootstrap resamples (seeds, then prompts); " +
                     $"the last columns pair each variant with the first one by seed. Command: `nextflow-rl {string.Join(" ", Environment.GetCommandLineArgs().Skip(1))}`\n\n{table}";
            AtomicFile.WriteAllText(Path.Combine(root, "ablation.md"), md);
            Console.Out.Write(table);
            Console.Error.WriteLine($"nextflow-rl: wrote {Path.Combine(root, "ablation.md")}");
            return Cli.Ok;
        });
        return command;
    }

    private static async Task<(IReadOnlyDictionary<string, double>? Before, IReadOnlyDictionary<string, double>? After)> RunOrReuseAsync(
        CliContext context, TrainerOptions options, string dir, CancellationToken ct)
    {
        var summaryPath = Path.Combine(dir, "summary.json");
        if (File.Exists(summaryPath))
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(summaryPath));
            Console.Error.WriteLine("nextflow-rl: finished earlier, reusing its results");
            return (Read(doc.RootElement, "before"), Read(doc.RootElement, "after"));
        }
        bool resume = File.Exists(Path.Combine(dir, "checkpoints", "latest"));
        var summary = await TrainCommand.RunAsync(context, resume ? TrainCommand.LoadSaved(dir) : options, dir, resume, ct);
        ct.ThrowIfCancellationRequested();
        return (summary.Before, summary.After);
    }

    /// <summary>The scored set of the first run that has the evaluation file <paramref name="name"/>, or null.</summary>
    private static ScoredSet? FirstEvaluation(IEnumerable<string> runDirs, string name) =>
        runDirs.Select(d => TrainingRun.ReadEvalFile(Path.Combine(d, name)).Set).FirstOrDefault(s => s is not null);

    private static Dictionary<string, double>? Read(JsonElement root, string name) =>
        root.TryGetProperty(name, out var e) && e.ValueKind == JsonValueKind.Object
            ? e.EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.Number).ToDictionary(p => p.Name, p => p.Value.GetDouble())
            : null;

    private static List<long> ParseSeeds(string text)
    {
        var seeds = new List<long>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!long.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out var s))
                throw new CliUsageException($"--seeds expects comma-separated integers, got '{text}'");
            seeds.Add(s);
        }
        if (seeds.Count == 0) throw new CliUsageException("--seeds is empty");
        return seeds;
    }

    private static string Slug(string name) =>
        new string(name.ToLowerInvariant().Select(c => char.IsLetterOrDigit(c) ? c : '-').ToArray()).Trim('-').Replace("--", "-", StringComparison.Ordinal);
}
