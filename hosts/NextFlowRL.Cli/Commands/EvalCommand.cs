using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using NextFlowRL.Imaging;
using NextFlowRL.Training;
using Spectre.Console;

namespace NextFlowRL.Cli.Commands;

/// <summary>
/// <c>nextflow-rl eval [--policy var] [--checkpoint DIR] [--prompts FILE] [--reward ocr] [--limit N] [--out DIR]</c>:
/// CVTG-style metrics (Word Accuracy and NED with the ocr reward) of a policy on a prompt file.
/// </summary>
internal static class EvalCommand
{
    public static Command Create(CliContext context)
    {
        var policy = new PolicyOptions();
        var prompts = new Option<string?>("--prompts") { Description = "Prompt file (JSONL with prompt, target_words, bin). Default: Train:EvalPrompts." };
        var reward = new Option<string?>("--reward") { Description = "Reward to evaluate with (default: the first of Train:Rewards)." };
        var limit = new Option<int>("--limit") { Description = "Use only the first N prompts (0 = all).", DefaultValueFactory = _ => 0 };
        var format = Formats.Option();
        var outDir = new Option<string?>("--out") { Description = "Also write the images, a grid and metrics.json here." };
        var command = new Command("eval", "Evaluate a policy checkpoint on a prompt file.") { prompts, reward, limit, format, outDir };
        policy.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            var defaults = TrainingConfig.Bind(context.Configuration);
            var file = TrainingConfig.Expand(parse.GetValue(prompts)) ?? defaults.EvalPrompts
                ?? throw new CliUsageException("no prompt file: give --prompts FILE (or set Train:EvalPrompts)");
            if (!File.Exists(file)) throw new CliUsageException($"prompt file '{file}' not found");
            var set = PromptSet.Load(file).Records;
            int n = parse.GetValue(limit);
            if (n < 0) throw new CliUsageException($"--limit must be >= 0, got {n}");
            if (n > 0) set = set.Take(n).ToList();
            var rewardName = parse.GetValue(reward) ?? defaults.Rewards.FirstOrDefault()?.Name
                ?? throw new CliUsageException("no reward: give --reward NAME");
            var model = context.ValidatedHost().GetReward(rewardName);
            var sampling = policy.Sampling(context, parse);
            using var p = policy.Load(context, parse);
            var progress = new ConsoleProgress("eval", set.Count, "img");
            int done = 0;
            var report = await PolicyEvaluator.EvaluateAsync(p, model, set, sampling,
                progress: new Progress<int>(c => { progress.Advance(c - done); done = c; }), ct: ct);
            if (parse.GetValue(outDir) is { } dir)
            {
                for (int i = 0; i < report.Images.Count; i++) ImageFile.SavePng(report.Images[i], Path.Combine(dir, $"{i:D3}.png"));
                int scale = Math.Max(1, 128 / report.Images.Max(i => i.Width));
                ImageFile.SavePng(ImageGrid.Compose(report.Images.Take(64).ToList(), 8,
                    set.Take(64).Select((r, i) => $"{r.Prompt} | {Score(report.Results[i].Score)}").ToList(), scale), Path.Combine(dir, "grid.png"));
                Imaging.AtomicFile.WriteAllText(Path.Combine(dir, "metrics.json"), JsonSerializer.Serialize(new { prompts = file, reward = rewardName, metrics = report.Metrics }, Formats.Json));
            }
            if (parse.GetValue(format) == "json")
            {
                Console.Out.WriteLine(JsonSerializer.Serialize(report.Metrics.ToDictionary(kv => kv.Key, kv => double.IsFinite(kv.Value) ? kv.Value : (double?)null), Formats.Json));
            }
            else
            {
                var table = new Table().AddColumns("metric", "value");
                foreach (var (k, v) in report.Metrics) table.AddRow(Markup.Escape(k), v.ToString("0.0000", CultureInfo.InvariantCulture));
                AnsiConsole.Write(table);
            }
            return Cli.Ok;
        });
        return command;
    }

    private static string Score(double s) => double.IsFinite(s) ? s.ToString("0.00", CultureInfo.InvariantCulture) : "-";
}
