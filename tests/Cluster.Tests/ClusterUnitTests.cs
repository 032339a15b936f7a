using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using NextFlowRL.Policies;
using NextFlowRL.Rewards;
using NextFlowRL.Testing;
using NextFlowRL.Training;
using NextFlowRL.Training.Rollouts;
using NextFlowRL.Worker;
using Orleans.Serialization;
using Xunit;

namespace NextFlowRL.Cluster.Tests;

/// <summary>The cluster's parts that need no silo: messages on the wire, placement, options, the join check.</summary>
public class ClusterUnitTests
{
    /// <summary>Mean brightness of an image.</summary>
    private sealed class Brightness : IRewardModel
    {
        public string Name => "brightness";

        public Task<IReadOnlyList<RewardResult>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellationToken = default) =>
            Task.FromResult<IReadOnlyList<RewardResult>>(samples.Select(s => new RewardResult(s.Image.Pixels.ToArray().Average(b => b / 255.0),
                new Dictionary<string, double> { ["brightness/raw"] = s.Image.Pixels[0] },
                [new RewardRegion(1, 2, 3, 4, 0.5, "word", "target")], null)).ToList());
    }

    private static readonly WorkerFingerprint Trainer = new(WorkerFingerprint.ContractVersions, new() { ["policy:var"] = "NextFlowRL.Policies.Var 1.0", ["reward:ocr"] = "NextFlowRL.Rewards.Ocr 1.0" });

    [Fact]
    public void AShardSentOverTheWireComesBackAsTheBatchComputedHere()
    {
        using var policy = new TinyNextScalePolicy(seed: 4);
        var rewards = new RewardEnsemble([(new RewardSpec { Name = "brightness" }, new Brightness())], NullLogger.Instance);
        var request = new RolloutRequest
        {
            Step = 2,
            StepSeed = Seeds.Mix(5, 2),
            Prompts = Enumerable.Range(0, 3).Select(i => new PromptRecord($"prompt {i}", new Dictionary<string, string> { ["words"] = $"w{i}" })).ToList(),
            GroupSize = 2,
            Continuations = 2,
            Split = 1,
            Sampling = new SamplingOptions { Seed = Seeds.Mix(5, 2), CfgScale = 1, TopK = 0, Temperature = 1 },
            RecordLogProbs = true,
        };
        var job = new ShardJob
        {
            RunId = "run", Version = 2, Policy = policy.Name, Rewards = [RewardSpecMessage.From(new RewardSpec { Name = "brightness" })], Trainer = Trainer,
            Step = request.Step, StepSeed = request.StepSeed, Prompts = request.Prompts.Select(p => p.Prompt).ToArray(),
            Metadata = request.Prompts.Select(p => p.Metadata.ToDictionary()).ToArray(), FirstPrompt = 1, PromptCount = 2,
            GroupSize = 2, Continuations = 2, Split = 1, CfgScale = 1, TopK = 0, TopP = 1, Temperature = 1, RecordLogProbs = true, RecordGuided = false, Threads = 0,
        };
        Assert.Equal(request.Sampling with { TopP = 1 }, job.ToRequest().Sampling);

        // The worker's side: the shard from the request the job carries, serialized as Orleans sends it.
        using var computed = RolloutShard.Run(policy, rewards, job.ToRequest(), job.FirstPrompt, job.PromptCount, default);
        var serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();
        var wire = serializer.Deserialize<ShardOutcome>(serializer.SerializeToArray(ShardOutcome.From(computed, "silo")))!;
        var sentJob = serializer.Deserialize<ShardJob>(serializer.SerializeToArray(job))!;
        Assert.Equal(job.Prompts, sentJob.Prompts);
        Assert.Equal("w1", sentJob.Metadata[1]["words"]);

        // The trainer's side, against the same shard computed in this process.
        using var back = wire.ToBatch(job, policy.Schedule, policy.Device);
        using var here = new LocalRollouts(rewards, shardPrompts: 2).Run(request, policy, default);
        Assert.Equal(4, back.First.Count);
        for (int k = 0; k < back.First.Length; k++)
        {
            Assert.True(back.First.Grids[k].eq(here.First.Grids[k].narrow(0, 2, 4)).all().item<bool>(), $"first tokens differ at scale {k}");
            Assert.True(back.All.Grids[k].eq(here.All.Grids[k].narrow(0, 4, 8)).all().item<bool>(), $"continuations differ at scale {k}");
        }
        Assert.Equal(here.Images.Skip(4).Select(i => i.Pixels.ToArray()), back.Images.Select(i => i.Pixels.ToArray()));
        var scores = back.Scores.PerReward["brightness"];
        Assert.Equal(here.Scores.PerReward["brightness"].Skip(4).Select(r => r.Score), scores.Select(r => r.Score));
        Assert.Equal(new RewardRegion(1, 2, 3, 4, 0.5, "word", "target"), scores[0].Regions[0]);
        Assert.True(scores[0].Components.ContainsKey("brightness/raw"));
        Assert.Equal(here.Scores.Dropped.Skip(4), back.Scores.Dropped);
        Assert.Null(back.Recorded); // this policy records no log-probs: none travel

        // Recorded log-probs (policies that record them) travel too.
        var recorded = computed.First.Grids.Select(g => g.to(TorchSharp.torch.ScalarType.Float32).mul(-0.25)).ToList();
        var withLogProbs = new RolloutBatch { First = computed.First, All = computed.All, Images = computed.Images, Scoring = computed.Scoring, Recorded = recorded };
        var again = serializer.Deserialize<ShardOutcome>(serializer.SerializeToArray(ShardOutcome.From(withLogProbs, "silo")))!.ToBatch(job, policy.Schedule, policy.Device);
        for (int k = 0; k < recorded.Count; k++)
            Assert.True(again.Recorded![k].eq(recorded[k]).all().item<bool>(), $"log-probs differ at scale {k}");
    }

    [Fact]
    public void ShardsSpreadOverTheSilosAndARetryMovesToAnother()
    {
        for (int silos = 1; silos <= 3; silos++)
            for (int shard = 0; shard < 6; shard++)
            {
                Assert.Equal(shard % silos, ShardPlacementDirector.SiloIndex(ClusterRollouts.GrainKey(shard, 0), silos));
                for (int attempt = 1; attempt < 4 && silos > 1; attempt++)
                    Assert.NotEqual(ShardPlacementDirector.SiloIndex(ClusterRollouts.GrainKey(shard, attempt - 1), silos), ShardPlacementDirector.SiloIndex(ClusterRollouts.GrainKey(shard, attempt), silos));
            }
        Assert.NotEqual(ClusterRollouts.GrainKey(1, 0), ClusterRollouts.GrainKey(0, 1));
    }

    [Fact]
    public void TheJoinCheckNamesEveryDifference()
    {
        Assert.Empty(Trainer.DifferencesFrom(Trainer));
        var worker = new WorkerFingerprint("NextFlowRL.Abstractions 0.9", new() { ["policy:var"] = "NextFlowRL.Policies.Var 1.1", ["reward:clip"] = "NextFlowRL.Rewards.Clip 1.0" });
        var differences = worker.DifferencesFrom(Trainer);
        Assert.Equal(3, differences.Count);
        Assert.Contains(differences, d => d.StartsWith("contracts: worker has NextFlowRL.Abstractions 0.9", StringComparison.Ordinal));
        Assert.Contains("policy:var: worker has NextFlowRL.Policies.Var 1.1, trainer has NextFlowRL.Policies.Var 1.0", differences);
        Assert.Contains("reward:ocr: worker has missing, trainer has NextFlowRL.Rewards.Ocr 1.0", differences);
        // A worker with more plugins than the run uses still fits.
        Assert.Empty((Trainer with { Components = new(Trainer.Components) { ["reward:hps"] = "x" } }).DifferencesFrom(Trainer));
        Assert.Equal(["policy:var"], Trainer.For(["policy:var", "policy:var"]).Components.Keys);
        Assert.Equal("missing", Trainer.For(["reward:clip"]).Components["reward:clip"]);
    }

    [Fact]
    public void EndpointsAreCheckedWithClearMessages()
    {
        Assert.Equal(30000, ClusterRollouts.ParseEndpoint("127.0.0.1:30000").Port);
        Assert.Equal(30001, ClusterRollouts.ParseEndpoint("localhost:30001").Port);
        Assert.Contains("is not host:port", Assert.Throws<InvalidDataException>(() => ClusterRollouts.ParseEndpoint("127.0.0.1")).Message);
        Assert.Contains("is not host:port", Assert.Throws<InvalidDataException>(() => ClusterRollouts.ParseEndpoint("host:70000")).Message);
        Assert.Contains("does not resolve", Assert.Throws<InvalidDataException>(() => ClusterRollouts.ParseEndpoint("no-such-host.invalid:30000")).Message);
    }

    [Fact]
    public void TrainerClusterOptionsAreValidated()
    {
        var o = new TrainerOptions { Cluster = { Gateways = ["10.0.0.1"], MinWorkers = 0, JoinTimeoutSeconds = 0, ShardPrompts = -1 } };
        var errors = o.Validate();
        Assert.Contains(errors, e => e.Contains("Train:Cluster:Gateways:0 must be host:port", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("Train:Cluster:MinWorkers must be >= 1", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("Train:Cluster:JoinTimeoutSeconds must be > 0", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("Train:Cluster:ShardPrompts must be >= 0", StringComparison.Ordinal));
        // LoRA runs on a cluster too.
        Assert.DoesNotContain(new TrainerOptions { Cluster = { Gateways = ["127.0.0.1:30000"] }, Lora = { Rank = 4 } }.Validate(), e => e.Contains("Cluster", StringComparison.Ordinal));
        var both = new TrainerOptions { Cluster = { Gateways = ["127.0.0.1:30000"], Redis = "127.0.0.1:6379" } };
        Assert.Contains(both.Validate(), e => e.Contains("give Gateways or Redis, not both", StringComparison.Ordinal));
        Assert.True(new NextFlowRL.Training.ClusterOptions { Redis = "127.0.0.1:6379" }.Enabled);
        // The secret never reaches a run's config.json, but a copy keeps it.
        var secret = new TrainerOptions { Cluster = { Secret = "s3cret" } };
        Assert.DoesNotContain("s3cret", System.Text.Json.JsonSerializer.Serialize(secret), StringComparison.Ordinal);
        Assert.Equal("s3cret", secret.Clone().Cluster.Secret);
        Assert.False(new NextFlowRL.Training.ClusterOptions().Enabled);
    }

    [Theory]
    [InlineData("127.0.0.1:6379", false)]
    [InlineData("localhost:6379,password=x", false)]
    [InlineData("10.0.0.5:6379", true)]
    [InlineData("127.0.0.1:6379,redis.internal:6379", true)]
    public async Task ASecretIsRequiredForWorkersOffThisMachine(string redis, bool refused)
    {
        var o = new TrainerOptions { Cluster = { Redis = redis, JoinTimeoutSeconds = 1 } };
        var e = await Assert.ThrowsAnyAsync<Exception>(() => ClusterRollouts.ConnectAsync(o, Trainer, NullLogger.Instance, default));
        Assert.Equal(refused, e.Message.Contains("a shared secret is required", StringComparison.Ordinal));
    }

    [Fact]
    public void WorkerOptionsListEveryProblem()
    {
        Assert.Empty(new WorkerOptions().Problems());
        Assert.Empty(new WorkerOptions { Membership = "redis", Redis = "127.0.0.1:6379", Advertise = "127.0.0.1" }.Problems());
        var problems = new WorkerOptions { Membership = "redis", SiloPort = 5, GatewayPort = 5, Primary = "x:1", Advertise = "10.0.0.2" }.Problems();
        Assert.Contains(problems, p => p.StartsWith("Worker:Membership=redis needs Worker:Redis", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Worker:SiloPort and Worker:GatewayPort must differ", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Worker:Primary is for localhost membership only", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("needs a shared secret", StringComparison.Ordinal));
        Assert.Contains("must be 'localhost' or 'redis'", Assert.Single(new WorkerOptions { Membership = "etcd" }.Problems()));
        Assert.Contains("must be host:port", Assert.Single(new WorkerOptions { Primary = "nowhere" }.Problems()));
    }
}
