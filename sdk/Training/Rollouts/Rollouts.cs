using System.Diagnostics;
using NextFlowRL.Imaging;
using NextFlowRL.Policies;
using NextFlowRL.Rewards;
using NextFlowRL.Torch.Memory;
using NextFlowRL.Torch.NextScale;
using static TorchSharp.torch;

namespace NextFlowRL.Training.Rollouts;

/// <summary>
/// What one step asks of its rollouts: <see cref="GroupSize"/> trajectories per prompt, each prefix (scales before
/// <see cref="Split"/>) completed <see cref="Continuations"/> times, decoded and scored. Every random draw is a function
/// of (<see cref="StepSeed"/>, prompt index, sample index, continuation index) (<see cref="RowSeed"/>), never of how
/// the prompts are split into shards or which process samples a shard.
/// </summary>
public sealed record RolloutRequest
{
    /// <summary>0-based step.</summary>
    public required int Step { get; init; }

    /// <summary>The step's seed (from the run seed and the step).</summary>
    public required long StepSeed { get; init; }

    /// <summary>The step's prompts, in batch order.</summary>
    public required IReadOnlyList<PromptRecord> Prompts { get; init; }

    /// <summary>Trajectories per prompt (G).</summary>
    public required int GroupSize { get; init; }

    /// <summary>Completions per prefix (K; 1 = none beyond the first trajectory).</summary>
    public required int Continuations { get; init; }

    /// <summary>The VMR split scale (continuations resample scales from here on); ignored when <see cref="Continuations"/> is 1.</summary>
    public required int Split { get; init; }

    /// <summary>Guidance, truncation and temperature (seeds are set per row).</summary>
    public required SamplingOptions Sampling { get; init; }

    /// <summary>Record the sampler's own log-probs of the first trajectories (the parity monitor's input).</summary>
    public bool RecordLogProbs { get; init; }

    /// <summary>Record the guided distribution's log-probs rather than the conditional one's.</summary>
    public bool RecordGuided { get; init; }

    /// <summary>
    /// The LoRA adapters the trainer updates (null: the policy's own weights are trained). An executor that ships the
    /// policy to other processes sends the base weights once and these adapters per version.
    /// </summary>
    public NextFlowRL.Torch.Adapters.LoraSet? Adapters { get; init; }

    /// <summary>The seed of one row's random stream: prompt <paramref name="prompt"/> of the step, sample <paramref name="sample"/>, continuation <paramref name="continuation"/> (0 = the first trajectory).</summary>
    public long RowSeed(int prompt, int sample, int continuation) =>
        continuation == 0 ? Seeds.Mix(StepSeed, prompt, sample) : Seeds.Mix(StepSeed, prompt, sample, continuation);
}

/// <summary>
/// A step's (or a shard's) rollouts. Rows of <see cref="First"/> are prompt-major (prompt p, sample g at p*G+g); rows of
/// <see cref="All"/>, <see cref="Images"/> and the scores are (p*G+g)*K+k, the first of each K being the row of
/// <see cref="First"/> itself.
/// </summary>
public sealed class RolloutBatch : IDisposable
{
    /// <summary>The first trajectory of every (prompt, sample).</summary>
    public required TokenTrajectories First { get; init; }

    /// <summary>Every complete trajectory (the same object as <see cref="First"/> when K is 1).</summary>
    public required TokenTrajectories All { get; init; }

    /// <summary>Decoded images of <see cref="All"/>.</summary>
    public required IReadOnlyList<RgbImage> Images { get; init; }

    /// <summary>Scores of <see cref="Images"/>.</summary>
    public required EnsembleScores Scores { get; init; }

    /// <summary>Per scale, the sampler's <c>[rows of First, h, w]</c> log-probs of its draws; null when not recorded.</summary>
    public IReadOnlyList<Tensor>? Recorded { get; init; }

    /// <summary>Seconds spent sampling and decoding (summed over shards).</summary>
    public double SampleSeconds { get; init; }

    /// <summary>Seconds spent scoring (summed over shards).</summary>
    public double RewardSeconds { get; init; }

    /// <summary>Machine figures of the phase (resident peaks, a cluster's transfer time), merged into the step's metrics.</summary>
    public Dictionary<string, double> Extra { get; } = new(StringComparer.Ordinal);

    /// <summary>Joins shards of consecutive prompt ranges, in order, into one batch.</summary>
    public static RolloutBatch Concat(IReadOnlyList<RolloutBatch> shards)
    {
        ArgumentNullException.ThrowIfNull(shards);
        if (shards.Count == 0) throw new ArgumentException("Nothing to concatenate.", nameof(shards));
        if (shards.Count == 1) return shards[0];
        var first = TokenTrajectories.Concat(shards.Select(s => s.First).ToList());
        var all = ReferenceEquals(shards[0].First, shards[0].All) ? first : TokenTrajectories.Concat(shards.Select(s => s.All).ToList());
        IReadOnlyList<Tensor>? recorded = null;
        if (shards.All(s => s.Recorded is not null))
            recorded = Enumerable.Range(0, shards[0].Recorded!.Count).Select(t => cat(shards.Select(s => s.Recorded![t]).ToArray(), 0)).ToList();
        var names = shards[0].Scores.PerReward.Keys.ToList();
        var scores = new EnsembleScores
        {
            PerReward = names.ToDictionary(n => n, n => (IReadOnlyList<RewardResult>)shards.SelectMany(s => s.Scores.PerReward[n]).ToList()),
            Dropped = shards.SelectMany(s => s.Scores.Dropped).ToArray(),
            Retries = shards.Sum(s => s.Scores.Retries),
        };
        var batch = new RolloutBatch
        {
            First = first,
            All = all,
            Images = shards.SelectMany(s => s.Images).ToList(),
            Scores = scores,
            Recorded = recorded,
            SampleSeconds = shards.Sum(s => s.SampleSeconds),
            RewardSeconds = shards.Sum(s => s.RewardSeconds),
        };
        foreach (var s in shards) s.Dispose();
        return batch;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (!ReferenceEquals(First, All)) All.Dispose();
        First.Dispose();
        foreach (var t in Recorded ?? []) t.Dispose();
    }
}

/// <summary>Runs a step's rollouts: in this process (<see cref="LocalRollouts"/>) or on workers of a cluster.</summary>
public interface IRolloutExecutor : IDisposable
{
    /// <summary>
    /// Samples, decodes and scores the step's rollouts with <paramref name="policy"/> as it is now (its weights are
    /// those after <see cref="RolloutRequest.Step"/> updates' worth of passes). Called on the trainer's thread.
    /// </summary>
    RolloutBatch Run(RolloutRequest request, INextScalePolicy policy, CancellationToken cancellationToken);
}

/// <summary>
/// One shard of a step's rollouts, computed with a given policy and rewards: the prompts
/// <c>[first, first + count)</c> of the request. Local and cluster execution both run this, so a shard gives the same
/// tokens and scores wherever it runs.
/// </summary>
public static class RolloutShard
{
    /// <summary>Samples, continues, decodes and scores one shard; <paramref name="sampled"/> is called between decoding and scoring.</summary>
    public static RolloutBatch Run(INextScalePolicy policy, RewardEnsemble rewards, RolloutRequest request, int firstPrompt, int count, CancellationToken ct,
        Action? sampled = null)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(rewards);
        ArgumentNullException.ThrowIfNull(request);
        if (firstPrompt < 0 || count < 1 || firstPrompt + count > request.Prompts.Count)
            throw new ArgumentOutOfRangeException(nameof(count), $"shard [{firstPrompt}, {firstPrompt + count}) is outside the step's {request.Prompts.Count} prompts");
        var clock = Stopwatch.StartNew();
        int G = request.GroupSize, K = request.Continuations;
        var prompts = request.Prompts.Skip(firstPrompt).Take(count).ToList();
        var rowPrompts = prompts.SelectMany(p => Enumerable.Repeat(p, G)).ToList();
        var firstSeeds = Enumerable.Range(0, count * G).Select(i => request.RowSeed(firstPrompt + i / G, i % G, 0)).ToArray();
        var sampling = request.Sampling with { RowSeeds = firstSeeds };

        TokenTrajectories first;
        IReadOnlyList<Tensor>? recorded = null;
        if (request.RecordLogProbs && policy is ISamplerControl control)
        {
            (first, recorded) = control.Run(rowPrompts.Select(p => p.Prompt).ToList(), null, sampling,
                new SamplerSettings(RecordLogProbs: true, RecordGuided: request.RecordGuided), ct);
        }
        else
        {
            first = policy.Sample(rowPrompts.Select(p => p.Prompt).ToList(), sampling, ct);
        }
        var all = first;
        if (K > 1)
        {
            using var prefix = first.Prefix(request.Split);
            using var repeated = prefix.RepeatEach(K - 1);
            // Row i*(K-1)+(k-1) of the repeated prefixes is continuation k of first-row i.
            var continuationSeeds = Enumerable.Range(0, count * G).SelectMany(i => Enumerable.Range(1, K - 1).Select(k => request.RowSeed(firstPrompt + i / G, i % G, k))).ToArray();
            using var continued = policy.Continue(repeated, request.Sampling with { RowSeeds = continuationSeeds }, ct);
            using var joined = TokenTrajectories.Concat([first, continued]);
            int n = count * G;
            var order = Enumerable.Range(0, n).SelectMany(i => Enumerable.Range(0, K).Select(k => k == 0 ? i : n + i * (K - 1) + k - 1)).ToList();
            all = joined.Select(order);
        }
        var images = policy.Decode(all);
        double sampleSeconds = clock.Elapsed.TotalSeconds;
        sampled?.Invoke();
        clock.Restart();
        var samples = images.Select((img, r) => new RewardSample(img, rowPrompts[r / K].Prompt, rowPrompts[r / K].Metadata)).ToList();
        var scores = Task.Run(() => rewards.ScoreAsync(samples, ct), ct).GetAwaiter().GetResult();
        return new RolloutBatch
        {
            First = first,
            All = all,
            Images = images,
            Scores = scores,
            Recorded = recorded,
            SampleSeconds = sampleSeconds,
            RewardSeconds = clock.Elapsed.TotalSeconds,
        };
    }

    /// <summary>The shards of a step of <paramref name="prompts"/> prompts at <paramref name="shardPrompts"/> prompts each (0 = one shard).</summary>
    public static IReadOnlyList<(int First, int Count)> Layout(int prompts, int shardPrompts)
    {
        int size = shardPrompts <= 0 ? prompts : Math.Min(shardPrompts, prompts);
        var result = new List<(int, int)>();
        for (int first = 0; first < prompts; first += size) result.Add((first, Math.Min(size, prompts - first)));
        return result;
    }
}

/// <summary>
/// Rollouts in this process, shard after shard, with the trainer's own policy and rewards. With a resident-memory
/// sampler, the batch's <see cref="RolloutBatch.Extra"/> holds the peaks of the sampling and the scoring phases
/// (<c>rss_peak_rollout_mb</c>, <c>rss_peak_reward_mb</c>, the largest over shards).
/// </summary>
public sealed class LocalRollouts : IRolloutExecutor
{
    private readonly RewardEnsemble _rewards;
    private readonly int _shardPrompts;
    private readonly RssPeakSampler? _rss;

    /// <summary>Creates the executor; <paramref name="shardPrompts"/> prompts per shard (0 = the whole step in one batch); <paramref name="rss"/> (not owned) measures the phases' peaks.</summary>
    public LocalRollouts(RewardEnsemble rewards, int shardPrompts, RssPeakSampler? rss = null)
    {
        _rewards = rewards ?? throw new ArgumentNullException(nameof(rewards));
        _shardPrompts = shardPrompts;
        _rss = rss;
    }

    /// <inheritdoc/>
    public RolloutBatch Run(RolloutRequest request, INextScalePolicy policy, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var shards = new List<RolloutBatch>();
        double rolloutPeak = 0, rewardPeak = 0;
        try
        {
            foreach (var (first, count) in RolloutShard.Layout(request.Prompts.Count, _shardPrompts))
            {
                shards.Add(RolloutShard.Run(policy, _rewards, request, first, count, cancellationToken,
                    sampled: () => rolloutPeak = Math.Max(rolloutPeak, _rss?.TakePeak() ?? 0)));
                rewardPeak = Math.Max(rewardPeak, _rss?.TakePeak() ?? 0);
            }
        }
        catch
        {
            foreach (var s in shards) s.Dispose();
            throw;
        }
        var batch = RolloutBatch.Concat(shards);
        if (_rss is not null)
        {
            batch.Extra["rss_peak_rollout_mb"] = rolloutPeak / 1e6;
            batch.Extra["rss_peak_reward_mb"] = rewardPeak / 1e6;
        }
        return batch;
    }

    /// <inheritdoc/>
    public void Dispose() { }
}
