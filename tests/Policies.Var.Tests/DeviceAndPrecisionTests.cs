using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using NextFlowRL.Hosting;
using NextFlowRL.Policies.Var.Model;
using NextFlowRL.Rewards;
using NextFlowRL.Rewards.ImageStats;
using NextFlowRL.Torch.Devices;
using NextFlowRL.Torch.NextScale;
using NextFlowRL.Torch.Precision;
using NextFlowRL.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace NextFlowRL.Policies.Var.Tests;

/// <summary>The one <c>Device</c>/<c>Precision</c> option of TorchSharp components, and autocast.</summary>
[Collection("torch")]
public sealed class DeviceAndPrecisionTests : IDisposable
{
    private readonly string _dir = Tiny.TempDir();

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private string SavedTinyModel()
    {
        var model = Path.Combine(_dir, "model");
        using var p = Tiny.Policy(seed: 5);
        p.Save(model);
        return model;
    }

    private static NextFlowRLHost Host(params (string Key, string Value)[] settings)
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))).Build();
        return NextFlowRLHost.Build(config, b => b.AddVarPolicy().AddImageStatsReward());
    }

    [Fact]
    public void OneTrainingStepKeepsParametersOptimizerStateAndStepTensorsOnTheConfiguredDevice()
    {
        using var host = Host(("Device", "cpu"), ("Policies:var:Device", "cpu"), ("Policies:var:Checkpoint", SavedTinyModel()), ("Rewards:brightness:Target", "1"));
        host.EnsureValidOptions();
        using var policy = host.GetPolicyProvider("var").Load(null);
        using var reference = policy.CreateFrozenCopy();
        var prompts = Path.Combine(_dir, "prompts.jsonl");
        File.WriteAllLines(prompts, ["""{"prompt": "'CAT'"}""", """{"prompt": "'DOG'"}"""]);
        var o = new TrainerOptions
        {
            Policy = "var", TrainPrompts = prompts, EvalPrompts = prompts, Rewards = [new RewardSpec { Name = "brightness" }],
            Steps = 1, PromptsPerStep = 1, GroupSize = 2, MicroBatch = 4, KlBeta = 0.1, Seed = 2,
        };
        o.Vmr.Continuations = 2;
        o.Vmr.SplitScale = 1;
        var ensemble = new RewardEnsemble([(o.Rewards[0], host.GetReward("brightness"))], NullLogger.Instance);
        using var trainer = new GrpoTrainer(o, policy, reference, ensemble, PromptSet.Load(prompts), NullLogger.Instance);
        var step = trainer.RunStep();
        Assert.True(double.IsFinite(step.Metrics["loss"]));
        var devices = trainer.TensorDevices();
        Assert.Equal(["cpu"], devices["parameters"]);
        Assert.Equal(["cpu"], devices["reference"]);
        Assert.Equal(["cpu"], devices["optimizer"]); // AdamW moments exist after the step, beside their parameters
        // The tensors a step makes: rollouts and their log-probs come back on the policy's device.
        var (trajectories, logProbs) = ((ISamplerControl)policy).Run(["'CAT'"], null, new SamplingOptions { Seed = 1 }, new SamplerSettings(RecordLogProbs: true));
        Assert.NotEmpty(logProbs);
        Assert.All(trajectories.Grids, g => Assert.Equal(DeviceType.CPU, g.device_type));
        Assert.All(logProbs, l => Assert.Equal(DeviceType.CPU, l.device_type));
    }

    [Fact]
    public void CudaOnACpuBuildIsReportedAtStartWithTheRebuildCommand()
    {
        Assert.Equal("cpu", TorchDevice.BuildBackend); // the test project's TorchBackend, from the assembly metadata
        using var host = Host(("Policies:var:Device", "cuda"));
        var problems = host.ValidateOptions();
        var p = Assert.Single(problems, e => e.Contains("Policies:var:Device=cuda", StringComparison.Ordinal));
        Assert.Contains("built with TorchBackend=cpu; rebuild with -p:TorchBackend=cuda-windows", p);
    }

    [Fact]
    public void TheRootDeviceIsEveryComponentsDefaultAndAComponentSettingWins()
    {
        using (var host = Host(("Device", "cuda:1")))
            Assert.Contains(host.ValidateOptions(), e => e.Contains("] Device=cuda:1, but this build has no CUDA", StringComparison.Ordinal));
        using (var host = Host(("Device", "cuda"), ("Policies:var:Device", "cpu")))
            Assert.DoesNotContain(host.ValidateOptions(), e => e.Contains("Device", StringComparison.Ordinal));
        using (var host = Host(("Precision", "fp8")))
            Assert.Contains(host.ValidateOptions(), e => e.Contains("Precision must be fp32 or bf16", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("cpu", true, 1, null)]
    [InlineData(" CUDA:0 ", true, 1, null)]
    [InlineData("gpu", true, 1, "must be cpu, cuda or cuda:N")]
    [InlineData("cuda:x", true, 1, "N a device number")]
    [InlineData("cuda:2", true, 2, "has 2 CUDA device(s)")]
    [InlineData("cuda", false, 0, "rebuild with -p:TorchBackend=cuda-windows")]
    public void DeviceNamesAreCheckedAgainstTheMachine(string text, bool available, int count, string? problem)
    {
        var found = TorchDevice.Problem(text, "Device", available, count);
        if (problem is null) Assert.Null(found);
        else Assert.Contains(problem, found);
    }

    [Fact]
    public void RootPrecisionReachesThePolicyAndItsFrozenCopy()
    {
        using var host = Host(("Precision", "bf16"), ("Policies:var:Checkpoint", SavedTinyModel()));
        host.EnsureValidOptions();
        using var policy = (NextScalePolicyBase<TextCondition>)host.GetPolicyProvider("var").Load(null);
        Assert.Equal(TorchPrecision.Bf16, policy.Precision);
        using var copy = (NextScalePolicyBase<TextCondition>)policy.CreateFrozenCopy();
        Assert.Equal(TorchPrecision.Bf16, copy.Precision);
    }

    [Fact]
    public void AutocastLinearDrawsTheSameInitialWeightsAsNnLinear()
    {
        manual_seed(11);
        using var a = nn.Linear(7, 5);
        manual_seed(11);
        using var b = new AutocastLinear(7, 5);
        Assert.True(Tiny.Same(a.weight!, b.weight));
        Assert.True(Tiny.Same(a.bias!, b.bias!));
        Assert.Equal(["weight", "bias"], b.named_parameters().Select(p => p.name));
    }

    [Fact]
    public void Bf16ScopeMultipliesInBfloat16ReturnsFloat32AndGradientsReachFloat32Weights()
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        using var layer = new AutocastLinear(64, 32);
        var x = randn(8, 64);
        var exact = layer.forward(x);
        Tensor mixed;
        using (Autocast.Enter(TorchPrecision.Bf16)) mixed = layer.forward(x);
        Assert.Equal(ScalarType.Float32, mixed.dtype);
        double diff = (mixed - exact).abs().max().item<float>();
        Assert.True(diff > 0 && diff < 0.1, $"bf16 differs by {diff}");
        mixed.sum().backward();
        Assert.Equal(ScalarType.Float32, layer.weight.grad!.dtype);
        Assert.Equal(TorchPrecision.Fp32, Autocast.Precision); // the scope ended
    }

    [Fact]
    public void Bf16SamplingAndTeacherForcedLogProbsAgreeWithinTheStatedTolerance()
    {
        // docs/gpu-and-windows.md states the tolerance: the sampler's log-probs (KV cache) and the update's
        // teacher-forced ones (full recompute) differ only by bf16 rounding, far below the ratio's clip range.
        using var policy = Tiny.Policy(seed: 9);
        policy.Precision = TorchPrecision.Bf16;
        using var scope = NewDisposeScope();
        var (trajectories, sampled) = policy.Run(Tiny.Prompts, null, new SamplingOptions { Seed = 4, CfgScale = 1.0 }, new SamplerSettings(RecordLogProbs: true));
        Assert.Equal(policy.Schedule.Count, sampled.Count);
        var forced = policy.LogProbs(trajectories, 0, policy.Schedule.Count);
        double worst = 0;
        for (int s = 0; s < sampled.Count; s++) worst = Math.Max(worst, (sampled[s] - forced[s]).abs().max().item<float>());
        Assert.True(worst < 0.05, $"bf16 sampler vs teacher-forced log-probs differ by {worst}");
        policy.Precision = TorchPrecision.Fp32;
        var exact = policy.LogProbs(trajectories, 0, policy.Schedule.Count);
        double vsFp32 = 0;
        for (int s = 0; s < sampled.Count; s++) vsFp32 = Math.Max(vsFp32, (forced[s] - exact[s]).abs().max().item<float>());
        Assert.True(vsFp32 > 0 && vsFp32 < 0.1, $"bf16 vs fp32 log-probs differ by {vsFp32}");
    }
}
