using NextFlowRL.Policies;
using NextFlowRL.Testing;
using TorchSharp.Modules;
using Xunit;

namespace NextFlowRL.Training.Tests;

/// <summary>The TestKit's policy contract checks: a correct policy passes, and each kind of breakage is named.</summary>
[Collection(TorchCollection.Name)]
public sealed class PolicyContractTests
{
    private static readonly string[] Prompts = ["a", "bb", "a"];

    [Fact]
    public void TheTinyPolicyKeepsTheContract()
    {
        using var policy = new TinyNextScalePolicy(seed: 3);
        PolicyContract.CheckAll(policy, dir => TinyNextScalePolicy.Load(dir), Prompts);
    }

    [Fact]
    public void AFrozenCopyThatSharesWeightsIsCaught()
    {
        using var inner = new TinyNextScalePolicy(seed: 3);
        using var broken = new Broken(inner) { SharedFrozenCopy = true };
        var e = Assert.Throws<PolicyContractException>(() => PolicyContract.FrozenCopyScoresAlikeAndDoesNotTrain(broken, Prompts));
        Assert.Contains("shares weights", e.Message);
    }

    [Fact]
    public void AContinuationThatResamplesThePrefixIsCaught()
    {
        using var inner = new TinyNextScalePolicy(seed: 3);
        using var broken = new Broken(inner) { ResampleOnContinue = true };
        var e = Assert.Throws<PolicyContractException>(() => PolicyContract.ContinueKeepsThePrefix(broken, Prompts));
        Assert.Contains("changed prefix scale", e.Message);
    }

    [Fact]
    public void ALoaderThatDropsTheWeightsIsCaught()
    {
        using var policy = new TinyNextScalePolicy(seed: 3);
        var e = Assert.Throws<PolicyContractException>(() => PolicyContract.SaveAndLoadRoundTrip(policy, _ => new TinyNextScalePolicy(seed: 4), Prompts));
        Assert.Contains("after Save and load differ", e.Message);
    }

    /// <summary>Failure injection: the tiny policy with one guarantee broken on purpose.</summary>
    private sealed class Broken(INextScalePolicy inner) : DelegatingPolicy(inner)
    {
        public bool SharedFrozenCopy { get; init; }
        public bool ResampleOnContinue { get; init; }

        public override TokenTrajectories Continue(TokenTrajectories prefix, SamplingOptions options, CancellationToken cancellationToken = default) =>
            ResampleOnContinue ? Inner.Sample(prefix.Prompts, options with { Seed = options.Seed + 100 }, cancellationToken) : Inner.Continue(prefix, options, cancellationToken);

        public override INextScalePolicy CreateFrozenCopy() => SharedFrozenCopy ? new SharedView(Inner) : Inner.CreateFrozenCopy();
    }

    /// <summary>A "frozen copy" that is the same weights, with no trainable parameters reported.</summary>
    private sealed class SharedView(INextScalePolicy inner) : DelegatingPolicy(inner)
    {
        public override IReadOnlyList<Parameter> TrainableParameters() => [];
    }
}
