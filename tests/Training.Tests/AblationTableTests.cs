using NextFlowRL.Policies;
using NextFlowRL.Rewards;
using NextFlowRL.Rewards.ImageStats;
using NextFlowRL.Testing;
using NextFlowRL.Training.Evidence;
using Xunit;
using NextFlowRL.Runs;

namespace NextFlowRL.Training.Tests;

/// <summary>The evaluation protocol's statistics: bootstrap intervals, paired differences, the ablation table.</summary>
public sealed class EvidenceTests
{
    private static readonly ImageStatsReward Reward = new("brightness", new ImageStatsRewardOptions { Statistic = ImageStatistic.Brightness, Target = 1.0 });

    /// <summary>A set of <paramref name="scores"/>[prompt][image].</summary>
    private static ScoredSet Set(double[][] scores, string? bin = null) =>
        ScoredSet.From("brightness",
            scores.SelectMany((row, p) => row.Select(_ => p)).ToList(),
            // "*-heldout" bins alternate between two regions so that "heldout" is a facet (shared by two bins).
            scores.SelectMany((row, p) => row.Select(_ => bin is null ? null : $"{1 + p % 2}{bin}")).ToList(),
            scores.SelectMany(row => row.Select(RewardResult.Of)).ToList());

    [Fact]
    public void PercentilesInterpolateBetweenOrderStatistics()
    {
        double[] sorted = [1, 2, 3, 4, 5];
        Assert.Equal(1, Bootstrap.Percentile(sorted, 0));
        Assert.Equal(3, Bootstrap.Percentile(sorted, 0.5));
        Assert.Equal(4.5, Bootstrap.Percentile(sorted, 0.875));
        Assert.Equal(5, Bootstrap.Percentile(sorted, 1));
    }

    [Fact]
    public void TheIntervalOfAProportionMatchesTheNormalApproximation()
    {
        // 400 prompts, half scoring 1, half 0: the 95% interval of the mean is about 0.5 +- 1.96 * sqrt(0.25 / 400) = +-0.049.
        var set = Set(Enumerable.Range(0, 400).Select(p => new[] { p % 2 == 0 ? 1.0 : 0.0 }).ToArray());
        var ci = Bootstrap.Intervals(Reward, set, resamples: 2000, seed: 5)["mean_score"];
        Assert.Equal(0.5, ci.Estimate, 12);
        Assert.InRange(ci.Low, 0.5 - 0.049 - 0.01, 0.5 - 0.049 + 0.01);
        Assert.InRange(ci.High, 0.5 + 0.049 - 0.01, 0.5 + 0.049 + 0.01);
        // Same seed, same interval.
        Assert.Equal(ci, Bootstrap.Intervals(Reward, set, resamples: 2000, seed: 5)["mean_score"]);
    }

    [Fact]
    public void ImagesOfOnePromptAreNotIndependent()
    {
        // 50 prompts x 8 identical images: the resampling unit is the prompt, so the interval is as wide as for 50
        // single images, not for 400.
        var clustered = Set(Enumerable.Range(0, 50).Select(p => Enumerable.Repeat(p % 2 == 0 ? 1.0 : 0.0, 8).ToArray()).ToArray());
        var ci = Bootstrap.Intervals(Reward, clustered, resamples: 2000, seed: 1)["mean_score"];
        Assert.InRange(ci.High - ci.Low, 2 * 1.96 * Math.Sqrt(0.25 / 50) * 0.8, 2 * 1.96 * Math.Sqrt(0.25 / 50) * 1.2);
    }

    [Fact]
    public void APairedDifferenceCancelsPromptDifficulty()
    {
        // Prompt difficulty varies a lot; the trained policy adds 0.05 on every prompt (plus small noise).
        var rng = new Random(3);
        var difficulty = Enumerable.Range(0, 60).Select(_ => rng.NextDouble()).ToArray();
        var before = Set(difficulty.Select(d => new[] { d, d }).ToArray());
        var after = Set(difficulty.Select(d => new[] { d + 0.05 + 0.01 * (rng.NextDouble() - 0.5), d + 0.05 }).ToArray());
        var a = Bootstrap.Intervals(Reward, after)["mean_score"];
        var b = Bootstrap.Intervals(Reward, before)["mean_score"];
        Assert.True(a.Low < b.High, "unpaired, the two intervals overlap");
        var d = Bootstrap.PairedDifference(Reward, after, before)["mean_score"];
        Assert.InRange(d.Estimate, 0.049, 0.051);
        Assert.True(d.AboveZero && d.High < 0.06, d.ToString());
        var same = Bootstrap.PairedDifference(Reward, before, before)["mean_score"];
        Assert.Equal((0.0, 0.0, 0.0), (same.Estimate, same.Low, same.High));
        Assert.Throws<ArgumentException>(() => Bootstrap.PairedDifference(Reward, before, Set([[0.1]])));
    }

    [Fact]
    public void TheAblationTablePoolsSeedsAndPairsEachVariantWithTheBaseline()
    {
        var rng = new Random(7);
        var difficulty = Enumerable.Range(0, 40).Select(_ => rng.NextDouble() * 0.5).ToArray();
        ScoredSet Run(double gain) => Set(difficulty.Select(d => new[] { d + gain + 0.02 * rng.NextDouble(), d + gain }).ToArray(), "region-heldout");
        var vanilla = new[] { Run(0), Run(0.01), Run(0) };
        var better = new[] { Run(0.2), Run(0.21), Run(0.19) };
        var same = new[] { Run(0), Run(0.005), Run(0.01) };
        var md = AblationTable.Markdown([("vanilla GRPO", vanilla), ("full", better), ("+X", same)], Reward, "vanilla GRPO", Run(0), resamples: 500);
        var lines = md.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        // Without report metrics named by the run: the reward's mean score, as the headline.
        Assert.Equal("| variant | seeds | reward (eval prompts) | reward (eval prompts) minus vanilla GRPO (paired) | verdict |", lines[0]);
        Assert.StartsWith("| base model | - | 0.", lines[2]);
        Assert.Matches(@"^\| full \| 3 \| 0\.\d{4} \[0\.\d{4}, 0\.\d{4}\] \| \+0\.\d{4} \[\+0\.\d{4}, \+0\.\d{4}\] \| helps \|$", lines[4]);
        Assert.Equal("helps", AblationTable.Verdict(new Interval(0.1, 0.02, 0.2)));
        Assert.Equal("hurts", AblationTable.Verdict(new Interval(-0.1, -0.2, -0.01)));
        Assert.Equal("no measurable effect", AblationTable.Verdict(new Interval(0.01, -0.02, 0.05)));
    }

    [Fact]
    public void TheHeadlineColumnCarriesThePairedDifferenceAndItsVerdict()
    {
        var rng = new Random(11);
        var difficulty = Enumerable.Range(0, 40).Select(_ => rng.NextDouble()).ToArray();
        // A summarizing stand-in: word_accuracy = mean score, so the headline facet exists.
        var reward = new FacetReward();
        ScoredSet Run(double gain) => Set(difficulty.Select(d => new[] { d + gain, d + gain + 0.01 }).ToArray(), "region-heldout");
        ReportMetric[] ocr = [new() { Key = "word_accuracy", Label = "Word Acc" }, new() { Key = "facet/heldout/word_accuracy", Label = "held-out Word Acc", Headline = true }];
        var md = AblationTable.Markdown([("vanilla GRPO", new[] { Run(0), Run(0) }), ("full", new[] { Run(0.1), Run(0.1) }), ("+Y", new[] { Run(0), Run(0) })], reward, "vanilla GRPO", null,
            resamples: 300, metrics: ocr);
        var lines = md.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.EndsWith("| held-out Word Acc minus vanilla GRPO (paired) | verdict |", lines[0]);
        Assert.Contains("| +0.1000 [+0.1000, +0.1000] | helps |", lines[3]);
        Assert.Contains("| 0 [0, 0] | no measurable effect |", lines[4]);
        Assert.EndsWith("| - | - |", lines[2]); // the baseline is not paired with itself
    }

    [Fact]
    public void AnotherPromptSetWithoutTheHeadlineMetricIsPairedOnItsFirstColumn()
    {
        // The out-of-distribution set has no held-out facet: its table pairs on the first configured column present.
        var reward = new FacetReward();
        ScoredSet Run(double gain) => Set(Enumerable.Range(0, 30).Select(p => new[] { 0.3 + 0.01 * (p % 5) + gain }).ToArray());
        ReportMetric[] ocr = [new() { Key = "facet/heldout/word_accuracy", Label = "held-out", Headline = true }, new() { Key = "word_accuracy", Label = "word_accuracy" }];
        var md = AblationTable.Markdown([("vanilla GRPO", new[] { Run(0) }), ("full", new[] { Run(-0.2) })], reward, "vanilla GRPO", null, resamples: 300, metrics: ocr);
        var lines = md.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("| variant | seeds | word_accuracy | word_accuracy minus vanilla GRPO (paired) | verdict |", lines[0]);
        Assert.EndsWith("| hurts |", lines[3]);
    }

    private sealed class FacetReward : ISummarizingReward
    {
        public string Name => "facet";
        public Task<IReadOnlyList<RewardResult>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellationToken = default) => throw new NotSupportedException();
        public IReadOnlyDictionary<string, double> Summarize(IReadOnlyList<RewardResult> results) =>
            new Dictionary<string, double> { ["word_accuracy"] = results.Average(r => r.Score) };
    }

    [Fact]
    public async Task TheEvaluatorSamplesSeveralImagesPerPromptFromTheEvaluationSeedAndReportsIntervals()
    {
        using var policy = new TinyNextScalePolicy(seed: 1);
        var prompts = Enumerable.Range(0, 5).Select(i => new PromptRecord($"prompt {i}", new Dictionary<string, string>())).ToList();
        var a = await PolicyEvaluator.EvaluateAsync(policy, Reward, prompts, new SamplingOptions { Seed = 9 }, imagesPerPrompt: 4, batchSize: 8, resamples: 200);
        var b = await PolicyEvaluator.EvaluateAsync(policy, Reward, prompts, new SamplingOptions { Seed = 9 }, imagesPerPrompt: 4, batchSize: 8, resamples: 200);
        Assert.Equal(20, a.Images.Count);
        Assert.Equal([0, 0, 0, 0, 1, 1, 1, 1], a.Set.Prompts.Take(8));
        Assert.True(a.Images.Zip(b.Images).All(p => p.First.Pixels.SequenceEqual(p.Second.Pixels)), "the same evaluation seed gives the same images");
        var ci = a.Intervals["mean_score"];
        Assert.True(ci.Low <= ci.Estimate && ci.Estimate <= ci.High);
        Assert.True(a.Set.SameLayout(b.Set));
    }
}

/// <summary>The ablation's extra variants of the full method (<c>ablate --extra key=value</c>).</summary>
public sealed class AblationVariantTests
{
    private static TrainerOptions Applied(string spec)
    {
        var options = new TrainerOptions();
        AblationVariant.Parse(spec, alpha: 0.7).Apply(options);
        return options;
    }

    [Fact]
    public void EachKeyChangesItsSettingOnTopOfTheFullMethod()
    {
        var full = new TrainerOptions();
        AblationVariant.Standard(0.7)[^1].Apply(full);
        Assert.Equal(0.6, Applied("alpha=0.6").Alpha);
        Assert.Equal(4, Applied("k=4").Vmr.Continuations);
        Assert.Equal(2, Applied("m=2").Vmr.SplitScale);
        Assert.Equal("8x8", Applied("m=8x8").Vmr.SplitResolution);
        Assert.Equal(AlternationSchedule.Coarse, Applied("schedule=coarse").Vmr.Schedule);
        Assert.Equal(2, Applied("epochs=2").InnerEpochs);
        Assert.Equal(0.05, Applied("kl=0.05").KlBeta);
        Assert.Equal(1.0, Applied("cfg=1").Rollout.CfgScale);
        // Everything else is the full method's.
        var epochs = Applied("epochs=2");
        Assert.Equal((full.Alpha, full.Mask.Enabled, full.Vmr.Schedule, full.KlBeta), (epochs.Alpha, epochs.Mask.Enabled, epochs.Vmr.Schedule, epochs.KlBeta));
        Assert.Equal("full, epochs=2", AblationVariant.Parse("epochs=2", 0.7).Name);
    }

    [Theory]
    [InlineData("MP", "+MP|full (VMR+PANW+MP)")]
    [InlineData("vanilla", "vanilla GRPO|vanilla GRPO, G x K samples")]
    [InlineData("G x K", "vanilla GRPO, G x K samples")]
    [InlineData("panw", "+PANW|full (VMR+PANW+MP)")]
    [InlineData("full", "full (VMR+PANW+MP)")]
    [InlineData("sample", "")]
    public void OnlySelectsVariantsByWholeWords(string word, string expected) =>
        Assert.Equal(expected, string.Join('|', AblationVariant.Select(AblationVariant.Standard(0.7), [word]).Select(v => v.Name)));

    [Theory]
    [InlineData("epochs")]
    [InlineData("epochs=two")]
    [InlineData("kl=much")]
    [InlineData("cfg=")]
    [InlineData("k=1.5")]
    [InlineData("schedule=sideways")]
    [InlineData("lr=0.1")]
    public void MalformedOrUnknownSpecsAreOneClearError(string spec)
    {
        var e = Assert.Throws<ArgumentException>(() => AblationVariant.Parse(spec, 0.7));
        Assert.Contains(spec.Split('=')[0], e.Message, StringComparison.Ordinal);
    }
}
