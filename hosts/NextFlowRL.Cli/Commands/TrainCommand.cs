using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using NextFlowRL.Cluster;
using NextFlowRL.Runs;
using NextFlowRL.Training;
using NextFlowRL.Training.Evidence;
using Spectre.Console;

namespace NextFlowRL.Cli.Commands;

/// <summary>
/// <c>nextflow-rl train [--steps N] [--out DIR] [--seed S] [--resume DIR]</c>: RL on the configured policy and rewards
/// (defaults: the shipped tiny-text VAR with the ocr reward and the full method).
/// </summary>
internal static class TrainCommand
{
    public static Command Create(CliContext context)
    {
        var steps = new Option<int?>("--steps") { Description = "Updates to run (overrides Train:Steps)." };
        var outDir = new Option<string?>("--out") { Description = "Run directory (default runs/train-<time>)." };
        var seed = new Option<long?>("--seed") { Description = "Run seed (overrides Train:Seed)." };
        var resume = new Option<string?>("--resume") { Description = "Continue the run in DIR from its latest checkpoint (its saved configuration is used)." };
        var command = new Command("train", "Train a policy with GRPO + VMR + PANW + Mask Propagation.") { steps, outDir, seed, resume };
        command.SetAction(async (parse, ct) =>
        {
            var resumeDir = parse.GetValue(resume);
            TrainerOptions options;
            string dir;
            if (resumeDir is not null)
            {
                if (parse.GetValue(outDir) is not null || parse.GetValue(seed) is not null)
                    throw new CliUsageException("--resume continues a run with its saved configuration: --out and --seed cannot change");
                dir = resumeDir;
                options = LoadSaved(dir);
                if (parse.GetValue(steps) is { } more) options.Steps = more;
            }
            else
            {
                if (parse.GetValue(seed) is { } s) context.Override("Train:Seed", s);
                if (parse.GetValue(steps) is { } n) context.Override("Train:Steps", n);
                options = TrainingConfig.Bind(context);
                dir = parse.GetValue(outDir) ?? Path.Combine("runs", "train-" + DateTime.Now.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture));
            }
            TrainingConfig.EnsureValid(options);
            var summary = await RunAsync(context, options, dir, resumeDir is not null, ct);
            return summary.Cancelled ? Cli.Cancelled : Cli.Ok;
        });
        return command;
    }

    public static TrainerOptions LoadSaved(string dir)
    {
        var path = Path.Combine(dir, "config.json");
        if (!File.Exists(path)) throw new CliUsageException($"'{dir}' is not a run directory (no config.json)");
        try
        {
            return JsonSerializer.Deserialize<TrainerOptions>(File.ReadAllText(path), SavedJson)
                ?? throw new InvalidDataException($"{path} is empty");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a valid run configuration ({e.Message})");
        }
    }

    private static readonly JsonSerializerOptions SavedJson = new()
    {
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
    };

    /// <summary>Runs training with a progress line and prints the before/after evaluation.</summary>
    public static async Task<TrainingSummary> RunAsync(CliContext context, TrainerOptions options, string dir, bool resume, CancellationToken ct)
    {
        var host = context.ValidatedHost();
        var provider = host.GetPolicyProvider(options.Policy);
        foreach (var r in options.Rewards.Select(r => r.Name).Concat(options.ActiveEvalReaders)) host.GetReward(r); // unknown names fail before any work
        foreach (var (name, path) in options.ActiveEvalSets)
        {
            if (!File.Exists(path)) throw new CliUsageException($"Train:EvalSets:{name}: prompt file '{path}' not found (an empty value turns the set off: --set Train:EvalSets:{name}=)");
        }
        var logger = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("train");
        using var cluster = options.Cluster.Enabled ? await ConnectAsync(host, options, logger, ct) : null;
        ConsoleProgress? progress = null;
        var request = new TrainingRunRequest
        {
            Options = options,
            OutDir = dir,
            Resume = resume,
            PolicyProvider = provider,
            // On a cluster, rewards the trainer scores itself (the evaluations) go to the reward workers too.
            ResolveReward = cluster is null ? host.GetReward : name => new ClusterReward(cluster, host.GetReward(name)),
            Logger = logger,
            Rollouts = cluster,
            OnStatus = s =>
            {
                // A phase between steps (the evaluation after training) ends the steps' bar: one live display at a time.
                progress?.Dispose();
                progress = null;
                Console.Error.WriteLine($"nextflow-rl: {s}");
            },
            Progress = new ConsoleProgress.Display(),
            OnStep = r =>
            {
                progress ??= new ConsoleProgress("train", options.Steps - r.Step, "steps");
                progress.Advance(1, Detail(r));
            },
        };
        Console.Error.WriteLine($"nextflow-rl: run directory {Path.GetFullPath(dir)}");
        TrainingSummary summary;
        try
        {
            summary = await TrainingRun.RunAsync(request, ct);
        }
        finally
        {
            progress?.Dispose(); // a run stopped early ends the live display before the last lines
        }
        if (summary.Cancelled)
        {
            Console.Error.WriteLine($"nextflow-rl: stopped after step {summary.CompletedSteps}; checkpoint written. Continue with: nextflow-rl train --resume {dir}");
            return summary;
        }
        PrintEval(summary);
        Console.Error.WriteLine($"nextflow-rl: done: {summary.CompletedSteps} steps in {NextFlowRL.Plugins.PlainProgressDisplay.FormatDuration(summary.Elapsed)}; see {Path.Combine(dir, "curves.png")} and {Path.Combine(dir, "metrics.csv")}");
        return summary;
    }

    /// <summary>Joins the cluster of <c>Train:Cluster</c>: its workers must run this host's plugins for the run's components.</summary>
    public static async Task<ClusterRollouts> ConnectAsync(NextFlowRL.Hosting.NextFlowRLHost host, TrainerOptions options, ILogger logger, CancellationToken ct)
    {
        Console.Error.WriteLine($"nextflow-rl: joining cluster '{options.Cluster.ClusterId}' at {options.Cluster.Where}");
        var cluster = await ClusterRollouts.ConnectAsync(options, WorkerFingerprint.ForRun(host, options), logger, ct);
        int shards = NextFlowRL.Training.Rollouts.RolloutShard.Layout(options.PromptsPerStep, options.Cluster.ShardPrompts).Count;
        Console.Error.WriteLine($"nextflow-rl: rollouts on the cluster's {cluster.Workers} worker{(cluster.Workers == 1 ? "" : "s")}, {shards} shard{(shards == 1 ? "" : "s")} per step");
        if (shards < cluster.Workers)
            logger.LogWarning("{Shards} shard(s) per step for {Workers} workers: some workers stay idle; set Train:Cluster:ShardPrompts to {Suggested} (prompts per step / workers). It is part of the run's definition, like the seed",
                shards, cluster.Workers, Math.Max(1, options.PromptsPerStep / cluster.Workers));
        return cluster;
    }

    private static string Detail(StepResult r)
    {
        var m = r.Metrics;
        string F(string key, string label) => m.TryGetValue(key, out var v) && double.IsFinite(v) ? $" {label}={v.ToString("0.000", CultureInfo.InvariantCulture)}" : "";
        var acc = m.Keys.FirstOrDefault(k => k.EndsWith("/word_acc", StringComparison.Ordinal));
        return $"{r.Kind.ToString().ToLowerInvariant()}{F("reward_mean", "R")}{(acc is null ? "" : F(acc, "acc"))}{F("kl", "kl")}";
    }

    private static void PrintEval(TrainingSummary summary)
    {
        if (summary.Before is null || summary.After is null) return;
        PrintTable("held-out metric", summary.Before, summary.After, summary.Delta, _ => true);
        // The further sets and readers: their headline rows (whole set and facets, no per-bin rows).
        foreach (var e in summary.Evaluations.Where(e => e.Before is not null && e.After is not null))
        {
            AnsiConsole.MarkupLine(Markup.Escape($"set '{e.Set}', read by {e.Reader}:"));
            PrintTable("metric", e.Before!, e.After!, e.Delta, k => !k.StartsWith("mean_", StringComparison.Ordinal) && !k.Contains("/mean_", StringComparison.Ordinal));
        }
    }

    private static void PrintTable(string title, IReadOnlyDictionary<string, double> before, IReadOnlyDictionary<string, double> after,
        IReadOnlyDictionary<string, Interval>? delta, Func<string, bool> shown)
    {
        var table = new Table().AddColumns(title, "before", "after", Markup.Escape("change [95% CI, paired]"));
        foreach (var key in before.Keys.Where(k => !k.StartsWith("bin/", StringComparison.Ordinal) && after.ContainsKey(k) && shown(k)))
        {
            double b = before[key], a = after[key];
            string change = (a - b).ToString("+0.0000;-0.0000;0", CultureInfo.InvariantCulture);
            if (delta is not null && delta.TryGetValue(key, out var d) && double.IsFinite(d.Low))
                change += string.Create(CultureInfo.InvariantCulture, $" [{d.Low:+0.0000;-0.0000;0}, {d.High:+0.0000;-0.0000;0}]");
            table.AddRow(Markup.Escape(key), b.ToString("0.0000", CultureInfo.InvariantCulture), a.ToString("0.0000", CultureInfo.InvariantCulture), Markup.Escape(change));
        }
        AnsiConsole.Write(table);
    }
}
