namespace NextFlowRL.Rewards;

/// <summary>
/// A reward that also knows set-level metrics that are not plain means of per-sample scores, e.g. CVTG-2K Word
/// Accuracy, which is word-weighted over the whole set. Hosts use it for <c>score --summary</c> and evaluations.
/// </summary>
public interface ISummarizingReward : IRewardModel
{
    /// <summary>
    /// Set-level metrics of results this reward produced (failed samples included; implementations decide how they
    /// count and document it). Keys are metric names, e.g. <c>word_accuracy</c>, <c>ned</c>.
    /// </summary>
    IReadOnlyDictionary<string, double> Summarize(IReadOnlyList<RewardResult> results);
}
