using Microsoft.Extensions.Logging.Abstractions;
using NextFlowRL.Rewards;
using NextFlowRL.Rewards.ImageStats;
using NextFlowRL.Runs;
using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Training.Tests;

/// <summary><see cref="TrainBenchmark"/>: the figures <c>bench train</c> prints beside its goals.</summary>
[Collection(TorchCollection.Name)]
public sealed class TrainBenchmarkTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nextflow-bench-tests", Guid.NewGuid().ToString("N")[..10]);

    public TrainBenchmarkTests()
    {
        Directory.CreateDirectory(_dir);
        File.WriteAllLines(Path.Combine(_dir, "prompts.jsonl"), Enumerable.Range(0, 4).Select(i => $$"""{"prompt": "square {{i}}"}"""));
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    [Fact]
    public void TheSlopeIsTheLeastSquaresFit()
    {
        Assert.Equal(2.0, TrainBenchmark.Slope([(0, 1), (1, 3), (2, 5)]), 12);
        Assert.Equal(0.5, TrainBenchmark.Slope([(0, 0), (1, 1), (2, 0), (3, 2)]) , 12);
        Assert.Equal(0, TrainBenchmark.Slope([(4, 9)]));
        Assert.Equal(0, TrainBenchmark.Slope([(1, 2), (1, 5)])); // no spread in x
    }

    [Fact]
    public async Task TheReportCountsUpdatesPerImageRewardOverlapAndThePeak()
    {
        var o = new TrainerOptions
        {
            Policy = "tiny", TrainPrompts = Path.Combine(_dir, "prompts.jsonl"), Rewards = [new RewardSpec { Name = "brightness" }],
            Steps = 3, PromptsPerStep = 2, GroupSize = 2, KlBeta = 0, Seed = 1,
        };
        o.Vmr.Schedule = AlternationSchedule.Joint;
        o.Rollout.CfgScale = 1;
        using var policy = new TinyNextScalePolicy(seed: 3);
        IRewardModel reward = new ImageStatsReward("brightness", new ImageStatsRewardOptions { Statistic = ImageStatistic.Brightness, Target = 1.0 });
        var report = await TrainBenchmark.RunAsync(o, policy, [(o.Rewards[0], reward)], 3, NullLogger.Instance);
        Assert.Equal(2, report.Steps);
        Assert.Equal(1.0 / 4, report.UpdatesPerImage, 12); // joint: one update per pass of 2 prompts x 2 images
        Assert.InRange(report.RewardOverlap, 0, 1);
        Assert.True(report.RewardWaitSeconds >= 0 && report.RewardSeconds > 0);
        Assert.True(report.PeakRssBytes >= report.RssEndBytes / 2 && report.PeakRssBytes > 0);
        Assert.True(double.IsFinite(report.RssSlopeBytesPerStep));
        Assert.True(report.ModelShapeFlopsPerSecond > 0 && report.ModelShapeFraction > 0);
    }

    [Fact]
    public void LinearShapesAreTimedAndBadShapesRefused()
    {
        double flops = NextFlowRL.Torch.Benchmarks.MatmulPeak.Linear([(16, 32), (32, 16), (16, 32)], rows: 64, repeats: 1);
        Assert.True(double.IsFinite(flops) && flops > 0);
        Assert.Throws<ArgumentException>(() => NextFlowRL.Torch.Benchmarks.MatmulPeak.Linear([], 8));
        Assert.Throws<ArgumentException>(() => NextFlowRL.Torch.Benchmarks.MatmulPeak.Linear([(0, 4)], 8));
        Assert.Throws<ArgumentException>(() => NextFlowRL.Torch.Benchmarks.MatmulPeak.Linear([(4, 4)], 0));
    }
}
