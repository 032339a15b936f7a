using NextFlowRL.Imaging;
using NextFlowRL.Policies;
using NextFlowRL.Torch.Devices;
using NextFlowRL.Torch.Precision;
using TorchSharp.Modules;

namespace NextFlowRL.Torch.NextScale;

/// <summary>
/// The policy contract on the shared next-scale machinery: a backbone supplies its <see cref="Network"/> (condition
/// encoder, input embeddings, transformer, token features) plus decoding and persistence, and inherits sampling,
/// continuation, plain and guided teacher-forced log-probs and the benchmark hook. Both bundled VAR policies derive
/// from it, so the trainer sees one implementation of everything it relies on.
/// </summary>
/// <typeparam name="TCondition">The backbone's encoded condition of a batch.</typeparam>
public abstract class NextScalePolicyBase<TCondition> : INextScalePolicy, ISamplerControl, Adapters.IAdaptablePolicy
{
    /// <inheritdoc/>
    public abstract nn.Module AdaptableModule { get; }

    /// <summary>The backbone as the shared machinery sees it.</summary>
    protected abstract INextScaleNetwork<TCondition> Network { get; }

    /// <summary>True after <see cref="Dispose()"/>.</summary>
    protected bool IsDisposed { get; private set; }

    /// <inheritdoc/>
    public abstract string Name { get; }

    /// <inheritdoc/>
    public abstract PolicyInfo Info { get; }

    /// <inheritdoc/>
    public abstract ScaleSchedule Schedule { get; }

    /// <inheritdoc/>
    public abstract Device Device { get; }

    /// <summary>
    /// Precision of the matrix products of sampling and of the teacher-forced log-probs (the update): <c>Bf16</c> runs them
    /// in bfloat16 through <see cref="Autocast"/>; log-softmax, sampling and the weights stay float32. Frozen copies keep it.
    /// </summary>
    public TorchPrecision Precision { get; set; } = TorchPrecision.Fp32;

    /// <inheritdoc/>
    public (TokenTrajectories Trajectories, IReadOnlyList<Tensor> LogProbs) Run(IReadOnlyList<string> prompts, IReadOnlyList<Tensor>? prefix,
        SamplingOptions options, SamplerSettings settings, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        using var precision = Autocast.Enter(Precision);
        return NextScaleSampler.Run(Network, prompts, prefix, options, settings, cancellationToken);
    }

    /// <inheritdoc/>
    public abstract double ForwardFlops(int rows);

    /// <inheritdoc/>
    public TokenTrajectories Sample(IReadOnlyList<string> prompts, SamplingOptions options, CancellationToken cancellationToken = default) =>
        Run(prompts, null, options, new SamplerSettings(), cancellationToken).Trajectories;

    /// <inheritdoc/>
    public TokenTrajectories Continue(TokenTrajectories prefix, SamplingOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        return Run(prefix.Prompts, prefix.Grids, options, new SamplerSettings(), cancellationToken).Trajectories;
    }

    /// <inheritdoc/>
    public IReadOnlyList<Tensor> LogProbs(TokenTrajectories trajectories, int firstScale, int endScale)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        using var precision = Autocast.Enter(Precision);
        return NextScaleSampler.LogProbs(Network, trajectories, firstScale, endScale, null);
    }

    /// <inheritdoc/>
    public IReadOnlyList<Tensor> GuidedLogProbs(TokenTrajectories trajectories, int firstScale, int endScale, SamplingOptions guidance)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        ArgumentNullException.ThrowIfNull(guidance);
        using var precision = Autocast.Enter(Precision);
        return NextScaleSampler.LogProbs(Network, trajectories, firstScale, endScale, guidance);
    }

    /// <inheritdoc/>
    public abstract IReadOnlyList<RgbImage> Decode(TokenTrajectories trajectories);

    /// <inheritdoc/>
    public virtual TokenTrajectories Encode(IReadOnlyList<RgbImage> images, IReadOnlyList<string> prompts) =>
        throw new NotSupportedException($"policy '{Name}' has no image encoder");

    /// <summary>
    /// The checks every <see cref="Encode"/> makes before touching the tokenizer: not disposed, one prompt per image, every
    /// image <paramref name="size"/> x <paramref name="size"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Counts differ or an image has the wrong size (named by index).</exception>
    protected void CheckEncodeInputs(IReadOnlyList<RgbImage> images, IReadOnlyList<string> prompts, int size)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(prompts);
        if (images.Count != prompts.Count) throw new ArgumentException($"{images.Count} images but {prompts.Count} prompts.");
        for (int i = 0; i < images.Count; i++)
            if (images[i].Width != size || images[i].Height != size)
                throw new ArgumentException($"image {i} is {images[i].Width}x{images[i].Height}; this model encodes {size}x{size} images");
    }

    /// <inheritdoc/>
    public abstract IReadOnlyList<Parameter> TrainableParameters();

    /// <inheritdoc/>
    public abstract void SetTraining(bool training);

    /// <inheritdoc/>
    public abstract INextScalePolicy CreateFrozenCopy();

    /// <inheritdoc/>
    public abstract void Save(string directory);

    /// <summary>Frees the backbone's modules (called once).</summary>
    protected abstract void DisposeModel();

    /// <inheritdoc/>
    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        DisposeModel();
        GC.SuppressFinalize(this);
    }
}
