using System.Globalization;
using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Cluster.Tests;

/// <summary>
/// <c>nextflow-rl train</c> (the main job's algorithm: the bundled tiny-text VAR, the OCR reward, VMR + PANW + MP; small
/// steps) in one process and on real worker silos: the same metrics, also when a silo is killed in the middle of a step.
/// </summary>
public sealed class ClusterRunTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nextflow-cluster-tests", Guid.NewGuid().ToString("N")[..10]);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    /// <summary>The main job, shrunk: 2 prompts x 2 samples per step in 2 shards (one per worker).</summary>
    private static readonly string[] Small =
    [
        "--seed", "7",
        "--set", "Train:Evaluate=false", "--set", "Train:SampleEvery=0", "--set", "Train:CheckpointEvery=0",
        "--set", "Train:PromptsPerStep=2", "--set", "Train:GroupSize=2", "--set", "Train:Threads=1",
        "--set", "Train:Cluster:ShardPrompts=1",
    ];

    private static string[] On(WorkerProcess[] workers) => workers.Length == 0 ? [] :
    [
        .. workers.SelectMany((w, i) => new[] { "--set", $"Train:Cluster:Gateways:{i}={w.Gateway}" }),
        "--set", $"Train:Cluster:MinWorkers={workers.Length}", "--set", "Train:Cluster:ShardTimeoutSeconds=120",
    ];

    [Fact]
    public async Task TwoSilosGiveTheInProcessMetricsAndAKilledSiloCostsARetryNotTheRun()
    {
        var local = await TrainAsync("local", [], FourSteps);
        using var primary = await WorkerProcess.StartAsync(Repo.WorkerDll, null, WorkerProcess.FastMembership);
        using var second = await WorkerProcess.StartAsync(Repo.WorkerDll, primary, WorkerProcess.FastMembership);

        var cluster = await TrainAsync("cluster", primary, second);
        AssertSameRun(local, cluster);
        Assert.All(cluster, row => Assert.Equal(2, row["cluster_workers"])); // one shard on each silo, every step
        Assert.All(cluster, row => Assert.Equal(0, row["cluster_retries"]));

        // Again, with the second silo killed as soon as it starts its shard of step 2.
        int printed = primary.Output.Length;
        var killed = WatchAndKillAsync(second, "step 2:");
        var survived = await TrainAsync("killed", primary, second);
        await killed;
        AssertSameRun(local, survived);
        // The killed silo's shard is retried on the survivor. On a loaded machine the survivor's own shard may be retried
        // too (its call can travel through the killed silo's gateway), so one or two retries, and only on that step.
        Assert.InRange(survived[1]["cluster_retries"], 1, 2);
        Assert.All(survived.Where((_, i) => i != 1), row => Assert.Equal(0, row["cluster_retries"]));
        Assert.All(survived.Skip(2), row => Assert.Equal(1, row["cluster_workers"])); // the rest ran on the survivor
        // The survivor ran its own shard of step 2 and the killed silo's again (its own twice when that call was retried).
        Assert.InRange(primary.Output[printed..].Split('\n').Count(l => l.Contains("step 2: shard of prompts", StringComparison.Ordinal)), 2, 3);
    }

    [Fact]
    public async Task ALoraRunPublishesAdaptersOnlyAndGivesTheInProcessMetrics()
    {
        string[] lora = ["--steps", "2", "--set", "Train:Lora:Rank=4"];
        var local = await TrainAsync("lora-local", [], lora);
        using var primary = await WorkerProcess.StartAsync(Repo.WorkerDll, null);
        using var second = await WorkerProcess.StartAsync(Repo.WorkerDll, primary);
        var cluster = await TrainAsync("lora-cluster", [primary, second], [.. lora, .. On([primary, second])]);
        AssertSameRun(local, cluster);
        // The adapters travel per version (well under the 9.8 MB of full weights); the base went once to each silo.
        Assert.All(cluster, row => Assert.InRange(row["cluster_weights_mb"], 0.001, 1.0));
        foreach (var worker in new[] { primary, second })
        {
            Assert.Single(worker.Output.Split('\n'), l => l.Contains("LoRA adapters and base", StringComparison.Ordinal));
            Assert.Contains("weights version 1 of 'var' loaded", worker.Output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task SilosFindEachOtherAndTheTrainerFindsThemThroughRedisAndScoreItsEvaluations()
    {
        // With a small held-out evaluation before and after: on the cluster, its images are scored by the reward workers.
        string[] run = ["--steps", "2", "--set", "Train:Evaluate=true", "--set", "Train:EvalLimit=2", "--set", "Train:EvalImagesPerPrompt=2"];
        var local = await TrainAsync("local", [], run);
        using var redis = await RedisServer.StartAsync();
        string[] membership = ["--membership", "redis", "--redis", redis.Connection, "--advertise", "127.0.0.1", .. WorkerProcess.FastMembership];
        using var first = await WorkerProcess.StartAsync(Repo.WorkerDll, null, membership);
        using var second = await WorkerProcess.StartAsync(Repo.WorkerDll, null, membership);
        // No gateway list: the trainer reads the live gateways from the membership table.
        var cluster = await TrainAsync("redis", [first, second], [.. run, "--set", $"Train:Cluster:Redis={redis.Connection}",
            "--set", "Train:Cluster:MinWorkers=2", "--set", "Train:Cluster:ShardTimeoutSeconds=120"]);
        AssertSameRun(local, cluster);
        Assert.All(cluster, row => Assert.Equal(2, row["cluster_workers"]));
        using var here = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "local", "summary.json")));
        using var there = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "redis", "summary.json")));
        foreach (var when in new[] { "before", "after" })
            Assert.Equal(here.RootElement.GetProperty(when).GetRawText(), there.RootElement.GetProperty(when).GetRawText());
        Assert.Contains("reward 'ocr': 2 images", first.Output + second.Output, StringComparison.Ordinal); // 4 evaluation images, 2 per worker
    }

    private static async Task WatchAndKillAsync(WorkerProcess worker, string line)
    {
        await worker.WaitForLineAsync(l => l.Contains(line, StringComparison.Ordinal), TimeSpan.FromMinutes(3));
        worker.Kill();
    }

    private Task<List<Dictionary<string, double>>> TrainAsync(string name, params WorkerProcess[] workers) => TrainAsync(name, workers, [.. FourSteps, .. On(workers)]);

    /// <summary>4 steps: 3 prefix passes and a suffix pass.</summary>
    private static readonly string[] FourSteps = ["--steps", "4"];

    /// <summary>Trains with <see cref="Small"/> and <paramref name="extra"/> (later options win); <paramref name="workers"/>' output joins a failure's message.</summary>
    private async Task<List<Dictionary<string, double>>> TrainAsync(string name, WorkerProcess[] workers, params string[] extra)
    {
        var run = Path.Combine(_dir, name);
        var result = await CliRunner.RunAsync(["train", "--out", run, .. Small, .. extra], TimeSpan.FromMinutes(4));
        Assert.True(result.ExitCode == 0, $"{result}{string.Concat(workers.Select(w => $"\n--- worker {w.Gateway}\n{w.Output}"))}");
        return ReadMetrics(Path.Combine(run, "metrics.csv"));
    }

    /// <summary>Every metric of every step equal, except wall times, memory peaks and the cluster's own figures.</summary>
    private static void AssertSameRun(List<Dictionary<string, double>> expected, List<Dictionary<string, double>> actual)
    {
        static bool Compared(string key) => !key.StartsWith("time_", StringComparison.Ordinal) && !key.StartsWith("rss_", StringComparison.Ordinal)
            && !key.StartsWith("cluster_", StringComparison.Ordinal) && key != "images_per_s";
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            var keys = expected[i].Keys.Where(Compared).Order(StringComparer.Ordinal).ToList();
            Assert.Equal(keys, actual[i].Keys.Where(Compared).Order(StringComparer.Ordinal).ToList());
            Assert.Contains("reward_mean", keys);
            foreach (var key in keys)
                Assert.True(expected[i][key].Equals(actual[i][key]), $"step {i + 1}: {key} is {actual[i][key]:R}, in one process {expected[i][key]:R}");
        }
    }

    private static List<Dictionary<string, double>> ReadMetrics(string path)
    {
        var lines = File.ReadAllLines(path);
        var header = lines[0].Split(',');
        return lines.Skip(1).Select(line => line.Split(',')
                .Select((cell, i) => (header[i], cell))
                .Where(x => x.cell.Length > 0)
                .ToDictionary(x => x.Item1, x => double.Parse(x.cell, CultureInfo.InvariantCulture)))
            .ToList();
    }
}
