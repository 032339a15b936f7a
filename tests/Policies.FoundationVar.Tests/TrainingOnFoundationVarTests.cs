using Microsoft.Extensions.Logging.Abstractions;
using NextFlowRL.Rewards.ImageStats;
using NextFlowRL.Training;
using Xunit;

namespace NextFlowRL.Policies.FoundationVar.Tests;

/// <summary>The trainer on a policy of the shared sampler: the parity monitor sees the real sampler/trainer mismatch.</summary>
[Collection("torch")]
public sealed class TrainingOnFoundationVarTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nf-fvar-train-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    [Theory]
    [InlineData(LossDistribution.Conditional)]
    [InlineData(LossDistribution.Guided)]
    public void TheParityMonitorComparesTheSamplersLogProbsWithTheTeacherForcedOnes(LossDistribution distribution)
    {
        var prompts = Path.Combine(_dir, "p.jsonl");
        File.WriteAllLines(prompts, ["{\"prompt\": \"golden retriever\"}", "{\"prompt\": \"volcano\"}"]);
        var o = new TrainerOptions
        {
            Policy = "foundation-var", TrainPrompts = prompts, Rewards = [new RewardSpec { Name = "brightness" }],
            Steps = 1, PromptsPerStep = 2, GroupSize = 2, KlBeta = 0, LossDistribution = distribution,
        };
        o.Vmr.Schedule = AlternationSchedule.Joint;
        o.Rollout.CfgScale = 1.5;
        o.Rollout.TopK = 8;
        o.Rollout.Temperature = 0.8;
        using var policy = Fixtures.Load("plain");
        var reward = new ImageStatsReward("brightness", new ImageStatsRewardOptions { Statistic = ImageStatistic.Brightness, Target = 1.0 });
        using var trainer = new GrpoTrainer(o, policy, null, new RewardEnsemble([(o.Rewards[0], reward)], NullLogger.Instance), PromptSet.Load(prompts), NullLogger.Instance);
        var m = trainer.RunStep().Metrics;
        Assert.InRange(m["parity_max_dev"], 0, 1e-4); // the loss scores exactly what the sampler drew from (float noise only)
        Assert.InRange(m["parity_mean_dev"], 0, m["parity_max_dev"]);
    }
}
