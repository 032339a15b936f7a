using Microsoft.Extensions.Logging.Abstractions;
using NextFlowRL.Rewards;
using NextFlowRL.Rewards.ImageStats;
using NextFlowRL.Torch.Adapters;
using NextFlowRL.Runs;
using NextFlowRL.Training;
using Xunit;

namespace NextFlowRL.Policies.Var.Tests;

/// <summary><c>Train:Lora</c>: adapters trained on a frozen base, adapters-only checkpoints, resume, merge.</summary>
[Collection("torch")]
public sealed class LoraTrainingTests : IDisposable
{
    private readonly string _dir = Tiny.TempDir();

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private (TrainerOptions Options, VarPolicyProvider Provider) Setup()
    {
        var model = Path.Combine(_dir, "base");
        using (var p = Tiny.Policy(seed: 5)) p.Save(model);
        var prompts = Path.Combine(_dir, "prompts.jsonl");
        File.WriteAllLines(prompts, ["""{"prompt": "'CAT'"}""", """{"prompt": "'DOG'"}"""]);
        var o = new TrainerOptions
        {
            Policy = "var", Checkpoint = model, TrainPrompts = prompts, EvalPrompts = prompts, Evaluate = false,
            Rewards = [new RewardSpec { Name = "brightness" }], Steps = 2, PromptsPerStep = 1, GroupSize = 2, MicroBatch = 4,
            KlBeta = 0.1, LearningRate = 0.05, Seed = 2, CheckpointEvery = 1, SampleEvery = 0,
        };
        o.Vmr.Continuations = 2;
        o.Vmr.SplitScale = 1;
        o.Lora.Rank = 2;
        o.Lora.Alpha = 4;
        return (o, new VarPolicyProvider("var", new VarPolicyOptions()));
    }

    private static TrainingRunRequest Request(TrainerOptions o, VarPolicyProvider provider, string dir, bool resume = false) => new()
    {
        Options = o,
        OutDir = dir,
        Resume = resume,
        PolicyProvider = provider,
        ResolveReward = _ => new ImageStatsReward("brightness", new ImageStatsRewardOptions { Statistic = ImageStatistic.Brightness, Target = 1.0 }),
        Logger = NullLogger.Instance,
    };

    [Fact]
    public async Task ALoraRunTrainsAdaptersOnlyAndCheckpointsHoldThemAlone()
    {
        var (o, provider) = Setup();
        var run = Path.Combine(_dir, "run");
        var summary = await TrainingRun.RunAsync(Request(o, provider, run), CancellationToken.None);
        Assert.Equal(2, summary.CompletedSteps);
        var checkpoint = Path.Combine(run, "checkpoints", "step-000002");
        Assert.True(File.Exists(Path.Combine(checkpoint, LoraFiles.Adapters)));
        Assert.False(Directory.Exists(Path.Combine(checkpoint, "policy")), "a LoRA checkpoint holds no copy of the base");
        Assert.False(Directory.Exists(Path.Combine(checkpoint, "reference")), "the reference is the base with adapters off");
        var info = LoraFiles.Read(checkpoint);
        Assert.Equal(2, info.Rank);
        Assert.Contains("blocks.0.qkv", info.Layers);

        // The base on disk is untouched; base + adapters differs from it, and merging reproduces base + adapters.
        using var policy = (VarPolicy)provider.Load(o.Checkpoint);
        var tokens = policy.Sample(Tiny.Prompts, new SamplingOptions { Seed = 3, CfgScale = 1.0 });
        float[] LogProbs() => policy.LogProbs(tokens, 0, policy.Schedule.Count).SelectMany(x => x.flatten().data<float>().ToArray()).ToArray();
        var basis = LogProbs();
        var lora = LoraSet.Attach(policy.AdaptableModule, info.Rank, info.Alpha, info.Layers);
        lora.Load(Path.Combine(checkpoint, LoraFiles.Adapters));
        var adapted = LogProbs();
        Assert.True(basis.Zip(adapted, (a, b) => Math.Abs(a - b)).Max() > 1e-6, "training moved the adapters");
        lora.Merge();
        Assert.True(adapted.Zip(LogProbs(), (a, b) => Math.Abs(a - b)).Max() < 1e-4);
    }

    [Fact]
    public async Task AResumedLoraRunReproducesTheUninterruptedMetrics()
    {
        var (o, provider) = Setup();
        var straight = Path.Combine(_dir, "straight");
        await TrainingRun.RunAsync(Request(o, provider, straight), CancellationToken.None);
        var interrupted = Path.Combine(_dir, "interrupted");
        var once = o.Clone();
        once.Steps = 1;
        await TrainingRun.RunAsync(Request(once, provider, interrupted), CancellationToken.None);
        await TrainingRun.RunAsync(Request(o, provider, interrupted, resume: true), CancellationToken.None);
        static List<string> Lines(string run) => File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).ToList();
        var a = Lines(straight).Select(Parse).ToList();
        var b = Lines(interrupted).Select(Parse).ToList();
        Assert.Equal(2, b.Count);
        foreach (var key in a[0].Keys.Where(k => !GrpoTrainer.IsMachineMetric(k)))
            Assert.True(a[0][key].Equals(b[0][key]), $"step 1 {key}: {a[0][key]} vs {b[0][key]}");
        foreach (var key in a[1].Keys.Where(k => !GrpoTrainer.IsMachineMetric(k)))
            Assert.True(a[1][key].Equals(b[1][key]), $"step 2 {key}: {a[1][key]} vs {b[1][key]}");
    }

    private static Dictionary<string, double> Parse(string line) =>
        System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, double>>(line,
            new System.Text.Json.JsonSerializerOptions { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals })!;

    [Fact]
    public void APolicyWithoutAdaptableLayersIsRefusedNamingTheOption()
    {
        var (o, _) = Setup();
        using var policy = new NextFlowRL.Testing.TinyNextScalePolicy(seed: 1);
        var e = Assert.Throws<InvalidDataException>(() => TrainingRun.AttachLora(policy, o, null));
        Assert.Contains("Train:Lora:Rank=2", e.Message);
    }
}
