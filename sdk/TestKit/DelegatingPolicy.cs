using NextFlowRL.Imaging;
using NextFlowRL.Policies;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NextFlowRL.Testing;

/// <summary>
/// A policy that forwards every member to another one: derive from it and override one member to inject a failure
/// (a wrong shape, a frozen copy that shares weights, a missing guided distribution) into an otherwise real policy.
/// Disposing it does not dispose the inner policy.
/// </summary>
public class DelegatingPolicy(INextScalePolicy inner) : INextScalePolicy
{
    /// <summary>The policy forwarded to.</summary>
    protected INextScalePolicy Inner { get; } = inner ?? throw new ArgumentNullException(nameof(inner));

    /// <inheritdoc/>
    public virtual string Name => Inner.Name;

    /// <inheritdoc/>
    public virtual PolicyInfo Info => Inner.Info;

    /// <inheritdoc/>
    public virtual ScaleSchedule Schedule => Inner.Schedule;

    /// <inheritdoc/>
    public virtual Device Device => Inner.Device;

    /// <inheritdoc/>
    public virtual TokenTrajectories Sample(IReadOnlyList<string> prompts, SamplingOptions options, CancellationToken cancellationToken = default) =>
        Inner.Sample(prompts, options, cancellationToken);

    /// <inheritdoc/>
    public virtual TokenTrajectories Continue(TokenTrajectories prefix, SamplingOptions options, CancellationToken cancellationToken = default) =>
        Inner.Continue(prefix, options, cancellationToken);

    /// <inheritdoc/>
    public virtual IReadOnlyList<Tensor> LogProbs(TokenTrajectories trajectories, int firstScale, int endScale) =>
        Inner.LogProbs(trajectories, firstScale, endScale);

    /// <summary>Forwards to the inner policy's <c>GuidedLogProbs</c>; override with the contract's default to drop it.</summary>
    public virtual IReadOnlyList<Tensor> GuidedLogProbs(TokenTrajectories trajectories, int firstScale, int endScale, SamplingOptions guidance) =>
        Inner.GuidedLogProbs(trajectories, firstScale, endScale, guidance);

    /// <inheritdoc/>
    public virtual IReadOnlyList<RgbImage> Decode(TokenTrajectories trajectories) => Inner.Decode(trajectories);

    /// <summary>Forwards to the inner policy's <c>Encode</c>.</summary>
    public virtual TokenTrajectories Encode(IReadOnlyList<RgbImage> images, IReadOnlyList<string> prompts) => Inner.Encode(images, prompts);

    /// <inheritdoc/>
    public virtual IReadOnlyList<Parameter> TrainableParameters() => Inner.TrainableParameters();

    /// <inheritdoc/>
    public virtual void SetTraining(bool training) => Inner.SetTraining(training);

    /// <inheritdoc/>
    public virtual INextScalePolicy CreateFrozenCopy() => Inner.CreateFrozenCopy();

    /// <inheritdoc/>
    public virtual void Save(string directory) => Inner.Save(directory);

    /// <summary>Does nothing: the inner policy belongs to the caller.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Override to release what a derived class owns.</summary>
    protected virtual void Dispose(bool disposing) { }
}
