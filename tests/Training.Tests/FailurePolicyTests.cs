using Microsoft.Extensions.Logging.Abstractions;
using NextFlowRL.Imaging;
using NextFlowRL.Rewards;
using Xunit;

namespace NextFlowRL.Training.Tests;

/// <summary>Failure injection: a reward that throws, hangs, returns NaN or the wrong count.</summary>
public class FailurePolicyTests
{
    /// <summary>A test double that fails in a chosen way for its first <c>failures</c> calls, then scores 0.5.</summary>
    private sealed class FaultyReward(string mode, int failures = int.MaxValue) : IRewardModel
    {
        public int Calls { get; private set; }

        public string Name => "faulty";

        public async Task<IReadOnlyList<RewardResult>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellationToken = default)
        {
            bool fail = Calls++ < failures;
            if (fail && mode == "throw") throw new InvalidOperationException("backend unavailable");
            if (fail && mode == "hang") await Task.Delay(Timeout.Infinite, CancellationToken.None);
            if (fail && mode == "count") return [RewardResult.Of(0.5)];
            return samples.Select((_, i) => fail && mode == "nan" && i == 1 ? RewardResult.Of(double.NaN) : RewardResult.Of(0.5 + 0.1 * i)).ToList();
        }
    }

    private static readonly IReadOnlyList<RewardSample> Samples =
        Enumerable.Range(0, 3).Select(i => new RewardSample(RgbImage.Filled(2, 2, 0, 0, 0), $"p{i}")).ToList();

    private static RewardEnsemble Ensemble(FaultyReward reward, RewardFailurePolicy policy, int retries = 1, double timeout = 5) =>
        new([(new RewardSpec { Name = "faulty", OnFailure = policy, Retries = retries, TimeoutSeconds = timeout }, reward)], NullLogger.Instance);

    [Theory]
    [InlineData("throw", "backend unavailable")]
    [InlineData("count", "returned 1 results for 3 samples")]
    [InlineData("nan", "non-finite score")]
    public async Task StopNamesTheReward(string mode, string expected)
    {
        var ex = await Assert.ThrowsAsync<RewardFailureException>(() => Ensemble(new FaultyReward(mode), RewardFailurePolicy.Stop).ScoreAsync(Samples, default));
        Assert.Contains("reward 'faulty'", ex.Message);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public async Task TimeoutIsAFailureAndNeverHangs()
    {
        var started = DateTime.UtcNow;
        var ex = await Assert.ThrowsAsync<RewardFailureException>(() => Ensemble(new FaultyReward("hang"), RewardFailurePolicy.Stop, timeout: 0.3).ScoreAsync(Samples, default));
        Assert.Contains("timed out", ex.Message);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task RetryRecoversFromATransientFailure()
    {
        var reward = new FaultyReward("throw", failures: 1);
        var scores = await Ensemble(reward, RewardFailurePolicy.Retry, retries: 2).ScoreAsync(Samples, default);
        Assert.Equal(1, scores.Retries);
        Assert.Equal(2, reward.Calls);
        Assert.All(scores.PerReward["faulty"], r => Assert.True(r.IsValid));
    }

    [Fact]
    public async Task RetryGivesUpAfterItsBudget()
    {
        var ex = await Assert.ThrowsAsync<RewardFailureException>(() => Ensemble(new FaultyReward("throw"), RewardFailurePolicy.Retry, retries: 1).ScoreAsync(Samples, default));
        Assert.Contains("after 1 retries", ex.Message);
    }

    [Fact]
    public async Task DropRemovesFailedSamplesAndNoNanReachesTheCombinedReward()
    {
        var ensemble = Ensemble(new FaultyReward("nan"), RewardFailurePolicy.Drop);
        var scores = await ensemble.ScoreAsync(Samples, default);
        Assert.Equal([false, true, false], scores.Dropped);
        var combined = ensemble.Combine(scores, RewardAggregation.WeightedSum, [[0, 1, 2]], 1e-4);
        Assert.True(double.IsNaN(combined[1]));
        var (adv, _) = GrpoMath.GroupAdvantages(combined, 1e-4);
        Assert.All(adv, a => Assert.True(double.IsFinite(a)));
        Assert.Equal(0, adv[1]);

        var whole = Ensemble(new FaultyReward("throw"), RewardFailurePolicy.Drop);
        Assert.All((await whole.ScoreAsync(Samples, default)).Dropped, Assert.True);
    }

    [Fact]
    public async Task WeightedSumAndNormalizeThenSum()
    {
        var a = new FaultyReward("none", failures: 0);
        var ensemble = new RewardEnsemble([
            (new RewardSpec { Name = "a", Weight = 2 }, a),
            (new RewardSpec { Name = "b", Weight = -1 }, new FaultyReward("none", failures: 0)),
        ], NullLogger.Instance);
        var scores = await ensemble.ScoreAsync(Samples, default);
        var sum = ensemble.Combine(scores, RewardAggregation.WeightedSum, [[0, 1, 2]], 1e-4);
        Assert.Equal([0.5, 0.6, 0.7], sum.Select(x => Math.Round(x, 9)));
        var gdpo = ensemble.Combine(scores, RewardAggregation.NormalizeThenSum, [[0, 1, 2]], 0);
        double z = 0.1 / Math.Sqrt(2.0 / 3 * 0.01);
        Assert.Equal([-z, 0, z], gdpo.Select(x => Math.Round(x, 9)), new Close());
    }

    private sealed class Close : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) < 1e-6;
        public int GetHashCode(double obj) => 0;
    }
}
