using Microsoft.Extensions.Logging.Abstractions;
using NextFlowRL.Policies;
using NextFlowRL.Rewards;
using NextFlowRL.Testing;
using NextFlowRL.Training.Rollouts;
using Xunit;

namespace NextFlowRL.Training.Tests;

/// <summary>Rollouts split into shards: every draw depends on (seed, step, prompt, sample), not on the shard layout.</summary>
public class RolloutShardTests
{
    /// <summary>Mean brightness of an image: a real, deterministic per-image score.</summary>
    private sealed class Brightness : IRewardModel
    {
        public string Name => "brightness";

        public Task<IReadOnlyList<RewardResult>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellationToken = default) =>
            Task.FromResult<IReadOnlyList<RewardResult>>(samples.Select(s =>
            {
                var px = s.Image.Pixels;
                double sum = 0;
                foreach (var b in px) sum += b;
                return RewardResult.Of(sum / px.Length / 255);
            }).ToList());
    }

    private static RolloutRequest Request(int step = 3) => new()
    {
        Step = step,
        StepSeed = Seeds.Mix(11, step),
        Prompts = Enumerable.Range(0, 3).Select(i => new PromptRecord($"prompt {i}", RewardSample.EmptyMetadata)).ToList(),
        GroupSize = 2,
        Continuations = 3,
        Split = 1,
        Sampling = new SamplingOptions { CfgScale = 1, TopK = 0, Temperature = 1 },
    };

    [Fact]
    public void ShardsOfOnePromptGiveTheWholeBatchsTokensAndScores()
    {
        using var policy = new TinyNextScalePolicy(seed: 2);
        var rewards = new RewardEnsemble([(new RewardSpec { Name = "brightness" }, new Brightness())], NullLogger.Instance);
        using var whole = new LocalRollouts(rewards, shardPrompts: 0).Run(Request(), policy, default);
        using var sharded = new LocalRollouts(rewards, shardPrompts: 1).Run(Request(), policy, default);
        Assert.Equal(3 * 2, whole.First.Count);
        Assert.Equal(3 * 2 * 3, whole.All.Count);
        for (int k = 0; k < whole.All.Length; k++)
        {
            Assert.True(whole.First.Grids[k].eq(sharded.First.Grids[k]).all().item<bool>(), $"first trajectories differ at scale {k}");
            Assert.True(whole.All.Grids[k].eq(sharded.All.Grids[k]).all().item<bool>(), $"continuations differ at scale {k}");
        }
        Assert.Equal(whole.Scores.PerReward["brightness"].Select(r => r.Score), sharded.Scores.PerReward["brightness"].Select(r => r.Score));
        // The first of each K rows is the first trajectory itself; the continuations keep its prefix.
        Assert.True(whole.All.Grids[0].index_select(0, TorchSharp.torch.tensor(new long[] { 0, 3, 6, 9, 12, 15 })).eq(whole.First.Grids[0]).all().item<bool>());
        Assert.True(whole.All.Grids[0].narrow(0, 0, 3).eq(whole.First.Grids[0].narrow(0, 0, 1)).all().item<bool>());
    }

    [Fact]
    public void StepsAndRowsDrawDifferentStreams()
    {
        using var policy = new TinyNextScalePolicy(seed: 2);
        var rewards = new RewardEnsemble([(new RewardSpec { Name = "brightness" }, new Brightness())], NullLogger.Instance);
        using var a = new LocalRollouts(rewards, 0).Run(Request(step: 3), policy, default);
        using var b = new LocalRollouts(rewards, 0).Run(Request(step: 4), policy, default);
        var last = a.First.Grids[^1];
        Assert.False(last.eq(b.First.Grids[^1]).all().item<bool>(), "two steps sampled the same tokens");
        Assert.False(last.narrow(0, 0, 1).eq(last.narrow(0, 1, 1)).all().item<bool>(), "two samples of one prompt drew the same tokens");
        Assert.NotEqual(Request().RowSeed(0, 0, 1), Request().RowSeed(0, 1, 0));
    }

    [Fact]
    public void LayoutCoversEveryPromptOnce()
    {
        Assert.Equal([(0, 4)], RolloutShard.Layout(4, 0));
        Assert.Equal([(0, 3), (3, 1)], RolloutShard.Layout(4, 3));
        Assert.Equal([(0, 4)], RolloutShard.Layout(4, 9));
        Assert.Equal(Enumerable.Range(0, 5).Select(i => (i, 1)), RolloutShard.Layout(5, 1));
    }

    [Fact]
    public void RowSeedsOfTheWrongLengthAreRefused()
    {
        using var policy = new TinyNextScalePolicy(seed: 2);
        var e = Assert.Throws<ArgumentException>(() => policy.Sample(["a", "b"], new SamplingOptions { RowSeeds = [1] }));
        Assert.Contains("one seed per row", e.Message);
    }
}
