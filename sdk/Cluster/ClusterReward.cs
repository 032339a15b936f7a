using NextFlowRL.Rewards;

namespace NextFlowRL.Cluster;

/// <summary>
/// A reward of the trainer's plugins scored on the cluster's reward workers: the samples are split into one batch per
/// worker silo and scored there with the same plugin (checked at join), in order. Set-level metrics (OCR's word
/// accuracy) are computed here by the local reward, from the results.
/// </summary>
public sealed class ClusterReward : IRewardModel, ISummarizingReward
{
    private readonly ClusterRollouts _cluster;
    private readonly IRewardModel _local;

    /// <summary>Wraps the trainer's own <paramref name="local"/> reward (its name is the one scored on the workers).</summary>
    public ClusterReward(ClusterRollouts cluster, IRewardModel local)
    {
        _cluster = cluster ?? throw new ArgumentNullException(nameof(cluster));
        _local = local ?? throw new ArgumentNullException(nameof(local));
    }

    /// <inheritdoc/>
    public string Name => _local.Name;

    /// <inheritdoc/>
    public Task<IReadOnlyList<RewardResult>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellationToken = default) =>
        _cluster.ScoreAsync(Name, samples, Math.Max(1, _cluster.Workers), cancellationToken);

    /// <inheritdoc/>
    public IReadOnlyDictionary<string, double> Summarize(IReadOnlyList<RewardResult> results) =>
        _local is ISummarizingReward summarizing ? summarizing.Summarize(results) : new Dictionary<string, double>();
}
