using NextFlowRL.Imaging;
using NextFlowRL.Policies;
using NextFlowRL.Rewards;
using NextFlowRL.Training;
using NextFlowRL.Training.Rollouts;
using static TorchSharp.torch;

namespace NextFlowRL.Cluster;

/// <summary>
/// A rollout worker: samples, decodes and scores one shard of a step with a policy replica at the weights version the
/// trainer names. One activation per shard index; every activation of a silo shares that silo's replica.
/// </summary>
[Alias("NextFlowRL.Cluster.IRolloutWorker")]
public interface IRolloutWorker : IGrainWithIntegerKey
{
    /// <summary>
    /// Runs the shard, or answers <see cref="ShardOutcome.NeedsWeights"/> when this silo lacks the job's weights version
    /// (send them with <see cref="LoadWeights"/> to the same grain and ask again), or <see cref="ShardOutcome.Refusal"/>
    /// when the worker cannot serve this trainer (other plugins or contracts, wrong secret).
    /// </summary>
    [Alias("Run")]
    Task<ShardOutcome> Run(ShardJob job);

    /// <summary>Stores a weights version on this grain's silo (the files of <see cref="INextScalePolicy.Save"/>).</summary>
    [Alias("LoadWeights")]
    Task<string?> LoadWeights(WeightsPackage weights);

    /// <summary>What the worker runs (plugins and contract versions), for the join check.</summary>
    [Alias("Describe")]
    Task<WorkerFingerprint> Describe();

    /// <summary>The silo this activation lives on (<see cref="Orleans.Runtime.SiloAddress.ToParsableString"/>): the trainer watches it while the shard runs.</summary>
    [Alias("Location")]
    Task<string> Location();
}

/// <summary>A reward worker: scores a batch of images with one named reward of the worker's plugins.</summary>
[Alias("NextFlowRL.Cluster.IRewardWorker")]
public interface IRewardWorker : IGrainWithIntegerKey
{
    /// <summary>Scores the batch, or answers <see cref="RewardOutcome.Refusal"/> when the worker cannot serve this trainer.</summary>
    [Alias("Score")]
    Task<RewardOutcome> Score(RewardJob job);

    /// <summary>The silo this activation lives on (as <see cref="IRolloutWorker.Location"/>).</summary>
    [Alias("Location")]
    Task<string> Location();
}

/// <summary>A batch for a reward worker.</summary>
[GenerateSerializer, Immutable, Alias("NextFlowRL.Cluster.RewardJob")]
public sealed record RewardJob(
    [property: Id(0)] string Reward,
    [property: Id(1)] WorkerFingerprint Trainer,
    [property: Id(2)] string? Secret,
    [property: Id(3)] int[] ImageSizes,
    [property: Id(4)] byte[][] Images,
    [property: Id(5)] string[] Prompts,
    [property: Id(6)] Dictionary<string, string>[] Metadata)
{
    /// <summary>Packs samples.</summary>
    public static RewardJob From(string reward, WorkerFingerprint trainer, string? secret, IReadOnlyList<RewardSample> samples)
    {
        ArgumentNullException.ThrowIfNull(samples);
        var images = samples.Select(s => s.Image).ToList();
        return new RewardJob(reward, trainer, secret, ImageWire.Sizes(images), ImageWire.Pixels(images),
            samples.Select(s => s.Prompt).ToArray(), samples.Select(s => s.Metadata.ToDictionary()).ToArray());
    }

    /// <summary>The samples again.</summary>
    public IReadOnlyList<RewardSample> Samples() =>
        ImageWire.Images(ImageSizes, Images).Select((image, i) => new RewardSample(image, Prompts[i], Metadata[i])).ToList();
}

/// <summary>Images in messages: width and height pairs in one array, the RGB24 bytes of each image in another.</summary>
internal static class ImageWire
{
    public static int[] Sizes(IReadOnlyList<RgbImage> images) => images.SelectMany(i => new[] { i.Width, i.Height }).ToArray();

    public static byte[][] Pixels(IReadOnlyList<RgbImage> images) => images.Select(i => i.Pixels.ToArray()).ToArray();

    public static List<RgbImage> Images(int[] sizes, byte[][] pixels) => pixels.Select((px, i) => new RgbImage(sizes[2 * i], sizes[2 * i + 1], px)).ToList();
}

/// <summary>What a reward worker sends back.</summary>
[GenerateSerializer, Immutable, Alias("NextFlowRL.Cluster.RewardOutcome")]
public sealed record RewardOutcome(
    [property: Id(0)] string? Refusal,
    [property: Id(1)] string Worker,
    [property: Id(2)] ResultMessage[] Results,
    [property: Id(3)] double Seconds);

/// <summary>
/// A policy's weights at one version: the files its <see cref="INextScalePolicy.Save"/> writes; or, for a LoRA run
/// (<see cref="Lora"/> set), the adapters only (<c>adapters.safetensors</c>), with the base weights
/// (<see cref="BaseFiles"/>) included only for a silo that does not hold them yet.
/// </summary>
[GenerateSerializer, Immutable, Alias("NextFlowRL.Cluster.WeightsPackage")]
public sealed record WeightsPackage(
    [property: Id(0)] string RunId,
    [property: Id(1)] int Version,
    [property: Id(2)] string Policy,
    [property: Id(3)] string[] Files,
    [property: Id(4)] byte[][] Contents,
    [property: Id(5)] string? Secret,
    [property: Id(6)] LoraMessage? Lora = null,
    [property: Id(7)] string[]? BaseFiles = null,
    [property: Id(8)] byte[][]? BaseContents = null)
{
    /// <summary>The answer of <see cref="IRolloutWorker.LoadWeights"/> to adapters for a run whose base weights the silo does not hold: send them again with the base.</summary>
    public const string NeedsBase = "needs the run's base weights";
}

/// <summary>The LoRA adapters' shape: rank, alpha and the adapted layers (exact names).</summary>
[GenerateSerializer, Immutable, Alias("NextFlowRL.Cluster.LoraMessage")]
public sealed record LoraMessage(
    [property: Id(0)] int Rank,
    [property: Id(1)] double Alpha,
    [property: Id(2)] string[] Layers);

/// <summary>One shard of a step: the whole step's request (so row seeds use global prompt indices) and the shard's prompt range.</summary>
[GenerateSerializer, Immutable, Alias("NextFlowRL.Cluster.ShardJob")]
public sealed record ShardJob
{
    /// <summary>The run (weights versions are per run).</summary>
    [Id(0)] public required string RunId { get; init; }

    /// <summary>Weights version to sample with (the trainer's completed passes).</summary>
    [Id(1)] public required int Version { get; init; }

    /// <summary>Policy component name.</summary>
    [Id(2)] public required string Policy { get; init; }

    /// <summary>Rewards to score with, in the run's order.</summary>
    [Id(3)] public required RewardSpecMessage[] Rewards { get; init; }

    /// <summary>What the trainer runs; a worker that differs refuses.</summary>
    [Id(4)] public required WorkerFingerprint Trainer { get; init; }

    /// <summary>The shared secret (null on loopback).</summary>
    [Id(5)] public string? Secret { get; init; }

    /// <summary>0-based step.</summary>
    [Id(6)] public required int Step { get; init; }

    /// <summary>The step seed.</summary>
    [Id(7)] public required long StepSeed { get; init; }

    /// <summary>Every prompt of the step.</summary>
    [Id(8)] public required string[] Prompts { get; init; }

    /// <summary>Metadata of every prompt of the step.</summary>
    [Id(9)] public required Dictionary<string, string>[] Metadata { get; init; }

    /// <summary>First prompt of the shard.</summary>
    [Id(10)] public required int FirstPrompt { get; init; }

    /// <summary>Prompts in the shard.</summary>
    [Id(11)] public required int PromptCount { get; init; }

    /// <summary>G.</summary>
    [Id(12)] public required int GroupSize { get; init; }

    /// <summary>K.</summary>
    [Id(13)] public required int Continuations { get; init; }

    /// <summary>VMR split scale.</summary>
    [Id(14)] public required int Split { get; init; }

    /// <summary>Guidance scale.</summary>
    [Id(15)] public required double CfgScale { get; init; }

    /// <summary>Top-k.</summary>
    [Id(16)] public required int TopK { get; init; }

    /// <summary>Top-p.</summary>
    [Id(17)] public required double TopP { get; init; }

    /// <summary>Temperature.</summary>
    [Id(18)] public required double Temperature { get; init; }

    /// <summary>Record the sampler's log-probs.</summary>
    [Id(19)] public required bool RecordLogProbs { get; init; }

    /// <summary>Record the guided distribution's log-probs.</summary>
    [Id(20)] public required bool RecordGuided { get; init; }

    /// <summary>Torch threads the trainer uses (0 = default): the same on the worker keeps the numerics identical.</summary>
    [Id(21)] public required int Threads { get; init; }

    /// <summary>The step's request, as the trainer made it.</summary>
    public RolloutRequest ToRequest() => new()
    {
        Step = Step,
        StepSeed = StepSeed,
        Prompts = Prompts.Select((p, i) => new PromptRecord(p, Metadata[i])).ToList(),
        GroupSize = GroupSize,
        Continuations = Continuations,
        Split = Split,
        Sampling = new SamplingOptions { Seed = StepSeed, CfgScale = CfgScale, TopK = TopK, TopP = TopP, Temperature = Temperature },
        RecordLogProbs = RecordLogProbs,
        RecordGuided = RecordGuided,
    };
}

/// <summary>A reward of the run, as <see cref="RewardSpec"/>.</summary>
[GenerateSerializer, Immutable, Alias("NextFlowRL.Cluster.RewardSpecMessage")]
public sealed record RewardSpecMessage(
    [property: Id(0)] string Name,
    [property: Id(1)] double Weight,
    [property: Id(2)] string OnFailure,
    [property: Id(3)] int Retries,
    [property: Id(4)] double TimeoutSeconds)
{
    /// <summary>From the run's spec.</summary>
    public static RewardSpecMessage From(RewardSpec s) => new(s.Name, s.Weight, s.OnFailure.ToString(), s.Retries, s.TimeoutSeconds);

    /// <summary>Back to a spec.</summary>
    public RewardSpec ToSpec() => new() { Name = Name, Weight = Weight, OnFailure = Enum.Parse<RewardFailurePolicy>(OnFailure), Retries = Retries, TimeoutSeconds = TimeoutSeconds };
}

/// <summary>A scored region.</summary>
[GenerateSerializer, Immutable, Alias("NextFlowRL.Cluster.RegionMessage")]
public sealed record RegionMessage(
    [property: Id(0)] int X, [property: Id(1)] int Y, [property: Id(2)] int Width, [property: Id(3)] int Height,
    [property: Id(4)] double Confidence, [property: Id(5)] string Label, [property: Id(6)] string? Target);

/// <summary>One reward result.</summary>
[GenerateSerializer, Immutable, Alias("NextFlowRL.Cluster.ResultMessage")]
public sealed record ResultMessage(
    [property: Id(0)] double Score,
    [property: Id(1)] Dictionary<string, double> Components,
    [property: Id(2)] RegionMessage[] Regions,
    [property: Id(3)] string? Error)
{
    /// <summary>From a result.</summary>
    public static ResultMessage From(RewardResult r) => new(r.Score, r.Components.ToDictionary(), r.Regions.Select(g => new RegionMessage(g.X, g.Y, g.Width, g.Height, g.Confidence, g.Label, g.Target)).ToArray(), r.Error);

    /// <summary>Back to a result.</summary>
    public RewardResult ToResult() => new(Score, Components, Regions.Select(g => new RewardRegion(g.X, g.Y, g.Width, g.Height, g.Confidence, g.Label, g.Target)).ToList(), Error);
}

/// <summary>What a worker sends back for a shard.</summary>
[GenerateSerializer, Immutable, Alias("NextFlowRL.Cluster.ShardOutcome")]
public sealed record ShardOutcome
{
    /// <summary>The silo lacks the job's weights version.</summary>
    [Id(0)] public bool NeedsWeights { get; init; }

    /// <summary>Why the worker will not serve this trainer (null when it did).</summary>
    [Id(1)] public string? Refusal { get; init; }

    /// <summary>Which worker ran the shard (silo address).</summary>
    [Id(2)] public string Worker { get; init; } = "";

    /// <summary>Per scale, the first trajectories' tokens (rows x h x w, row-major).</summary>
    [Id(3)] public long[][] First { get; init; } = [];

    /// <summary>Per scale, every trajectory's tokens (rows x K x h x w, row-major); empty when K is 1.</summary>
    [Id(4)] public long[][] All { get; init; } = [];

    /// <summary>Per scale, the sampler's log-probs of the first trajectories (empty when not recorded).</summary>
    [Id(5)] public float[][] Recorded { get; init; } = [];

    /// <summary>Decoded images: width, height, RGB bytes.</summary>
    [Id(6)] public int[] ImageSizes { get; init; } = [];

    /// <summary>RGB24 bytes of each image.</summary>
    [Id(7)] public byte[][] Images { get; init; } = [];

    /// <summary>Reward names, in order.</summary>
    [Id(8)] public string[] RewardNames { get; init; } = [];

    /// <summary>Per reward, one result per image.</summary>
    [Id(9)] public ResultMessage[][] Results { get; init; } = [];

    /// <summary>Images dropped by a reward's failure policy.</summary>
    [Id(10)] public bool[] Dropped { get; init; } = [];

    /// <summary>Reward retries.</summary>
    [Id(11)] public int Retries { get; init; }

    /// <summary>Seconds sampling and decoding on the worker.</summary>
    [Id(12)] public double SampleSeconds { get; init; }

    /// <summary>Seconds scoring on the worker.</summary>
    [Id(13)] public double RewardSeconds { get; init; }

    /// <summary>Seconds of <see cref="RewardSeconds"/> the worker's sampling did not hide (it waited for them).</summary>
    [Id(14)] public double RewardWaitSeconds { get; init; }

    /// <summary>Packs a computed shard.</summary>
    public static ShardOutcome From(RolloutBatch batch, string worker)
    {
        ArgumentNullException.ThrowIfNull(batch);
        static long[] Flat(Tensor t) => t.cpu().to(ScalarType.Int64).contiguous().data<long>().ToArray();
        return new ShardOutcome
        {
            Worker = worker,
            First = batch.First.Grids.Select(Flat).ToArray(),
            All = ReferenceEquals(batch.First, batch.All) ? [] : batch.All.Grids.Select(Flat).ToArray(),
            Recorded = batch.Recorded?.Select(t => t.cpu().to(ScalarType.Float32).contiguous().data<float>().ToArray()).ToArray() ?? [],
            ImageSizes = ImageWire.Sizes(batch.Images),
            Images = ImageWire.Pixels(batch.Images),
            RewardNames = batch.Scores.PerReward.Keys.ToArray(),
            Results = batch.Scores.PerReward.Values.Select(v => v.Select(ResultMessage.From).ToArray()).ToArray(),
            Dropped = batch.Scores.Dropped,
            Retries = batch.Scores.Retries,
            SampleSeconds = batch.SampleSeconds,
            RewardSeconds = batch.RewardSeconds,
            RewardWaitSeconds = batch.RewardWaitSeconds, // after Scores: includes the wait for the last scoring
        };
    }

    /// <summary>Unpacks the shard on the trainer, with the policy's schedule and device.</summary>
    public RolloutBatch ToBatch(ShardJob job, ScaleSchedule schedule, Device device)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(schedule);
        int n = job.PromptCount * job.GroupSize, K = job.Continuations;
        var rowPrompts = Enumerable.Range(0, n).Select(i => job.Prompts[job.FirstPrompt + i / job.GroupSize]).ToArray();
        TokenTrajectories Grids(long[][] flat, int rows, IReadOnlyList<string> prompts) =>
            new(prompts, flat.Select((g, k) => tensor(g, [rows, schedule[k].Height, schedule[k].Width], device: device)).ToList());
        var first = Grids(First, n, rowPrompts);
        var all = All.Length == 0 ? first : Grids(All, n * K, rowPrompts.SelectMany(p => Enumerable.Repeat(p, K)).ToArray());
        IReadOnlyList<Tensor>? recorded = Recorded.Length == 0 ? null
            : Recorded.Select((g, k) => tensor(g, [n, schedule[k].Height, schedule[k].Width], device: device)).ToList();
        var images = ImageWire.Images(ImageSizes, Images);
        var scores = new EnsembleScores
        {
            PerReward = RewardNames.Select((name, i) => (name, (IReadOnlyList<RewardResult>)Results[i].Select(r => r.ToResult()).ToList()))
                .ToDictionary(x => x.name, x => x.Item2),
            Dropped = Dropped,
            Retries = Retries,
        };
        return new RolloutBatch { First = first, All = all, Images = images, Scoring = RolloutBatch.Finished(scores, RewardSeconds), Recorded = recorded, SampleSeconds = SampleSeconds, RewardWaitSeconds = RewardWaitSeconds };
    }
}
