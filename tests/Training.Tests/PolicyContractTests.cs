using NextFlowRL.Imaging;
using NextFlowRL.Policies;
using NextFlowRL.Testing;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

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
    private sealed class Broken(INextScalePolicy inner) : INextScalePolicy
    {
        public bool SharedFrozenCopy { get; init; }
        public bool ResampleOnContinue { get; init; }
        public string Name => inner.Name;
        public PolicyInfo Info => inner.Info;
        public ScaleSchedule Schedule => inner.Schedule;
        public Device Device => inner.Device;
        public TokenTrajectories Sample(IReadOnlyList<string> prompts, SamplingOptions options, CancellationToken cancellationToken = default) => inner.Sample(prompts, options, cancellationToken);
        public TokenTrajectories Continue(TokenTrajectories prefix, SamplingOptions options, CancellationToken cancellationToken = default) =>
            ResampleOnContinue ? inner.Sample(prefix.Prompts, options with { Seed = options.Seed + 100 }, cancellationToken) : inner.Continue(prefix, options, cancellationToken);
        public IReadOnlyList<Tensor> LogProbs(TokenTrajectories trajectories, int firstScale, int endScale) => inner.LogProbs(trajectories, firstScale, endScale);
        public IReadOnlyList<RgbImage> Decode(TokenTrajectories trajectories) => inner.Decode(trajectories);
        public IReadOnlyList<Parameter> TrainableParameters() => inner.TrainableParameters();
        public void SetTraining(bool training) => inner.SetTraining(training);
        public INextScalePolicy CreateFrozenCopy() => SharedFrozenCopy ? new SharedView(inner) : inner.CreateFrozenCopy();
        public void Save(string directory) => inner.Save(directory);
        public void Dispose() { }
    }

    /// <summary>A "frozen copy" that is the same weights, with no trainable parameters reported.</summary>
    private sealed class SharedView(INextScalePolicy inner) : INextScalePolicy
    {
        public string Name => inner.Name;
        public PolicyInfo Info => inner.Info;
        public ScaleSchedule Schedule => inner.Schedule;
        public Device Device => inner.Device;
        public TokenTrajectories Sample(IReadOnlyList<string> prompts, SamplingOptions options, CancellationToken cancellationToken = default) => inner.Sample(prompts, options, cancellationToken);
        public TokenTrajectories Continue(TokenTrajectories prefix, SamplingOptions options, CancellationToken cancellationToken = default) => inner.Continue(prefix, options, cancellationToken);
        public IReadOnlyList<Tensor> LogProbs(TokenTrajectories trajectories, int firstScale, int endScale) => inner.LogProbs(trajectories, firstScale, endScale);
        public IReadOnlyList<RgbImage> Decode(TokenTrajectories trajectories) => inner.Decode(trajectories);
        public IReadOnlyList<Parameter> TrainableParameters() => [];
        public void SetTraining(bool training) { }
        public INextScalePolicy CreateFrozenCopy() => this;
        public void Save(string directory) => inner.Save(directory);
        public void Dispose() { }
    }
}
