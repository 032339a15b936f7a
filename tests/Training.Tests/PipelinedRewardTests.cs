using Microsoft.Extensions.Logging.Abstractions;
using NextFlowRL.Plugins;
using NextFlowRL.Policies;
using NextFlowRL.Rewards;
using NextFlowRL.Rewards.ImageStats;
using NextFlowRL.Testing;
using NextFlowRL.Training.Rollouts;
using Xunit;

namespace NextFlowRL.Training.Tests;

/// <summary>
/// Rewards scored while the policy works on (<see cref="RolloutOptions.PipelineRewards"/>): the same results as scoring
/// after sampling, scores that stay with their images, scoring that really runs beside sampling, one reward call at a time.
/// </summary>
[Collection(TorchCollection.Name)]
public sealed class PipelinedRewardTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nextflow-pipeline-tests", Guid.NewGuid().ToString("N")[..10]);

    public PipelinedRewardTests()
    {
        Directory.CreateDirectory(_dir);
        File.WriteAllLines(PromptsPath, Enumerable.Range(0, 6).Select(i => $$"""{"prompt": "a bright square number {{i}}"}"""));
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private string PromptsPath => Path.Combine(_dir, "prompts.jsonl");

    private static IRewardModel Brightness() => new ImageStatsReward("brightness", new ImageStatsRewardOptions { Statistic = ImageStatistic.Brightness, Target = 1.0 });

    private static RolloutRequest Request(bool pipeline) => new()
    {
        Step = 2,
        StepSeed = Seeds.Mix(5, 2),
        Prompts = Enumerable.Range(0, 3).Select(i => new PromptRecord($"prompt {i}", RewardSample.EmptyMetadata)).ToList(),
        GroupSize = 2,
        Continuations = 3,
        Split = 1,
        Sampling = new SamplingOptions { CfgScale = 1, TopK = 0, Temperature = 1 },
        PipelineRewards = pipeline,
    };

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public async Task PipelinedRolloutsGiveTheSequentialTokensImagesAndScoresEachWithItsImage(int shardPrompts)
    {
        using var policy = new TinyNextScalePolicy(seed: 2);
        var reward = Brightness();
        var rewards = new RewardEnsemble([(new RewardSpec { Name = "brightness" }, reward)], NullLogger.Instance);
        using var sequential = new LocalRollouts(rewards, shardPrompts).Run(Request(pipeline: false), policy, default);
        using var pipelined = new LocalRollouts(rewards, shardPrompts).Run(Request(pipeline: true), policy, default);
        Assert.True(sequential.Scoring.IsCompleted); // scored before Run returned
        for (int k = 0; k < sequential.All.Length; k++)
            Assert.True(sequential.All.Grids[k].eq(pipelined.All.Grids[k]).all().item<bool>(), $"trajectories differ at scale {k}");
        Assert.Equal(sequential.Images.Select(i => i.Pixels.ToArray()), pipelined.Images.Select(i => i.Pixels.ToArray()));
        var scores = pipelined.Scores.PerReward["brightness"].Select(r => r.Score).ToList();
        Assert.Equal(sequential.Scores.PerReward["brightness"].Select(r => r.Score), scores);
        // Each score belongs to its row's image (the first trajectories and the continuations are scored apart, then interleaved).
        var direct = await reward.ScoreAsync(pipelined.Images.Select(i => new RewardSample(i, "p", RewardSample.EmptyMetadata)).ToList());
        Assert.Equal(direct.Select(r => r.Score), scores);
        Assert.True(scores.Distinct().Count() > 3, "the images should differ in brightness for this check to mean something");
        Assert.Equal(3 * 2 * 3, pipelined.Scores.Dropped.Length);
    }

    /// <summary>A reward whose first call waits (up to a limit) for the policy to start continuing, and records whether it did.</summary>
    private sealed class WaitsForContinuations(ManualResetEventSlim continuing) : IRewardModel
    {
        private int _calls;

        public string Name => "waits";

        public bool SawContinuationsStart { get; private set; }

        public Task<IReadOnlyList<RewardResult>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellationToken = default)
        {
            if (Interlocked.Increment(ref _calls) == 1) SawContinuationsStart = continuing.Wait(TimeSpan.FromSeconds(3), cancellationToken);
            return Task.FromResult<IReadOnlyList<RewardResult>>(samples.Select(_ => RewardResult.Of(1)).ToList());
        }
    }

    private sealed class SignalsOnContinue(INextScalePolicy inner, ManualResetEventSlim continuing) : DelegatingPolicy(inner)
    {
        public override TokenTrajectories Continue(TokenTrajectories prefixes, SamplingOptions options, CancellationToken cancellationToken = default)
        {
            continuing.Set();
            return base.Continue(prefixes, options, cancellationToken);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TheFirstTrajectoriesAreScoredWhileTheirContinuationsSampleOnlyWhenPipelined(bool pipeline)
    {
        using var continuing = new ManualResetEventSlim();
        using var tiny = new TinyNextScalePolicy(seed: 2);
        var policy = new SignalsOnContinue(tiny, continuing);
        var reward = new WaitsForContinuations(continuing);
        var rewards = new RewardEnsemble([(new RewardSpec { Name = "waits" }, reward)], NullLogger.Instance);
        using var batch = RolloutShard.Run(policy, rewards, Request(pipeline), 0, 3, default);
        Assert.Equal(18, batch.Scores.Dropped.Length);
        Assert.Equal(pipeline, reward.SawContinuationsStart);
        // Sequential: the first scoring blocked the shard for its whole wait; pipelined it was hidden behind sampling.
        if (!pipeline) Assert.True(batch.RewardWaitSeconds >= 2.5, $"waited {batch.RewardWaitSeconds:0.00} s");
    }

    [Fact]
    public async Task TheQueueRunsJobsOneAtATimeInOrderAndAFailureReachesTheJobsAfterIt()
    {
        var queue = new ScoringQueue(overlap: true);
        int running = 0, most = 0;
        var order = new List<int>();
        var jobs = Enumerable.Range(0, 6).Select(i => queue.Add(async () =>
        {
            int now = Interlocked.Increment(ref running);
            lock (order) { most = Math.Max(most, now); order.Add(i); }
            await Task.Delay(10);
            Interlocked.Decrement(ref running);
            if (i == 3) throw new InvalidOperationException("job 3 failed");
            return i * 10;
        })).ToList();
        Assert.Equal(20, (await jobs[2]).Value);
        Assert.True((await jobs[2]).Seconds > 0);
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => jobs[5]);
        Assert.Equal("job 3 failed", failure.Message);
        Assert.Equal([0, 1, 2, 3], order); // 4 and 5 never ran
        Assert.Equal(1, most);

        var sequential = new ScoringQueue(overlap: false);
        var done = sequential.Add(async () => { await Task.Delay(20); return 1; });
        Assert.True(done.IsCompleted);
        Assert.True(sequential.BlockedSeconds > 0);
        var failed = sequential.Add<int>(() => throw new InvalidDataException("bad"));
        Assert.True(failed.IsFaulted); // the failure stays in the task, thrown where its result is read
    }

    [Fact]
    public void EnsembleScoresConcatenateAndReorderLikeTrajectories()
    {
        EnsembleScores Of(params double[] v) => new()
        {
            PerReward = new Dictionary<string, IReadOnlyList<RewardResult>> { ["r"] = v.Select(RewardResult.Of).ToList() },
            Dropped = v.Select(x => x < 0).ToArray(),
            Retries = 1,
        };
        var joined = EnsembleScores.Concat([Of(1, 2), Of(-3)]);
        Assert.Equal([1.0, 2, -3], joined.PerReward["r"].Select(r => r.Score));
        Assert.Equal([false, false, true], joined.Dropped);
        Assert.Equal(2, joined.Retries);
        var picked = joined.Select([2, 0]);
        Assert.Equal([-3.0, 1], picked.PerReward["r"].Select(r => r.Score));
        Assert.Equal([true, false], picked.Dropped);
        Assert.Throws<ArgumentOutOfRangeException>(() => joined.Select([3]));
        var other = new EnsembleScores { PerReward = new Dictionary<string, IReadOnlyList<RewardResult>> { ["s"] = [RewardResult.Of(1)] }, Dropped = [false] };
        Assert.Throws<ArgumentException>(() => EnsembleScores.Concat([Of(1), other]));
    }

    private TrainerOptions Options(bool pipeline)
    {
        var o = new TrainerOptions
        {
            Policy = "tiny", TrainPrompts = PromptsPath, EvalPrompts = PromptsPath, Rewards = [new RewardSpec { Name = "brightness" }],
            Steps = 3, PromptsPerStep = 2, GroupSize = 4, MicroBatch = 5, LearningRate = 3e-2, KlBeta = 0.05, Alpha = 0.7, Seed = 3,
        };
        o.Vmr.Continuations = 2;
        o.Vmr.SplitScale = 1;
        o.Vmr.Schedule = AlternationSchedule.Fine;
        o.Mask.Enabled = false;
        o.Rollout.CfgScale = 1.0;
        o.Rollout.TopK = 0;
        o.Rollout.Temperature = 1.0;
        o.Rollout.PipelineRewards = pipeline;
        return o;
    }

    [Fact]
    public void APipelinedRunGivesTheSequentialRunsMetricsStepForStep()
    {
        List<IReadOnlyDictionary<string, double>> Run(bool pipeline)
        {
            var o = Options(pipeline);
            using var policy = new TinyNextScalePolicy(seed: 6);
            var ensemble = new RewardEnsemble([(o.Rewards[0], Brightness())], NullLogger.Instance);
            using var trainer = new GrpoTrainer(o, policy, policy.CreateFrozenCopy(), ensemble, PromptSet.Load(PromptsPath), NullLogger.Instance);
            // Steps 1-3 of the fine schedule: prefix-only passes and one with a suffix update too (reference and old log-probs taken early).
            return Enumerable.Range(0, o.Steps).Select(_ => trainer.RunStep().Metrics).ToList();
        }
        var a = Run(pipeline: false);
        var b = Run(pipeline: true);
        Assert.Contains(a, m => m["updates"] == 2);
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal(a[i].Keys.Order(), b[i].Keys.Order());
            foreach (var key in a[i].Keys.Where(k => !GrpoTrainer.IsMachineMetric(k)))
                Assert.True(a[i][key].Equals(b[i][key]), $"step {i + 1} {key}: {a[i][key]} vs {b[i][key]}");
            Assert.Equal(0, a[i]["time_reward_overlap"]);
            Assert.InRange(b[i]["time_reward_overlap"], 0, 1);
            Assert.True(a[i]["kl"] >= 0 && b[i].ContainsKey("time_reward_wait"));
        }
    }

    private sealed class Counting : IProgressTask
    {
        public List<int> Advances { get; } = [];

        public void Advance(int count = 1, string? detail = null)
        {
            lock (Advances) Advances.Add(count);
        }

        public void Dispose() { }
    }

    [Fact]
    public async Task APipelinedEvaluationScoresTheSameImagesAndCountsEveryOne()
    {
        using var policy = new TinyNextScalePolicy(seed: 1);
        var prompts = Enumerable.Range(0, 5).Select(i => new PromptRecord($"prompt {i}", RewardSample.EmptyMetadata)).ToList();
        IRewardModel[] readers = [Brightness(), new ImageStatsReward("contrast", new ImageStatsRewardOptions { Statistic = ImageStatistic.Contrast, Target = 1.0 })];
        var sampling = new SamplingOptions { Seed = 4 };
        var bar = new Counting();
        var pipelined = await PolicyEvaluator.EvaluateAsync(policy, readers, prompts, sampling, imagesPerPrompt: 2, batchSize: 3, progress: new CountProgress(bar));
        var sequential = await PolicyEvaluator.EvaluateAsync(policy, readers, prompts, sampling, imagesPerPrompt: 2, batchSize: 3, pipelineRewards: false);
        for (int r = 0; r < readers.Length; r++)
        {
            Assert.Equal(sequential[r].Results.Select(x => x.Score), pipelined[r].Results.Select(x => x.Score));
            Assert.Equal(sequential[r].Metrics, pipelined[r].Metrics);
        }
        Assert.Equal(sequential[0].Images.Select(i => i.Pixels.ToArray()), pipelined[0].Images.Select(i => i.Pixels.ToArray()));
        Assert.Equal(10, bar.Advances.Sum());
        Assert.Equal([3, 3, 3, 1], bar.Advances);
    }
}
