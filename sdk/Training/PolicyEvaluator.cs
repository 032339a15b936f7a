using NextFlowRL.Imaging;
using NextFlowRL.Policies;
using NextFlowRL.Rewards;
using NextFlowRL.Training.Evidence;
using NextFlowRL.Training.Rollouts;

namespace NextFlowRL.Training;

/// <summary>The result of evaluating a policy on a prompt set.</summary>
/// <param name="Metrics">Set-level metrics: <c>count</c>, <c>failed</c>, <c>mean_score</c>, mean components, the reward's own summary (e.g. <c>word_accuracy</c>, <c>ned</c>), per bin as <c>bin/&lt;bin&gt;/&lt;metric&gt;</c>, and per facet (a dash-separated part of several bin names, e.g. <c>heldout</c>) as <c>facet/&lt;part&gt;/&lt;metric&gt;</c>.</param>
/// <param name="Images">The generated images: for each prompt in order, its images one after another.</param>
/// <param name="Results">The reward results, in the order of <paramref name="Images"/>.</param>
/// <param name="Set">The scored set (prompt index and bin of every image), for intervals and paired comparisons.</param>
/// <param name="Intervals">Bootstrap 95% confidence intervals of every metric, resampling prompts (empty when not computed).</param>
public sealed record EvalReport(IReadOnlyDictionary<string, double> Metrics, IReadOnlyList<RgbImage> Images, IReadOnlyList<RewardResult> Results,
    ScoredSet Set, IReadOnlyDictionary<string, Interval> Intervals);

/// <summary>
/// The evaluation protocol: <c>imagesPerPrompt</c> images per prompt, sampled in fixed batches with seeds derived from
/// the evaluation seed only (the same images for every run and variant evaluated with the same settings, so two
/// evaluations pair), scored by the reward (CVTG-style with the OCR reward: Word Accuracy and NED from its
/// <see cref="ISummarizingReward"/> summary), with bootstrap 95% intervals that resample prompts.
/// </summary>
public static class PolicyEvaluator
{
    /// <summary>Evaluates <paramref name="policy"/> on <paramref name="prompts"/> in batches of <paramref name="batchSize"/> images.</summary>
    /// <param name="policy">The policy.</param>
    /// <param name="reward">The reward that scores the images.</param>
    /// <param name="prompts">The prompts.</param>
    /// <param name="sampling">Sampling settings; <see cref="SamplingOptions.Seed"/> is the evaluation seed.</param>
    /// <param name="imagesPerPrompt">Images per prompt.</param>
    /// <param name="batchSize">Images per sampling call (part of the protocol: it fixes which random stream each image uses).</param>
    /// <param name="resamples">Bootstrap resamples (0 = no intervals).</param>
    /// <param name="progress">Images scored so far (reported from the scoring thread, in order).</param>
    /// <param name="ct">Cancellation.</param>
    /// <param name="pipelineRewards">Score a batch while the next one samples (the same results; <see cref="RolloutOptions.PipelineRewards"/>).</param>
    public static async Task<EvalReport> EvaluateAsync(INextScalePolicy policy, IRewardModel reward, IReadOnlyList<PromptRecord> prompts,
        SamplingOptions sampling, int imagesPerPrompt = 1, int batchSize = 16, int resamples = 0, bool pipelineRewards = true,
        IProgress<int>? progress = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(reward);
        return (await EvaluateAsync(policy, [reward], prompts, sampling, imagesPerPrompt, batchSize, resamples, pipelineRewards, progress, ct))[0];
    }

    /// <summary>
    /// Evaluates <paramref name="policy"/> once and scores the same images with every reader (e.g. the reward and a
    /// second OCR pipeline): one report per reader, in order, all on the same images, so they compare image for image.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="readers"/> is empty.</exception>
    public static async Task<IReadOnlyList<EvalReport>> EvaluateAsync(INextScalePolicy policy, IReadOnlyList<IRewardModel> readers, IReadOnlyList<PromptRecord> prompts,
        SamplingOptions sampling, int imagesPerPrompt = 1, int batchSize = 16, int resamples = 0, bool pipelineRewards = true,
        IProgress<int>? progress = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(readers);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(sampling);
        if (readers.Count == 0) throw new ArgumentException("no reader to score the evaluation images", nameof(readers));
        ArgumentOutOfRangeException.ThrowIfLessThan(imagesPerPrompt, 1);
        var rows = Enumerable.Range(0, prompts.Count).SelectMany(p => Enumerable.Repeat(p, imagesPerPrompt)).ToList();
        var images = new List<RgbImage>();
        var queue = new ScoringQueue(pipelineRewards);
        var scorings = new List<Task<Scored<IReadOnlyList<RewardResult>[]>>>();
        try
        {
            for (int start = 0; start < rows.Count; start += batchSize)
            {
                ct.ThrowIfCancellationRequested();
                var chunk = rows.Skip(start).Take(batchSize).Select(p => prompts[p]).ToList();
                using (var trajectories = policy.Sample(chunk.Select(p => p.Prompt).ToList(), sampling with { Seed = Seeds.Mix(sampling.Seed, start) }, ct))
                    images.AddRange(policy.Decode(trajectories));
                var samples = chunk.Select((p, i) => new RewardSample(images[start + i], p.Prompt, p.Metadata)).ToList();
                int scored = start + chunk.Count;
                // The batch is scored (every reader, one after the other) while the next batch samples on this thread.
                scorings.Add(queue.Add(async () =>
                {
                    var byReader = new IReadOnlyList<RewardResult>[readers.Count];
                    for (int r = 0; r < readers.Count; r++)
                    {
                        byReader[r] = await readers[r].ScoreAsync(samples, ct).ConfigureAwait(false);
                        if (byReader[r].Count != samples.Count)
                            throw new InvalidDataException($"reward '{readers[r].Name}' returned {byReader[r].Count} results for {samples.Count} images");
                    }
                    progress?.Report(scored);
                    return byReader;
                }));
            }
        }
        catch
        {
            // No scoring left running behind a failed or cancelled evaluation.
            foreach (var t in scorings) ScoringQueue.WaitQuietly(t);
            throw;
        }
        var done = await Task.WhenAll(scorings);
        var results = readers.Select((_, r) => done.SelectMany(d => d.Value[r]).ToList()).ToArray();
        var bins = rows.Select(p => prompts[p].Metadata.GetValueOrDefault(RewardMetadataKeys.Bin)).ToList();
        return readers.Select((reader, r) =>
        {
            var metrics = RewardMetrics.Summarize(reader, results[r], bins);
            var set = ScoredSet.From(reader.Name, rows, bins, results[r]);
            var intervals = resamples > 0 && prompts.Count > 1 ? Bootstrap.Intervals(reader, set, resamples, sampling.Seed) : new Dictionary<string, Interval>();
            return new EvalReport(metrics, images, results[r], set, intervals);
        }).ToList();
    }
}

/// <summary>
/// Shows an evaluation's running count (<see cref="PolicyEvaluator.EvaluateAsync(INextScalePolicy, IReadOnlyList{IRewardModel}, IReadOnlyList{PromptRecord}, SamplingOptions, int, int, int, bool, IProgress{int}?, CancellationToken)"/>
/// reports images scored so far) on a progress task, directly on the reporting thread: <see cref="Progress{T}"/> would
/// post each report to the thread pool, where two of them can arrive out of order.
/// </summary>
public sealed class CountProgress : IProgress<int>
{
    private readonly NextFlowRL.Plugins.IProgressTask _task;
    private readonly Lock _gate = new();
    private int _done;

    /// <summary>Advances <paramref name="task"/> by the growth of each reported count.</summary>
    public CountProgress(NextFlowRL.Plugins.IProgressTask task) => _task = task ?? throw new ArgumentNullException(nameof(task));

    /// <inheritdoc/>
    public void Report(int value)
    {
        lock (_gate)
        {
            if (value <= _done) return;
            _task.Advance(value - _done);
            _done = value;
        }
    }
}

/// <summary>Set-level metrics of a scored set, shared by evaluations, training logs and <c>score --summary</c>.</summary>
public static class RewardMetrics
{
    /// <summary>Count, failures, mean score and mean components, plus the reward's own set-level metrics.</summary>
    public static SortedDictionary<string, double> Summarize(IRewardModel reward, IReadOnlyList<RewardResult> results)
    {
        ArgumentNullException.ThrowIfNull(reward);
        ArgumentNullException.ThrowIfNull(results);
        var valid = results.Where(r => r.IsValid).ToList();
        var metrics = new SortedDictionary<string, double>(StringComparer.Ordinal)
        {
            ["count"] = results.Count,
            ["failed"] = results.Count - valid.Count,
            ["mean_score"] = valid.Count == 0 ? double.NaN : valid.Average(r => r.Score),
        };
        foreach (var key in valid.SelectMany(r => r.Components.Keys).Distinct())
            metrics["mean_" + key] = valid.Where(r => r.Components.ContainsKey(key)).Average(r => r.Components[key]);
        if (reward is ISummarizingReward summarizing)
        {
            foreach (var (k, v) in summarizing.Summarize(results))
                metrics[k] = v;
        }
        return metrics;
    }

    /// <summary>
    /// <see cref="Summarize(IRewardModel, IReadOnlyList{RewardResult})"/> of the whole set, plus the same metrics per bin
    /// (<c>bin/&lt;bin&gt;/&lt;metric&gt;</c>, over the results whose <paramref name="bins"/> entry is not null) and per facet
    /// (<c>facet/&lt;part&gt;/&lt;metric&gt;</c>): every dash-separated part of a bin name that several bins share (e.g.
    /// <c>heldout</c> in <c>1region-heldout</c> and <c>2region-heldout</c>) is summarized over all its results, so facet
    /// metrics stay word-weighted across bins.
    /// </summary>
    /// <param name="reward">The reward that produced the results.</param>
    /// <param name="results">The results, one per sample.</param>
    /// <param name="bins">The bin of each sample (<see cref="RewardMetadataKeys.Bin"/>), or null.</param>
    /// <exception cref="ArgumentException">The lists differ in length.</exception>
    public static SortedDictionary<string, double> Summarize(IRewardModel reward, IReadOnlyList<RewardResult> results, IReadOnlyList<string?> bins)
    {
        ArgumentNullException.ThrowIfNull(bins);
        var metrics = Summarize(reward, results);
        if (bins.Count != results.Count) throw new ArgumentException($"{bins.Count} bins for {results.Count} results", nameof(bins));
        var binned = bins.Select((bin, i) => (Bin: bin, i)).Where(x => !string.IsNullOrEmpty(x.Bin)).ToList();
        void AddGroup(string key, IEnumerable<int> indices)
        {
            foreach (var (k, v) in Summarize(reward, indices.Select(i => results[i]).ToList()))
                metrics[$"{key}/{k}"] = v;
        }
        foreach (var bin in binned.GroupBy(x => x.Bin!))
            AddGroup($"bin/{bin.Key}", bin.Select(x => x.i));
        var facets = binned.SelectMany(x => x.Bin!.Split('-', StringSplitOptions.RemoveEmptyEntries).Select(part => (Part: part, x.Bin, x.i))).GroupBy(x => x.Part);
        foreach (var facet in facets.Where(f => f.Select(x => x.Bin).Distinct().Count() > 1))
            AddGroup($"facet/{facet.Key}", facet.Select(x => x.i));
        return metrics;
    }
}
