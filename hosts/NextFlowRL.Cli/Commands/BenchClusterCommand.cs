using System.CommandLine;
using System.Globalization;
using NextFlowRL.Cluster;
using NextFlowRL.Training;

namespace NextFlowRL.Cli.Commands;

/// <summary>
/// <c>nextflow-rl bench cluster [--workers 1,2,3] [--steps N] [--worker DLL]</c>: the configured training steps in
/// this process and on 1, 2, 3 local worker silos; per-phase seconds, the cluster's overhead per step, and the speedup
/// model for M machines fitted to them (docs/scaling.md).
/// </summary>
internal static class BenchClusterCommand
{
    public static Command Create(CliContext context)
    {
        var workers = new Option<string>("--workers") { Description = "Worker silo counts to measure, comma-separated.", DefaultValueFactory = _ => "1,2,3" };
        var steps = new Option<int>("--steps") { Description = "Steps per configuration (the first is not timed).", DefaultValueFactory = _ => 3 };
        var worker = new Option<string?>("--worker") { Description = $"The worker host ({WorkerProcess.DllName}); default: beside nextflow-rl or built in this repository." };
        var command = new Command("cluster", "Benchmark rollouts on 1, 2, 3 local worker silos against one process: phase times, overhead per step, speedup model.") { workers, steps, worker };
        command.SetAction(async (parse, ct) =>
        {
            var counts = ParseCounts(parse.GetValue(workers)!);
            int n = parse.GetValue(steps);
            if (n < 2) throw new CliUsageException($"--steps must be at least 2, got {n}");
            var dll = parse.GetValue(worker) ?? WorkerProcess.Find(AppContext.BaseDirectory)
                ?? throw new CliUsageException($"no {WorkerProcess.DllName} beside nextflow-rl or in this repository's build: build hosts/NextFlowRL.Worker or give --worker PATH");
            if (!File.Exists(dll)) throw new CliUsageException($"--worker: '{dll}' does not exist");
            var options = TrainingConfig.Bind(context);
            options.Evaluate = false;
            if (options.Cluster.ShardPrompts <= 0) options.Cluster.ShardPrompts = (options.PromptsPerStep + counts.Max() - 1) / counts.Max();
            TrainingConfig.EnsureValid(options);
            var host = context.ValidatedHost();
            var provider = host.GetPolicyProvider(options.Policy);
            var rewards = options.Rewards.Select(r => (r, host.GetReward(r.Name))).ToList();
            int shards = NextFlowRL.Training.Rollouts.RolloutShard.Layout(options.PromptsPerStep, options.Cluster.ShardPrompts).Count;
            using var progress = new ConsoleProgress("bench cluster", n * (counts.Count + 1), "steps");
            var rows = await ClusterBenchmark.RunAsync(new ClusterBenchmark.Request
            {
                Options = options,
                LoadPolicy = () => provider.Load(options.Checkpoint),
                Rewards = rewards,
                Trainer = WorkerFingerprint.ForRun(host, options),
                WorkerDll = dll,
                WorkerCounts = counts,
                Steps = n,
                Logger = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("bench"),
                OnStatus = s => Console.Error.WriteLine($"nextflow-rl: {s}"),
                OnStep = () => progress.Advance(),
            }, ct);
            Print(rows, options, shards);
            return Cli.Ok;
        });
        return command;
    }

    private static List<int> ParseCounts(string text)
    {
        var counts = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int c) || c < 1 || c > 16)
                throw new CliUsageException($"--workers: '{part}' is not a worker count from 1 to 16");
            counts.Add(c);
        }
        if (counts.Count == 0) throw new CliUsageException("--workers names no worker count");
        return counts.Distinct().Order().ToList();
    }

    private static void Print(IReadOnlyList<ClusterBenchmarkRow> rows, TrainerOptions o, int shards)
    {
        var c = CultureInfo.InvariantCulture;
        var local = rows[0];
        Console.Out.WriteLine($"{o.PromptsPerStep} prompts x G={o.GroupSize} per step in {shards} shards of {o.Cluster.ShardPrompts} prompts; {local.Steps} timed steps per configuration; {Environment.ProcessorCount} cores on this machine, shared by the trainer and every worker");
        Console.Out.WriteLine("seconds per step:");
        Console.Out.WriteLine($"{"workers",-11}{"step",9}{"rollouts",10}{"work",9}{"busiest",9}{"pack",8}{"overhead",10}{"trainer",9}{"weights MB",12}{"speedup",9}");
        foreach (var r in rows)
            Console.Out.WriteLine(string.Create(c, $"{(r.Workers == 0 ? "in-process" : $"{r.Workers}"),-11}{r.StepSeconds,9:0.000}{r.PhaseSeconds,10:0.000}{r.WorkSeconds,9:0.000}{r.BusiestWorkerSeconds,9:0.000}{r.PackSeconds,8:0.000}{r.OverheadSeconds,10:0.000}{r.TrainerSeconds,9:0.000}{(r.Workers == 0 ? "-" : r.WeightsMegabytes.ToString("0.0", c)),12}{local.StepSeconds / r.StepSeconds,8:0.00}x"));
        Console.Out.WriteLine("  rollouts: the phase as the trainer waits for it; work: the shards' sampling and scoring summed; busiest: the busiest worker's share;");
        Console.Out.WriteLine("  overhead: rollouts - pack - busiest (weights transfer, messages, waiting); trainer: the update and bookkeeping; speedup: in-process step / step");
        var model = ScalingModel.Fit(rows);
        Console.Out.WriteLine(string.Create(c,
            $"model (M machines like this one): step(M) = trainer {model.TrainerSeconds:0.000} + pack {model.PackSeconds:0.000} + overhead ({model.CoordinationSeconds:0.000} + {model.PerWorkerSeconds:0.000} x M) + work {model.WorkSeconds:0.000} / shards x ceil(shards / M)"));
        Console.Out.WriteLine($"{"machines",-10}{$"step ({shards} shards)",18}{"speedup",9}{"step (M shards)",18}{"speedup",9}");
        foreach (int m in new[] { 1, 2, 4, 8, 16, 32 })
            Console.Out.WriteLine(string.Create(c, $"{m,-10}{model.StepSeconds(m, shards),18:0.000}{model.Speedup(m, shards),8:0.00}x{model.StepSeconds(m, m),18:0.000}{model.Speedup(m, m),8:0.00}x"));
        Console.Out.WriteLine(string.Create(c, $"bound as M grows (per-worker cost aside): {model.BestSpeedup:0.00}x = in-process step / (trainer + pack + coordination)"));
    }
}
