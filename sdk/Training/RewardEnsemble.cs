using Microsoft.Extensions.Logging;
using NextFlowRL.Rewards;

namespace NextFlowRL.Training;

/// <summary>Scores of one batch from every reward of an ensemble.</summary>
public sealed class EnsembleScores
{
    /// <summary>Per reward name, one result per sample (failed samples have <see cref="RewardResult.IsValid"/> false).</summary>
    public required IReadOnlyDictionary<string, IReadOnlyList<RewardResult>> PerReward { get; init; }

    /// <summary>Samples dropped because a reward with the <see cref="RewardFailurePolicy.Drop"/> policy failed for them.</summary>
    public required bool[] Dropped { get; init; }

    /// <summary>Reward calls retried.</summary>
    public int Retries { get; init; }

    /// <summary>The samples of <paramref name="parts"/> one batch after the other (retries summed).</summary>
    /// <exception cref="ArgumentException">No parts, or parts scored by different rewards.</exception>
    public static EnsembleScores Concat(IReadOnlyList<EnsembleScores> parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        if (parts.Count == 0) throw new ArgumentException("Nothing to concatenate.", nameof(parts));
        if (parts.Count == 1) return parts[0];
        var names = parts[0].PerReward.Keys.ToList();
        if (parts.Any(p => p.PerReward.Count != names.Count || names.Any(n => !p.PerReward.ContainsKey(n))))
            throw new ArgumentException("the parts were scored by different rewards", nameof(parts));
        return new EnsembleScores
        {
            PerReward = names.ToDictionary(n => n, n => (IReadOnlyList<RewardResult>)parts.SelectMany(p => p.PerReward[n]).ToList()),
            Dropped = parts.SelectMany(p => p.Dropped).ToArray(),
            Retries = parts.Sum(p => p.Retries),
        };
    }

    /// <summary>The samples at <paramref name="rows"/>, in that order (as <c>TokenTrajectories.Select</c> reorders trajectories).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A row outside the batch.</exception>
    public EnsembleScores Select(IReadOnlyList<int> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        foreach (var r in rows)
            if (r < 0 || r >= Dropped.Length) throw new ArgumentOutOfRangeException(nameof(rows), $"row {r} is outside the batch of {Dropped.Length}");
        return new EnsembleScores
        {
            PerReward = PerReward.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<RewardResult>)rows.Select(r => kv.Value[r]).ToList()),
            Dropped = rows.Select(r => Dropped[r]).ToArray(),
            Retries = Retries,
        };
    }
}

/// <summary>A reward failed in a way its failure policy does not absorb. The message names the reward.</summary>
public sealed class RewardFailureException : Exception
{
    /// <summary>Creates the exception.</summary>
    public RewardFailureException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public RewardFailureException(string message, Exception inner) : base(message, inner) { }

    /// <summary>Creates the exception.</summary>
    public RewardFailureException() { }
}

/// <summary>
/// Several rewards with weights and failure policies. Exceptions, timeouts, wrong result counts and non-finite
/// scores are failures that name the reward; per policy they are retried, dropped (the sample leaves its group) or stop
/// the run. Nothing non-finite ever reaches an advantage. A failure policy acts on one call's batch: the trainer scores
/// a step in more than one call (each shard; with VMR the first trajectories, then their continuations), so a reward
/// that fails "for the whole batch" drops that call's samples.
/// </summary>
public sealed class RewardEnsemble
{
    private readonly IReadOnlyList<(RewardSpec Spec, IRewardModel Model)> _rewards;
    private readonly ILogger _logger;

    /// <summary>Creates the ensemble.</summary>
    public RewardEnsemble(IReadOnlyList<(RewardSpec Spec, IRewardModel Model)> rewards, ILogger logger)
    {
        _rewards = rewards;
        _logger = logger;
    }

    /// <summary>The rewards, in configuration order.</summary>
    public IReadOnlyList<(RewardSpec Spec, IRewardModel Model)> Rewards => _rewards;

    /// <summary>Scores a batch with every reward, applying the failure policies.</summary>
    public async Task<EnsembleScores> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken ct)
    {
        var per = new Dictionary<string, IReadOnlyList<RewardResult>>();
        var dropped = new bool[samples.Count];
        int retries = 0;
        foreach (var (spec, model) in _rewards)
        {
            IReadOnlyList<RewardResult>? results = null;
            for (int attempt = 0; ; attempt++)
            {
                ct.ThrowIfCancellationRequested();
                var (ok, value, error) = await CallAsync(spec, model, samples, ct);
                if (ok)
                {
                    results = value!;
                    break;
                }
                if (spec.OnFailure == RewardFailurePolicy.Retry && attempt < spec.Retries)
                {
                    retries++;
                    _logger.LogWarning("Reward {Reward} failed ({Error}); retry {Attempt}/{Max}", spec.Name, error, attempt + 1, spec.Retries);
                    await Task.Delay(TimeSpan.FromMilliseconds(200 * (1 << attempt)), ct);
                    continue;
                }
                if (spec.OnFailure == RewardFailurePolicy.Drop)
                {
                    _logger.LogWarning("Reward {Reward} failed for the whole batch ({Error}); its samples are dropped", spec.Name, error);
                    results = samples.Select(_ => RewardResult.Failed(error!)).ToList();
                    break;
                }
                throw new RewardFailureException($"reward '{spec.Name}' failed: {error}" +
                    (spec.OnFailure == RewardFailurePolicy.Retry ? $" (after {spec.Retries} retries)" : ""));
            }
            for (int i = 0; i < results.Count; i++)
            {
                if (results[i].IsValid) continue;
                var why = results[i].Error ?? $"non-finite score {results[i].Score}";
                if (spec.OnFailure == RewardFailurePolicy.Drop)
                {
                    dropped[i] = true;
                }
                else
                {
                    throw new RewardFailureException($"reward '{spec.Name}' could not score sample {i} ('{samples[i].Prompt}'): {why}");
                }
            }
            per[spec.Name] = results;
        }
        return new EnsembleScores { PerReward = per, Dropped = dropped, Retries = retries };
    }

    private static async Task<(bool Ok, IReadOnlyList<RewardResult>? Results, string? Error)> CallAsync(
        RewardSpec spec, IRewardModel model, IReadOnlyList<RewardSample> samples, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (spec.TimeoutSeconds > 0) timeout.CancelAfter(TimeSpan.FromSeconds(spec.TimeoutSeconds));
        try
        {
            var call = model.ScoreAsync(samples, timeout.Token);
            var results = spec.TimeoutSeconds > 0
                ? await call.WaitAsync(TimeSpan.FromSeconds(spec.TimeoutSeconds), ct)
                : await call;
            if (results is null || results.Count != samples.Count)
                return (false, null, $"returned {results?.Count ?? 0} results for {samples.Count} samples");
            return (true, results, null);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            return (false, null, $"timed out after {spec.TimeoutSeconds:0.#} s");
        }
        catch (Exception e)
        {
            return (false, null, $"{e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}");
        }
    }

    /// <summary>
    /// Combines per-reward scores into one scalar per sample. <see cref="RewardAggregation.WeightedSum"/>: the weighted
    /// sum. <see cref="RewardAggregation.NormalizeThenSum"/>: each reward z-normalized within each group (given by
    /// <paramref name="groups"/>) first. Dropped samples get NaN.
    /// </summary>
    public double[] Combine(EnsembleScores scores, RewardAggregation aggregation, IReadOnlyList<IReadOnlyList<int>> groups, double eps)
    {
        ArgumentNullException.ThrowIfNull(scores);
        int n = scores.Dropped.Length;
        var total = new double[n];
        foreach (var (spec, _) in _rewards)
        {
            var raw = scores.PerReward[spec.Name].Select((r, i) => scores.Dropped[i] || !r.IsValid ? double.NaN : r.Score).ToArray();
            var values = raw;
            if (aggregation == RewardAggregation.NormalizeThenSum)
            {
                values = new double[n];
                foreach (var group in groups)
                {
                    var (adv, _) = GrpoMath.GroupAdvantages(group.Select(i => raw[i]).ToList(), eps);
                    for (int k = 0; k < group.Count; k++) values[group[k]] = double.IsFinite(raw[group[k]]) ? adv[k] : double.NaN;
                }
            }
            for (int i = 0; i < n; i++) total[i] += spec.Weight * values[i];
        }
        for (int i = 0; i < n; i++)
            if (scores.Dropped[i]) total[i] = double.NaN;
        return total;
    }
}
