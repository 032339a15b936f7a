namespace NextFlowRL.Rewards;

/// <summary>
/// A reward: scores a batch of generated images. Implementations are registered by a plugin under a name
/// (see <see cref="Plugins.NextFlowRLBuilderExtensions.AddReward"/>) and must be safe to call from one caller at a time;
/// they may parallelize internally.
/// </summary>
public interface IRewardModel
{
    /// <summary>The registered name (e.g. <c>ocr</c>).</summary>
    string Name { get; }

    /// <summary>
    /// Scores every sample. Returns exactly one result per sample, in order. A sample that cannot be scored gets
    /// <see cref="RewardResult.Failed"/>; an exception means the whole batch failed.
    /// </summary>
    /// <exception cref="OperationCanceledException">Cancelled; partial work is discarded.</exception>
    Task<IReadOnlyList<RewardResult>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellationToken = default);
}
