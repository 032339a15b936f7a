using NextFlowRL.Torch.Adapters;
using NextFlowRL.Torch.Precision;
using Xunit;
using static TorchSharp.torch;

namespace NextFlowRL.Policies.Var.Tests;

/// <summary>LoRA adapters on the shared linear layers, exercised on the var policy (nothing here is var-specific).</summary>
[Collection("torch")]
public sealed class LoraTests : IDisposable
{
    private readonly string _dir = Tiny.TempDir();

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private static (TokenTrajectories Tokens, VarPolicy Policy) Setup(int seed = 3)
    {
        var policy = Tiny.Policy(seed);
        return (policy.Sample(Tiny.Prompts, new SamplingOptions { Seed = 5, CfgScale = 1.0 }), policy);
    }

    private static float[] LogProbs(VarPolicy policy, TokenTrajectories t)
    {
        using var scope = NewDisposeScope();
        return policy.LogProbs(t, 0, policy.Schedule.Count).SelectMany(x => x.flatten().data<float>().ToArray()).ToArray();
    }

    private static double MaxDiff(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();

    private static void Perturb(LoraSet lora, int seed)
    {
        manual_seed(seed);
        using (no_grad())
            foreach (var p in lora.Parameters()) p.add_(randn_like(p) * 0.05);
    }

    [Fact]
    public void AnAttachedAdapterChangesNothingBeforeTraining()
    {
        var (tokens, policy) = Setup();
        using var _ = policy;
        var before = LogProbs(policy, tokens);
        using var lora = LoraSet.Attach(policy.AdaptableModule, rank: 4, alpha: 8);
        Assert.Contains("blocks.0.qkv", lora.Layers);
        Assert.True(MaxDiff(before, LogProbs(policy, tokens)) <= 1e-6);
    }

    [Fact]
    public void OnlyAdapterParametersTrainAndTheBaseIsFrozen()
    {
        var (tokens, policy) = Setup();
        using var _ = policy;
        using var lora = LoraSet.Attach(policy.AdaptableModule, rank: 2, alpha: 2);
        Assert.Empty(policy.TrainableParameters()); // the base is frozen
        Assert.Equal(2 * lora.Layers.Count, lora.Parameters().Count);
        using (var scope = NewDisposeScope())
        {
            var loss = -stack(policy.LogProbs(tokens, 0, policy.Schedule.Count).Select(l => l.sum()).ToArray()).sum();
            loss.backward();
        }
        Assert.All(policy.AdaptableModule.parameters(), p => Assert.Null(p.grad));
        Assert.Contains(lora.Parameters(), p => p.grad is not null && p.grad.abs().sum().item<float>() > 0);
        lora.Dispose();
        Assert.NotEmpty(policy.TrainableParameters()); // detaching restores trainability
    }

    [Fact]
    public void OffRunsTheBaseSoTheReferenceNeedsNoCopy()
    {
        var (tokens, policy) = Setup();
        using var _ = policy;
        var basis = LogProbs(policy, tokens);
        using var lora = LoraSet.Attach(policy.AdaptableModule, rank: 4, alpha: 4);
        Perturb(lora, 1);
        var adapted = LogProbs(policy, tokens);
        Assert.True(MaxDiff(basis, adapted) > 1e-3, "a trained adapter changes the policy");
        float[] reference;
        using (LoraSet.Off()) reference = LogProbs(policy, tokens);
        Assert.True(MaxDiff(basis, reference) <= 1e-6);
        Assert.True(LoraSet.Active);
    }

    [Fact]
    public void AdaptersSaveLoadAndMergeRoundTrip()
    {
        var (tokens, policy) = Setup();
        using var _ = policy;
        var lora = LoraSet.Attach(policy.AdaptableModule, rank: 4, alpha: 8);
        Perturb(lora, 2);
        var adapted = LogProbs(policy, tokens);
        var file = Path.Combine(_dir, "adapters.safetensors");
        lora.Save(file);

        using (var fresh = Tiny.Policy(3))
        using (var again = LoraSet.Attach(fresh.AdaptableModule, rank: 4, alpha: 8))
        {
            again.Load(file);
            Assert.True(MaxDiff(adapted, LogProbs(fresh, tokens)) <= 1e-6);
        }
        using (var fresh = Tiny.Policy(3))
        using (var wrong = LoraSet.Attach(fresh.AdaptableModule, rank: 2, alpha: 8))
        {
            var e = Assert.Throws<InvalidDataException>(() => wrong.Load(file));
            Assert.Contains("does not fit these adapters (rank 2", e.Message);
        }

        lora.Merge(); // folded into the weights; the adapters are gone
        Assert.All(policy.AdaptableModule.modules().OfType<AutocastLinear>(), l => Assert.Null(l.Adapter));
        Assert.True(MaxDiff(adapted, LogProbs(policy, tokens)) <= 1e-4);
        var merged = Path.Combine(_dir, "merged");
        policy.Save(merged);
        using var reloaded = (VarPolicy)new VarPolicyProvider("var", new VarPolicyOptions()).Load(merged);
        Assert.True(MaxDiff(adapted, LogProbs(reloaded, tokens)) <= 1e-4);
    }

    [Fact]
    public void TheFineTuneBenchComparesLoraWithFullAndLeavesThePolicyAsItWas()
    {
        var (tokens, policy) = Setup();
        using var _ = policy;
        var results = NextFlowRL.Torch.Benchmarks.FineTuneBench.Run(policy, Tiny.Prompts, batch: 2, steps: 1, rank: 2, alpha: 4);
        Assert.Equal(["lora", "full"], results.Select(r => r.Mode));
        Assert.True(results[0].TrainableParameters < results[1].TrainableParameters / 4);
        Assert.All(results, r => Assert.True(r.StepSeconds > 0));
        Assert.All(policy.AdaptableModule.modules().OfType<AutocastLinear>(), l => Assert.Null(l.Adapter));
        Assert.NotEmpty(policy.TrainableParameters());
    }

    [Theory]
    [InlineData("blocks.0.qkv", true)]
    [InlineData("blocks.3.cross_proj", true)]
    [InlineData("head", false)]
    [InlineData("blocks.0.ada", false)]
    public void DefaultTargetsAreTheAttentionAndMlpProjections(string layer, bool adapted) =>
        Assert.Equal(adapted, LoraSet.Matches(layer, LoraSet.DefaultTargets));

    [Fact]
    public void TargetsMatchingNothingNameTheLayersThereAre()
    {
        using var policy = Tiny.Policy();
        var e = Assert.Throws<ArgumentException>(() => LoraSet.Attach(policy.AdaptableModule, 4, 4, ["nope", "blocks.*.attn"]));
        Assert.Contains("match none of the", e.Message);
        Assert.Contains(".qkv", e.Message);
        Assert.True(LoraSet.Matches("blocks.1.fc2", ["blocks.*.fc*"]));
        Assert.Throws<ArgumentException>(() => LoraSet.Attach(policy.AdaptableModule, 0, 4));
    }
}
