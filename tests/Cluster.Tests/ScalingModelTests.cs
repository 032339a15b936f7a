using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Cluster.Tests;

/// <summary>The speedup model of <c>bench cluster</c>, and the command itself on a small job.</summary>
public class ScalingModelTests
{
    private static ClusterBenchmarkRow Row(int workers, double step, double phase, double work, double overhead) =>
        new(workers, 2, step, phase, work, work / Math.Max(workers, 1), 0.05, overhead, 9.8);

    [Fact]
    public void TheModelIsFittedToTheMeasuredRows()
    {
        // In-process 20 s (12 s rollouts); overheads 0.3, 0.5, 0.7 s with 1, 2, 3 workers: a = 0.1, b = 0.2.
        var rows = new[] { Row(0, 20, 12, 12, 0), Row(1, 20.35, 12.35, 12, 0.3), Row(2, 14.5, 6.5, 12, 0.5), Row(3, 12.7, 4.7, 12, 0.7) };
        var model = ScalingModel.Fit(rows);
        Assert.Equal(8, model.TrainerSeconds, 6);
        Assert.Equal(0.1, model.CoordinationSeconds, 6);
        Assert.Equal(0.2, model.PerWorkerSeconds, 6);
        Assert.Equal(12, model.WorkSeconds, 6);
        // 4 shards on 2 machines: 2 rounds of 3 s.
        Assert.Equal(8 + 0.05 + 0.1 + 0.4 + 6, model.StepSeconds(2, 4), 6);
        // 4 shards on 8 machines: one round, but 8 silos' worth of overhead.
        Assert.Equal(8 + 0.05 + 0.1 + 1.6 + 3, model.StepSeconds(8, 4), 6);
        Assert.Equal(20 / model.StepSeconds(4, 4), model.Speedup(4, 4), 9);
        Assert.Equal(20 / (8 + 0.05 + 0.1), model.BestSpeedup, 9);
    }

    [Fact]
    public void NoisyOverheadsDoNotGiveANegativeCostPerWorker()
    {
        var model = ScalingModel.Fit([Row(0, 20, 12, 12, 0), Row(1, 20, 12, 12, 0.4), Row(2, 14, 6, 12, 0.2)]);
        Assert.Equal(0, model.PerWorkerSeconds);
        Assert.Equal(0.3, model.CoordinationSeconds, 6);
        Assert.Throws<ArgumentException>(() => ScalingModel.Fit([Row(1, 20, 12, 12, 0.4)]));
        Assert.Throws<ArgumentException>(() => ScalingModel.Fit([Row(0, 20, 12, 12, 0)]));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.StepSeconds(0, 4));
    }

    [Fact]
    public async Task BenchClusterPrintsItsTableAndTheModel()
    {
        var result = await CliRunner.RunAsync(["bench", "cluster", "--workers", "1,2", "--steps", "2",
            "--set", "Train:PromptsPerStep=2", "--set", "Train:GroupSize=2", "--set", "Train:Threads=1"], TimeSpan.FromMinutes(5));
        Assert.True(result.ExitCode == 0, result.ToString());
        var lines = result.Stdout.Split('\n');
        Assert.Contains("2 prompts x G=2 per step in 2 shards of 1 prompts", result.Stdout, StringComparison.Ordinal);
        Assert.Contains(lines, l => l.StartsWith("in-process ", StringComparison.Ordinal));
        static string[] Cells(string line) => line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var two = lines.Single(l => l.StartsWith("2 ", StringComparison.Ordinal) && Cells(l).Length == 10); // the measured row
        Assert.Single(lines, l => l.StartsWith("2 ", StringComparison.Ordinal) && Cells(l).Length == 5); // the model's row
        Assert.Contains("9.8", two, StringComparison.Ordinal); // tiny-text's weights, sent per version
        Assert.Contains("model (M machines like this one): step(M) = trainer", result.Stdout, StringComparison.Ordinal);
        Assert.Contains(lines, l => l.StartsWith("32 ", StringComparison.Ordinal));

        var bad = await CliRunner.RunAsync("bench", "cluster", "--workers", "0,x");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--workers: '0' is not a worker count from 1 to 16", bad.Stderr, StringComparison.Ordinal);
    }
}
