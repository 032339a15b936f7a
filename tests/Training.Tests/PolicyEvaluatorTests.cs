using NextFlowRL.Policies;
using NextFlowRL.Rewards;
using NextFlowRL.Rewards.ImageStats;
using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Training.Tests;

public sealed class PolicyEvaluatorTests
{
    [Fact]
    public async Task BinPartsSharedBySeveralBinsAreSummarizedAsFacets()
    {
        using var policy = new TinyNextScalePolicy(seed: 1);
        var reward = new ImageStatsReward("brightness", new ImageStatsRewardOptions { Statistic = ImageStatistic.Brightness, Target = 1.0 });
        string[] bins = ["1region-seen", "1region-heldout", "2region-heldout", "2region-heldout", "3region-seen"];
        var prompts = bins.Select((b, i) => new PromptRecord($"prompt {i}", new Dictionary<string, string> { ["bin"] = b })).ToList();
        var report = await PolicyEvaluator.EvaluateAsync(policy, reward, prompts, new SamplingOptions { Seed = 3 }, batchSize: 2);
        var m = report.Metrics;
        Assert.Equal(3, m["facet/heldout/count"]);
        Assert.Equal(2, m["facet/seen/count"]);
        Assert.Equal(2, m["facet/1region/count"]);
        Assert.False(m.ContainsKey("facet/2region/count")); // one bin only: the bin's own metrics say it all
        Assert.False(m.ContainsKey("facet/3region/count"));
        double expected = (m["bin/1region-heldout/mean_score"] + 2 * m["bin/2region-heldout/mean_score"]) / 3;
        Assert.Equal(expected, m["facet/heldout/mean_score"], 9);
    }

    [Fact]
    public void ScoredSetsWithoutBinsGetOnlySetMetricsAndMismatchedBinsAreRejected()
    {
        var reward = new ImageStatsReward("brightness", new ImageStatsRewardOptions { Statistic = ImageStatistic.Brightness, Target = 1.0 });
        RewardResult[] results = [RewardResult.Of(0.5), RewardResult.Of(0.25), RewardResult.Of(1.0)];
        var m = RewardMetrics.Summarize(reward, results, [null, "a-x", "a-x"]);
        Assert.Equal(3, m["count"]);
        Assert.Equal(2, m["bin/a-x/count"]);
        Assert.Equal(0.625, m["bin/a-x/mean_score"], 9);
        Assert.DoesNotContain(m.Keys, k => k.StartsWith("facet/", StringComparison.Ordinal));
        Assert.DoesNotContain(m.Keys, k => k.StartsWith("bin/", StringComparison.Ordinal) && !k.StartsWith("bin/a-x/", StringComparison.Ordinal));
        Assert.Throws<ArgumentException>(() => RewardMetrics.Summarize(reward, results, ["a"]));
    }
}
