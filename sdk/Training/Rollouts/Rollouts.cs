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

    /// <summary>
    /// Score while the policy works on (<see cref="ScoringQueue"/>): the first trajectories while their continuations
    /// sample, a shard while the next one samples, and the whole step while the trainer takes the reference's and the
    /// old log-probs. False: every batch is scored before sampling goes on. Same results either way.
    /// </summary>
    public bool PipelineRewards { get; init; } = true;

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

    /// <summary>
    /// The scoring of <see cref="Images"/>: still running when the executor pipelines rewards (<see cref="RolloutRequest.PipelineRewards"/>),
    /// so the caller can do reward-free work first; <see cref="Scores"/> waits for it.
    /// </summary>
    public required Task<Scored<EnsembleScores>> Scoring { get; init; }

    /// <summary>Scores of <see cref="Images"/>; waits for <see cref="Scoring"/> and throws its failure.</summary>
    public EnsembleScores Scores => WaitForScoring().Value;

    /// <summary>Per scale, the sampler's <c>[rows of First, h, w]</c> log-probs of its draws; null when not recorded.</summary>
    public IReadOnlyList<Tensor>? Recorded { get; init; }

    /// <summary>Seconds spent sampling and decoding (summed over shards).</summary>
    public double SampleSeconds { get; init; }

    /// <summary>Seconds the scoring ran (summed over its calls, whether or not they overlapped other work); waits for <see cref="Scoring"/>.</summary>
    public double RewardSeconds => WaitForScoring().Seconds;

    /// <summary>
    /// Seconds the work waited for scoring: in the executor (scoring that did not overlap sampling) and in callers of
    /// <see cref="Scores"/> (scoring still running): the part of <see cref="RewardSeconds"/> the pipeline did not hide.
    /// </summary>
    public double RewardWaitSeconds { get => _waited; init => _waited = value; }

    private double _waited;

    /// <summary>Machine figures of the phase (resident peaks, a cluster's transfer time), merged into the step's metrics.</summary>
    public Dictionary<string, double> Extra { get; } = new(StringComparer.Ordinal);

    /// <summary>A finished scoring, for executors that score before they return (a worker's reply).</summary>
    public static Task<Scored<EnsembleScores>> Finished(EnsembleScores scores, double seconds) => Task.FromResult(new Scored<EnsembleScores>(scores, seconds));

    private Scored<EnsembleScores> WaitForScoring()
    {
        if (!Scoring.IsCompleted)
        {
            long start = Stopwatch.GetTimestamp();
            ScoringQueue.WaitQuietly(Scoring);
            _waited += Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        return Scoring.GetAwaiter().GetResult();
    }

    /// <summary>Joins shards of consecutive prompt ranges, in order, into one batch (their scorings may still be running).</summary>
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
        var batch = new RolloutBatch
        {
            First = first,
            All = all,
            Images = shards.SelectMany(s => s.Images).ToList(),
            Scoring = Join(shards.Select(s => s.Scoring).ToList()),
            Recorded = recorded,
            SampleSeconds = shards.Sum(s => s.SampleSeconds),
            RewardWaitSeconds = shards.Sum(s => s.RewardWaitSeconds),
        };
        foreach (var s in shards) s.Dispose();
        return batch;
    }

    /// <summary>Scorings of consecutive batches as one, in order.</summary>
    internal static async Task<Scored<EnsembleScores>> Join(IReadOnlyList<Task<Scored<EnsembleScores>>> parts)
    {
        var done = await Task.WhenAll(parts).ConfigureAwait(false);
        return new Scored<EnsembleScores>(EnsembleScores.Concat(done.Select(d => d.Value).ToList()), done.Sum(d => d.Seconds));
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
    /// <summary>
    /// Samples, continues, decodes and scores one shard; <paramref name="sampled"/> is called when sampling and
    /// decoding end. With <see cref="RolloutRequest.PipelineRewards"/> the first trajectories are scored while their
    /// continuations sample and the batch returns with its last scoring still running (<see cref="RolloutBatch.Scoring"/>);
    /// <paramref name="queue"/> (default: one for this shard) orders the scoring calls of several shards.
    /// </summary>
    public static RolloutBatch Run(INextScalePolicy policy, RewardEnsemble rewards, RolloutRequest request, int firstPrompt, int count, CancellationToken ct,
        Action? sampled = null, ScoringQueue? queue = null)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(rewards);
        ArgumentNullException.ThrowIfNull(request);
        if (firstPrompt < 0 || count < 1 || firstPrompt + count > request.Prompts.Count)
            throw new ArgumentOutOfRangeException(nameof(count), $"shard [{firstPrompt}, {firstPrompt + count}) is outside the step's {request.Prompts.Count} prompts");
        queue ??= new ScoringQueue(request.PipelineRewards);
        var clock = Stopwatch.StartNew();
        double blockedBefore = queue.BlockedSeconds;
        int G = request.GroupSize, K = request.Continuations;
        var prompts = request.Prompts.Skip(firstPrompt).Take(count).ToList();
        var rowPrompts = prompts.SelectMany(p => Enumerable.Repeat(p, G)).ToList();
        var firstSeeds = Enumerable.Range(0, count * G).Select(i => request.RowSeed(firstPrompt + i / G, i % G, 0)).ToArray();
        var sampling = request.Sampling with { RowSeeds = firstSeeds };
        Task<Scored<EnsembleScores>> Score(IReadOnlyList<RgbImage> images, Func<int, PromptRecord> prompt)
        {
            var samples = images.Select((img, r) => new RewardSample(img, prompt(r).Prompt, prompt(r).Metadata)).ToList();
            return queue.Add(() => rewards.ScoreAsync(samples, ct));
        }

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
        // The first trajectories are decoded (and scored) on their own, their continuations after them, whether or not
        // the scoring overlaps: the same decode calls, so the same images, in both modes.
        var images = policy.Decode(first);
        var scoring = Score(images, r => rowPrompts[r]);
        var all = first;
        if (K > 1)
        {
            int n = count * G;
            using var prefix = first.Prefix(request.Split);
            using var repeated = prefix.RepeatEach(K - 1);
            // Row i*(K-1)+(k-1) of the repeated prefixes is continuation k of first-row i.
            var continuationSeeds = Enumerable.Range(0, n).SelectMany(i => Enumerable.Range(1, K - 1).Select(k => request.RowSeed(firstPrompt + i / G, i % G, k))).ToArray();
            using var continued = policy.Continue(repeated, request.Sampling with { RowSeeds = continuationSeeds }, ct);
            var continuedImages = policy.Decode(continued);
            var continuedScoring = Score(continuedImages, r => rowPrompts[r / (K - 1)]);
            using var joined = TokenTrajectories.Concat([first, continued]);
            var order = Enumerable.Range(0, n).SelectMany(i => Enumerable.Range(0, K).Select(k => k == 0 ? i : n + i * (K - 1) + k - 1)).ToList();
            all = joined.Select(order);
            var joinedImages = images.Concat(continuedImages).ToList();
            images = order.Select(r => joinedImages[r]).ToList();
            scoring = Reorder(RolloutBatch.Join([scoring, continuedScoring]), order);
        }
        double blocked = queue.BlockedSeconds - blockedBefore;
        sampled?.Invoke();
        return new RolloutBatch
        {
            First = first,
            All = all,
            Images = images,
            Scoring = scoring,
            Recorded = recorded,
            SampleSeconds = clock.Elapsed.TotalSeconds - blocked,
            RewardWaitSeconds = blocked,
        };
    }

    private static async Task<Scored<EnsembleScores>> Reorder(Task<Scored<EnsembleScores>> scoring, IReadOnlyList<int> order)
    {
        var done = await scoring.ConfigureAwait(false);
        return done with { Value = done.Value.Select(order) };
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
        // One queue for the step: a shard is scored while the next one samples, one reward call at a time.
        var queue = new ScoringQueue(request.PipelineRewards);
        try
        {
            foreach (var (first, count) in RolloutShard.Layout(request.Prompts.Count, _shardPrompts))
            {
                shards.Add(RolloutShard.Run(policy, _rewards, request, first, count, cancellationToken,
                    sampled: () => rolloutPeak = Math.Max(rolloutPeak, _rss?.TakePeak() ?? 0), queue));
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
