using Xunit;
using NextFlowRL.Runs;

namespace NextFlowRL.Training.Tests;

/// <summary>The code defaults of TrainerOptions are the measured main-job recipe (the CLI's appsettings.json adds only paths and names).</summary>
public sealed class DefaultsTests
{
    [Fact]
    public void TheCodeDefaultsAreTheMainJobsRecipe()
    {
        var o = new TrainerOptions();
        Assert.Equal((40, 4, 8, 1e-4, 0.1, 0.7, 1L), (o.Steps, o.PromptsPerStep, o.GroupSize, o.LearningRate, o.KlBeta, o.Alpha, o.Seed));
        Assert.Equal((0.5, 3, 1.0, 0.6), (o.Rollout.CfgScale, o.Rollout.TopK, o.Rollout.TopP, o.Rollout.Temperature));
        Assert.Equal((AlternationSchedule.Fine, 2, 1.0, 3), (o.Vmr.Schedule, o.Vmr.Continuations, o.Vmr.Eta, o.Vmr.PrefixUpdatesPerSuffix));
        Assert.True(o.Mask.Enabled && o.Mask.Dilate);
    }

    [Fact]
    public void CurvesNameTheRunsRewardsAndNoRewardOfTheEngine()
    {
        var generic = TrainingRun.PlottedMetrics(new TrainerOptions { Rewards = [new RewardSpec { Name = "clip" }] });
        Assert.Equal(["reward_mean", "reward_std", "clip/score", "kl", "clip_frac", "grad_norm", "zero_std_ratio", "time_step"], generic);
        var ocr = TrainingRun.PlottedMetrics(new TrainerOptions { Rewards = [new RewardSpec { Name = "ocr" }], PlotMetrics = ["ocr/word_acc", "ocr/ned", "kl"] });
        Assert.Equal(["reward_mean", "reward_std", "ocr/score", "ocr/word_acc", "ocr/ned", "kl", "clip_frac", "grad_norm", "zero_std_ratio", "time_step"], ocr);
    }
}
