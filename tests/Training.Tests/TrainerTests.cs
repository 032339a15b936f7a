using NextFlowRL.Imaging;
using NextFlowRL.Policies;
using static TorchSharp.torch;
using Microsoft.Extensions.Logging.Abstractions;
using NextFlowRL.Rewards;
using NextFlowRL.Rewards.ImageStats;
using NextFlowRL.Testing;
using Xunit;
using NextFlowRL.Runs;

namespace NextFlowRL.Training.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchCollection
{
    public const string Name = "torch";
}

/// <summary>The trainer end to end on a tiny real policy and the real brightness reward.</summary>
[Collection(TorchCollection.Name)]
public sealed class TrainerTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nextflow-train-tests", Guid.NewGuid().ToString("N")[..10]);

    public TrainerTests()
    {
        Directory.CreateDirectory(_dir);
        File.WriteAllLines(PromptsPath, Enumerable.Range(0, 6).Select(i => $$"""{"prompt": "a bright square number {{i}}", "bin": "{{(i % 2 == 0 ? "even" : "odd")}}"}"""));
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private string PromptsPath => Path.Combine(_dir, "prompts.jsonl");

    private TrainerOptions Options(Action<TrainerOptions>? change = null)
    {
        var o = new TrainerOptions
        {
            Policy = "tiny",
            TrainPrompts = PromptsPath,
            EvalPrompts = PromptsPath,
            Rewards = [new RewardSpec { Name = "brightness" }],
            Steps = 4,
            PromptsPerStep = 2,
            GroupSize = 4,
            MicroBatch = 5,
            LearningRate = 3e-2,
            KlBeta = 0.01,
            Alpha = 0.7,
            Seed = 3,
            CheckpointEvery = 2,
            SampleEvery = 2,
        };
        o.Vmr.Continuations = 2;
        o.Vmr.SplitScale = 1;
        o.Rollout.CfgScale = 1.0;
        o.Rollout.TopK = 0;
        o.Rollout.Temperature = 1.0;
        change?.Invoke(o);
        return o;
    }

    private static IRewardModel Brightness() => new ImageStatsReward("brightness", new ImageStatsRewardOptions { Statistic = ImageStatistic.Brightness, Target = 1.0 });

    private GrpoTrainer Trainer(TrainerOptions o, TinyNextScalePolicy policy, params (RewardSpec, IRewardModel)[] rewards)
    {
        var ensemble = new RewardEnsemble(rewards.Length > 0 ? rewards : [(o.Rewards[0], Brightness())], NullLogger.Instance);
        return new GrpoTrainer(o, policy, o.KlBeta > 0 ? policy.CreateFrozenCopy() : null, ensemble, PromptSet.Load(PromptsPath), NullLogger.Instance);
    }

    [Theory]
    [InlineData(AlternationSchedule.Joint)]
    [InlineData(AlternationSchedule.Fine)]
    public async Task FirstInnerStepRatioIsExactlyOneAndKlIsZeroBeforeTheFirstUpdate(AlternationSchedule schedule)
    {
        var o = Options(x => { x.Vmr.Schedule = schedule; x.InnerEpochs = 2; });
        using var policy = new TinyNextScalePolicy(seed: 1);
        using var trainer = Trainer(o, policy);
        var first = trainer.RunStep();
        Assert.Equal(0.0, first.Metrics["ratio_first_epoch_max_dev"]);
        Assert.Equal(0.0, first.Metrics["kl"]);
        Assert.True(first.Metrics["grad_norm"] > 0);
        var second = trainer.RunStep();
        Assert.Equal(0.0, second.Metrics["ratio_first_epoch_max_dev"]); // old log-probs are recomputed every step
        Assert.True(second.Metrics["kl"] > 0, "the policy moved, so KL to the reference is positive");
    }

    [Fact]
    public void EveryStepMetricIsPublishedOnTheTrainingMeterTaggedWithRunAndStep()
    {
        using var policy = new TinyNextScalePolicy(seed: 5);
        using var trainer = Trainer(Options(), policy);
        using var other = new TrainingTelemetry.StepListener("another run");
        using var listener = new TrainingTelemetry.StepListener(trainer.RunId);
        // A plain MeterListener, as an OpenTelemetry exporter would subscribe.
        var heard = new Dictionary<string, double>(StringComparer.Ordinal);
        using var meter = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (i, l) => { if (i.Meter.Name == "NextFlowRL.Training") l.EnableMeasurementEvents(i); },
        };
        meter.SetMeasurementEventCallback<double>((i, v, tags, _) =>
        {
            foreach (var t in tags) if (t.Key == TrainingTelemetry.RunTag && (string?)t.Value == trainer.RunId) heard[i.Name] = v;
        });
        meter.Start();
        var result = trainer.RunStep(default);
        var row = listener.Take(1);
        Assert.NotNull(row);
        Assert.Equal(result.Metrics.OrderBy(kv => kv.Key, StringComparer.Ordinal), row!.OrderBy(kv => kv.Key, StringComparer.Ordinal));
        Assert.Equal(result.Metrics.Where(kv => kv.Key != "step").OrderBy(kv => kv.Key, StringComparer.Ordinal), heard.OrderBy(kv => kv.Key, StringComparer.Ordinal));
        Assert.Null(listener.Take(1)); // handed over once
        Assert.Null(other.Take(1)); // another run's listener hears nothing of this one
    }

    [Fact]
    public void TokenProbIsTheLossDistributionsProbabilityOfTheSampledTokens()
    {
        // Without CFG, greedy rollouts take the conditional distribution's most likely token at every site, so their
        // tokens are more probable under it than plain samples' tokens.
        double TokenProb(int topK)
        {
            var o = Options(x => { x.Vmr.Schedule = AlternationSchedule.Joint; x.Rollout.CfgScale = 0; x.Rollout.TopK = topK; x.Mask.Enabled = false; });
            using var policy = new TinyNextScalePolicy(seed: 1);
            using var trainer = Trainer(o, policy);
            return trainer.RunStep().Metrics["token_prob"];
        }
        double plain = TokenProb(0), greedy = TokenProb(1);
        Assert.InRange(plain, 1e-6, 1.0);
        Assert.InRange(greedy, 1e-6, 1.0);
        Assert.True(greedy > plain, $"greedy {greedy} vs plain {plain}");
    }

    [Fact]
    public void GuidedLossScoresTheSampledTokensUnderTheRolloutsDistribution()
    {
        // Rollouts at cfg 1 and temperature 0.5 are sharper than the plain conditional distribution: their tokens are more
        // probable under their own (guided) distribution, and the first inner step's ratio is still exactly 1.
        StepResult Run(LossDistribution distribution)
        {
            var o = Options(x => { x.Vmr.Schedule = AlternationSchedule.Joint; x.LossDistribution = distribution; x.Rollout.CfgScale = 1; x.Rollout.Temperature = 0.5; x.Mask.Enabled = false; });
            using var policy = new TinyNextScalePolicy(seed: 1);
            using var trainer = Trainer(o, policy);
            return trainer.RunStep();
        }
        var conditional = Run(LossDistribution.Conditional);
        var guided = Run(LossDistribution.Guided);
        Assert.Equal(conditional.Metrics["reward_mean"], guided.Metrics["reward_mean"]); // same rollouts
        Assert.Equal(0.0, guided.Metrics["ratio_first_epoch_max_dev"]);
        Assert.True(guided.Metrics["token_prob"] > conditional.Metrics["token_prob"], $"guided {guided.Metrics["token_prob"]} vs conditional {conditional.Metrics["token_prob"]}");
    }

    [Fact]
    public void GuidedLossWithAPolicyWithoutGuidedLogProbsFailsNamingTheOption()
    {
        var o = Options(x => { x.Vmr.Schedule = AlternationSchedule.Joint; x.LossDistribution = LossDistribution.Guided; x.KlBeta = 0; });
        using var inner = new TinyNextScalePolicy(seed: 1);
        var policy = new PlainLogProbsOnly(inner);
        // Refused when the trainer is built, before any evaluation or rollout.
        var error = Assert.Throws<NotSupportedException>(() =>
            new GrpoTrainer(o, policy, null, new RewardEnsemble([(o.Rewards[0], Brightness())], NullLogger.Instance), PromptSet.Load(PromptsPath), NullLogger.Instance));
        Assert.Contains("'plain-only'", error.Message);
        Assert.Contains("Train:LossDistribution=Conditional", error.Message);
        // The same policy trains with the conditional loss.
        o.LossDistribution = LossDistribution.Conditional;
        using var trainer = new GrpoTrainer(o, policy, null, new RewardEnsemble([(o.Rewards[0], Brightness())], NullLogger.Instance), PromptSet.Load(PromptsPath), NullLogger.Instance);
        Assert.True(double.IsFinite(trainer.RunStep().Metrics["loss"]));
    }

    /// <summary>A policy that keeps the contract's default <c>GuidedLogProbs</c> (delegates everything else).</summary>
    private sealed class PlainLogProbsOnly(INextScalePolicy inner) : INextScalePolicy
    {
        public string Name => "plain-only";
        public PolicyInfo Info => inner.Info;
        public ScaleSchedule Schedule => inner.Schedule;
        public Device Device => inner.Device;
        public TokenTrajectories Sample(IReadOnlyList<string> prompts, SamplingOptions options, CancellationToken cancellationToken = default) => inner.Sample(prompts, options, cancellationToken);
        public TokenTrajectories Continue(TokenTrajectories prefix, SamplingOptions options, CancellationToken cancellationToken = default) => inner.Continue(prefix, options, cancellationToken);
        public IReadOnlyList<Tensor> LogProbs(TokenTrajectories trajectories, int firstScale, int endScale) => inner.LogProbs(trajectories, firstScale, endScale);
        public IReadOnlyList<RgbImage> Decode(TokenTrajectories trajectories) => inner.Decode(trajectories);
        public IReadOnlyList<TorchSharp.Modules.Parameter> TrainableParameters() => inner.TrainableParameters();
        public void SetTraining(bool training) => inner.SetTraining(training);
        public INextScalePolicy CreateFrozenCopy() => inner.CreateFrozenCopy();
        public void Save(string directory) => inner.Save(directory);
        public void Dispose() { }
    }

    [Fact]
    public void BetaZeroSkipsTheReference()
    {
        var o = Options(x => x.KlBeta = 0);
        using var policy = new TinyNextScalePolicy(seed: 1);
        using var trainer = new GrpoTrainer(o, policy, null, new RewardEnsemble([(o.Rewards[0], Brightness())], NullLogger.Instance), PromptSet.Load(PromptsPath), NullLogger.Instance);
        var result = trainer.RunStep();
        Assert.Equal(0.0, result.Metrics["kl"]);
        Assert.Throws<ArgumentException>(() => new GrpoTrainer(Options(), policy, null, new RewardEnsemble([], NullLogger.Instance), PromptSet.Load(PromptsPath), NullLogger.Instance));
    }

    [Fact]
    public void LiteralVmrStepsAlternateAndUseTheirOwnScaleRanges()
    {
        var o = Options(x => { x.Steps = 4; x.Vmr.Schedule = AlternationSchedule.Fine; x.Vmr.Reuse = RolloutReuse.Literal; });
        using var policy = new TinyNextScalePolicy(seed: 2);
        using var trainer = Trainer(o, policy);
        var steps = Enumerable.Range(0, 4).Select(_ => trainer.RunStep()).ToList();
        Assert.Equal([UpdateKind.Prefix, UpdateKind.Prefix, UpdateKind.Prefix, UpdateKind.Suffix], steps.Select(r => r.Kind));
        Assert.All(steps, r => Assert.Equal(1.0, r.Metrics["updates"]));
        Assert.Equal(1, trainer.Split);
        // 2 prompts x G=4 x K=2 = 16 images per pass, one update each.
        Assert.All(steps, r => Assert.Equal(1.0 / 16, r.Metrics["updates_per_image"]));
    }

    [Fact]
    public void EveryPassFeedsAPrefixUpdateAndEveryThirdASuffixUpdateWithOldLogProbsFromBeforeThePass()
    {
        var o = Options(x => { x.Steps = 6; x.Vmr.Schedule = AlternationSchedule.Fine; x.Vmr.PrefixUpdatesPerSuffix = 3; x.LearningRate = 0.1; });
        using var policy = new TinyNextScalePolicy(seed: 2);
        using var trainer = Trainer(o, policy);
        var steps = Enumerable.Range(0, 6).Select(_ => trainer.RunStep()).ToList();
        Assert.Equal([1.0, 1.0, 2.0, 1.0, 1.0, 2.0], steps.Select(r => r.Metrics["updates"]));
        Assert.All(steps, r => Assert.Equal(UpdateKind.Prefix, r.Kind));
        foreach (var r in new[] { steps[2], steps[5] })
        {
            // The suffix update of the pass trains on the same continuations, with its own loss, groups and statistics.
            Assert.True(r.Metrics["suffix/active_tokens"] > 0);
            Assert.True(double.IsFinite(r.Metrics["suffix/loss"]) && r.Metrics["suffix/grad_norm"] > 0);
            // Its old log-probs predate the prefix step of the same pass, so its first epoch already sees that step.
            Assert.True(r.Metrics["suffix/ratio_first_epoch_max_dev"] > 0, "the suffix's old log-probs must be taken before the prefix step");
            Assert.Equal(0.0, r.Metrics["ratio_first_epoch_max_dev"]);
            Assert.Equal(2.0 / 16, r.Metrics["updates_per_image"]);
        }
        Assert.False(steps[0].Metrics.ContainsKey("suffix/loss"));
    }

    [Fact]
    public void EtaTiedToTheKlWeightGivesTheSofterMaxOfTheContinuations()
    {
        double Middle(bool tie)
        {
            var o = Options(x => { x.KlBeta = 0.01; x.Vmr.Eta = 1; x.Vmr.TieEtaToKlBeta = tie; });
            using var policy = new TinyNextScalePolicy(seed: 2);
            using var trainer = Trainer(o, policy);
            return trainer.RunStep().Metrics["middle_value_mean"];
        }
        // V = eta log mean exp(R/eta) falls with eta: eta = beta = 0.01 is close to the max of the K rewards.
        Assert.True(Middle(true) > Middle(false) + 1e-6);
        Assert.Contains(Options(x => { x.KlBeta = 0; x.Vmr.TieEtaToKlBeta = true; }).Validate(), e => e.Contains("TieEtaToKlBeta"));
    }

    [Fact]
    public async Task ACoarseRunResumedWithMoreStepsKeepsItsPhaseBoundary()
    {
        var o = Options(x => { x.Steps = 4; x.CheckpointEvery = 1; x.Evaluate = false; x.Vmr.Schedule = AlternationSchedule.Coarse; x.Vmr.CoarsePrefixFraction = 0.5; });
        var run = Path.Combine(_dir, "coarse");
        using (var cts = new CancellationTokenSource())
            await TrainingRun.RunAsync(Request(o, run, onStep: r => { if (r.Step == 0) cts.Cancel(); }), cts.Token);
        // The run started as 4 steps (boundary 2); resumed as 8 steps it would be 4 without the saved boundary.
        var longer = Options(x => { x.Steps = 8; x.CheckpointEvery = 1; x.Evaluate = false; x.Vmr.Schedule = AlternationSchedule.Coarse; x.Vmr.CoarsePrefixFraction = 0.5; });
        await TrainingRun.RunAsync(Request(longer, run, resume: true), CancellationToken.None);
        var phases = Metrics(run).Select(m => (UpdateKind)(int)m["phase"]).ToList();
        Assert.Equal([UpdateKind.Prefix, UpdateKind.Prefix, UpdateKind.Suffix, UpdateKind.Suffix, UpdateKind.Suffix, UpdateKind.Suffix, UpdateKind.Suffix, UpdateKind.Suffix], phases);
        var state = File.ReadAllText(Path.Combine(run, "checkpoints", "step-000008", "trainer.json"));
        Assert.Contains("\"coarsePrefixSteps\": 2", state);
    }

    [Fact]
    public void TrainingRaisesTheReward()
    {
        var o = Options(x => { x.Steps = 12; x.KlBeta = 0; x.Vmr.Schedule = AlternationSchedule.Joint; x.LearningRate = 5e-2; });
        using var policy = new TinyNextScalePolicy(seed: 4);
        using var trainer = Trainer(o, policy);
        var rewards = new List<double>();
        for (int i = 0; i < o.Steps; i++) rewards.Add((trainer.RunStep()).Metrics["reward_mean"]);
        Assert.True(rewards.Skip(9).Average() > rewards.Take(3).Average() + 0.05, string.Join(", ", rewards.Select(r => r.ToString("0.000"))));
    }

    [Fact]
    public async Task ResumedRunReproducesTheUninterruptedMetrics()
    {
        var o = Options(x => { x.Steps = 4; x.CheckpointEvery = 2; x.Evaluate = false; });
        var straight = Path.Combine(_dir, "straight");
        var interrupted = Path.Combine(_dir, "interrupted");
        await TrainingRun.RunAsync(Request(o, straight), CancellationToken.None);

        // Stop after two steps (as Ctrl-C would), then resume.
        using (var cts = new CancellationTokenSource())
        {
            var summary = await TrainingRun.RunAsync(Request(o, interrupted, onStep: r => { if (r.Step == 1) cts.Cancel(); }), cts.Token);
            Assert.True(summary.Cancelled);
            Assert.Equal(2, summary.CompletedSteps);
        }
        await TrainingRun.RunAsync(Request(o, interrupted, resume: true), CancellationToken.None);

        var a = Metrics(straight);
        var b = Metrics(interrupted);
        Assert.Equal(4, a.Count);
        Assert.Equal(4, b.Count);
        for (int i = 0; i < 4; i++)
            foreach (var key in a[i].Keys.Where(k => !GrpoTrainer.IsMachineMetric(k)))
                Assert.True(a[i][key].Equals(b[i][key]), $"step {i + 1} {key}: {a[i][key]} vs {b[i][key]}");
    }

    [Fact]
    public async Task RunFolderHoldsEveryArtifact()
    {
        var o = Options(x => { x.Steps = 2; x.CheckpointEvery = 1; x.SampleEvery = 1; });
        var run = Path.Combine(_dir, "run");
        var summary = await TrainingRun.RunAsync(Request(o, run), CancellationToken.None);
        Assert.False(summary.Cancelled);
        foreach (var file in new[] { "config.json", "metrics.jsonl", "metrics.csv", "curves.png", "eval_before.json", "eval_after.json", "summary.json", "samples/step-000001.png", "samples/eval-before.png", "checkpoints/latest" })
            Assert.True(File.Exists(Path.Combine(run, file)), file);
        Assert.Single(Directory.GetFiles(Path.Combine(run, "tensorboard"), "events.out.tfevents.*"));
        Assert.Equal("step-000002", File.ReadAllText(Path.Combine(run, "checkpoints", "latest")));
        Assert.True(summary.Before!.ContainsKey("bin/even/mean_score"));
        // The scored sets are kept: a later process (resume, ablate) rebuilds intervals and paired differences from them.
        var (metrics, set) = TrainingRun.ReadEvalFile(Path.Combine(run, "eval_before.json"));
        Assert.NotNull(set);
        Assert.Equal(summary.Before["count"], set!.Results.Count);
        Assert.Equal(metrics!["mean_score"], summary.Before["mean_score"]);
        Assert.True(set.SameLayout(TrainingRun.ReadEvalFile(Path.Combine(run, "eval_after.json")).Set!));
        Assert.NotNull(summary.Delta);
        Assert.True(summary.Delta!["mean_score"].Low <= summary.Delta["mean_score"].Estimate);
        var again = await Assert.ThrowsAsync<InvalidDataException>(() => TrainingRun.RunAsync(Request(o, run), CancellationToken.None));
        Assert.Contains("already holds a run", again.Message);
    }

    [Fact]
    public async Task FurtherSetsAndReadersAreEvaluatedOnTheSameImagesAndPairedBeforeAndAfter()
    {
        var other = Path.Combine(_dir, "other.jsonl");
        File.WriteAllLines(other, Enumerable.Range(0, 3).Select(i => $$"""{"prompt": "an unseen prompt {{i}}", "bin": "x-{{i % 2}}"}"""));
        var o = Options(x => { x.Steps = 1; x.EvalImagesPerPrompt = 2; x.EvalSets["ood"] = other; x.EvalReaders = ["darkness"]; });
        var run = Path.Combine(_dir, "further");
        var statuses = new List<string>();
        var request = new TrainingRunRequest
        {
            Options = o,
            OutDir = run,
            PolicyProvider = new TinyPolicyProvider(seed: 9),
            ResolveReward = name => name == "darkness"
                ? new ImageStatsReward("darkness", new ImageStatsRewardOptions { Statistic = ImageStatistic.Brightness, Target = 0.0 })
                : Brightness(),
            Logger = NullLogger.Instance,
            OnStatus = statuses.Add,
        };
        var summary = await TrainingRun.RunAsync(request, CancellationToken.None);
        Assert.Equal(["eval/darkness", "ood/brightness", "ood/darkness"], summary.Evaluations.Select(e => $"{e.Set}/{e.Reader}").Order(StringComparer.Ordinal));
        foreach (var e in summary.Evaluations)
        {
            Assert.NotNull(e.Before);
            Assert.NotNull(e.After);
            Assert.NotNull(e.Delta);
            Assert.Equal(e.Set == "ood" ? 6 : 12, e.After!["count"]);
            Assert.Equal(e.After["mean_score"] - e.Before!["mean_score"], e.Delta!["mean_score"].Estimate, 9);
        }
        foreach (var when in new[] { "before", "after" })
        {
            var main = EvalFile.Read(Path.Combine(run, $"eval_{when}.json"))!;
            var second = EvalFile.Read(Path.Combine(run, $"eval_{when}.eval.darkness.json"))!;
            // The second reader scored the same images (the measured brightness is the same image for image) to another target.
            Assert.True(main.Set!.SameLayout(second.Set!));
            var (a, b) = (main.Set.RewardResults(), second.Set!.RewardResults());
            for (int i = 0; i < a.Count; i++)
                Assert.Equal(a[i].Components["brightness"], b[i].Components["brightness"], 12);
            Assert.NotEqual(a.Select(r => r.Score), b.Select(r => r.Score));
            Assert.NotNull(EvalFile.Read(Path.Combine(run, $"eval_{when}.ood.brightness.json"))?.Set);
        }
        Assert.Equal([("eval", "darkness"), ("ood", "brightness"), ("ood", "darkness")], EvalFile.Further(run));
        Assert.True(File.Exists(Path.Combine(run, "samples", "eval-after.ood.png")));
        Assert.Contains(statuses, s => s.Contains("'ood' prompts", StringComparison.Ordinal) && s.Contains("read by brightness and darkness", StringComparison.Ordinal));
        Assert.Contains("\"ood/darkness\"", File.ReadAllText(Path.Combine(run, "summary.json")));
        // The run report has a section per further set and reader, with the paired difference and the bins.
        var report = NextFlowRL.Runs.Reporting.RunData.Read(run);
        Assert.Equal(["eval/darkness", "ood/brightness", "ood/darkness"], report.Further.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(summary.Evaluations.Single(e => e.Set == "ood" && e.Reader == "darkness").Delta!["mean_score"].Estimate, report.Further["ood/darkness"].Delta!["mean_score"].Value, 9);
        var html = File.ReadAllText(Path.Combine(run, "report.html"));
        Assert.Contains("Prompt set &#39;ood&#39;, read by darkness", html);
        Assert.Contains("bin/x-1/mean_score", html);
    }

    [Fact]
    public void EvaluationSetAndReaderNamesAreChecked()
    {
        var o = Options(x => { x.EvalSets["eval"] = "a.jsonl"; x.EvalSets["bad name"] = "b.jsonl"; x.EvalSets["off"] = " "; x.EvalReaders = ["brightness", "x.y", ""]; });
        var errors = string.Join("\n", o.Validate());
        Assert.Contains("Train:EvalSets:eval", errors);
        Assert.Contains("Train:EvalSets:bad name", errors);
        Assert.DoesNotContain("Train:EvalSets:off", errors); // an empty value turns a set off
        Assert.Contains("Train:EvalReaders:1", errors);
        Assert.DoesNotContain("Train:EvalReaders:2", errors);
        Assert.Contains("names a reader twice", errors);
        Assert.Equal(["bad name", "eval"], o.ActiveEvalSets.Select(kv => kv.Key));
        Assert.Equal(["brightness", "x.y"], o.ActiveEvalReaders);
        Assert.Empty(Options(x => { x.EvalSets["ood_2"] = "a.jsonl"; x.EvalReaders = ["ocr-block"]; }).Validate());
        Assert.Equal("eval_after.json", EvalFile.FileName("after"));
        Assert.Equal("eval_before.ood.ocr-block.json", EvalFile.FileName("before", "ood", "ocr-block", main: false));
    }

    [Fact]
    public async Task CorruptCheckpointIsRefusedWithOneClearMessage()
    {
        var o = Options(x => { x.Steps = 1; x.Evaluate = false; });
        var run = Path.Combine(_dir, "corrupt");
        await TrainingRun.RunAsync(Request(o, run), CancellationToken.None);
        File.WriteAllText(Path.Combine(run, "checkpoints", "step-000001", "trainer.json"), "{ not json");
        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => TrainingRun.RunAsync(Request(Options(x => { x.Steps = 2; x.Evaluate = false; }), run, resume: true), CancellationToken.None));
        Assert.Contains("trainer.json is corrupt", ex.Message);
        var none = await Assert.ThrowsAsync<InvalidDataException>(() => TrainingRun.RunAsync(Request(o, Path.Combine(_dir, "empty"), resume: true), CancellationToken.None));
        Assert.Contains("no checkpoint", none.Message);
    }

    [Fact]
    public void MemoryStaysFlatOverManySteps()
    {
        var o = Options(x => { x.Steps = 40; x.KlBeta = 0.01; });
        using var policy = new TinyNextScalePolicy(seed: 5);
        using var trainer = Trainer(o, policy);
        for (int i = 0; i < 5; i++) trainer.RunStep();
        long before = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 30; i++) trainer.RunStep();
        long after = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Assert.True(after - before <= 0, $"live tensors grew from {before} to {after} over 30 steps");
    }

    private TrainingRunRequest Request(TrainerOptions o, string dir, bool resume = false, Action<StepResult>? onStep = null) => new()
    {
        Options = o,
        OutDir = dir,
        Resume = resume,
        PolicyProvider = new TinyPolicyProvider(seed: 9),
        ResolveReward = _ => Brightness(),
        Logger = NullLogger.Instance,
        OnStep = onStep,
    };

    private static List<Dictionary<string, double>> Metrics(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
            .Select(l => System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, double>>(l, new System.Text.Json.JsonSerializerOptions { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals })!)
            .ToList();
}
