using System.ComponentModel.DataAnnotations;
using NextFlowRL.Rewards;
using NextFlowRL.Testing;
using Xunit;

namespace MyReward.Tests;

public class RewardTests
{
    private static readonly MyRewardReward Reward = new("my-reward", new MyRewardOptions());

    /// <summary>
    /// The scores of fixed rendered images, compared with RewardTests.ScoresOfRenderedImages.verified.json beside this
    /// file. After changing the reward on purpose: NEXTFLOW_ACCEPT_SNAPSHOTS=1 dotnet test, review the diff, commit.
    /// </summary>
    [Fact]
    public async Task ScoresOfRenderedImages()
    {
        var samples = new[]
        {
            new RewardSample(TestImages.Text("HELLO"), "HELLO"),
            new RewardSample(TestImages.Solid(255, 255, 255), "blank"),
            new RewardSample(TestImages.Ramp(), "ramp"),
        };
        var results = await Reward.ScoreAsync(samples);
        Snapshots.Match(results.Select((r, i) => new { prompt = samples[i].Prompt, r.Score, r.Components, r.Regions }));
    }

    [Fact]
    public async Task ABlankImageHasNoRegion()
    {
        var result = Assert.Single(await Reward.ScoreAsync([new RewardSample(TestImages.Solid(255, 255, 255), "blank")]));
        Assert.True(result.IsValid);
        Assert.Empty(result.Regions);
    }

    [Fact]
    public void OptionsOutsideTheirRangesAreRefused()
    {
        var options = new MyRewardOptions { TargetInk = 2 };
        var problems = new List<ValidationResult>();
        Assert.False(Validator.TryValidateObject(options, new ValidationContext(options), problems, validateAllProperties: true));
        Assert.Contains(problems, p => p.MemberNames.Contains(nameof(MyRewardOptions.TargetInk)));
    }
}
