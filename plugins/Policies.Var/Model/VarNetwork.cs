using NextFlowRL.Torch.NextScale;

namespace NextFlowRL.Policies.Var.Model;

/// <summary>
/// A <see cref="VarModel"/> on a device as the shared next-scale machinery sees it: the character-level text encoder
/// is the condition, the multi-scale VQ-VAE supplies the token features.
/// </summary>
public sealed class VarNetwork : INextScaleNetwork<TextCondition>
{
    private readonly VarModel _model;

    /// <summary>Wraps <paramref name="model"/> (not owned) living on <paramref name="device"/>.</summary>
    public VarNetwork(VarModel model, Device device)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        Device = device;
        Schedule = model.Config.Tokenizer.Schedule();
    }

    /// <inheritdoc/>
    public ScaleSchedule Schedule { get; }

    /// <inheritdoc/>
    public Device Device { get; }

    /// <inheritdoc/>
    public int Layers => _model.Config.Generator.Depth;

    /// <inheritdoc/>
    public TextCondition EncodeConditions(IReadOnlyList<string?> prompts) => _model.Generator.EncodeText(prompts, Device);

    /// <inheritdoc/>
    public Tensor EmbedInput(int scale, TextCondition condition, Tensor? features) => _model.Generator.EmbedInput(scale, condition, features);

    /// <inheritdoc/>
    public Tensor Logits(Tensor x, TextCondition condition, Tensor? mask, KvCache? cache) => _model.Generator.Forward(x, condition, mask, cache);

    /// <inheritdoc/>
    public Tensor TokenFeatures(Tensor tokens, int scale) => _model.Tokenizer.EmbedScale(tokens, scale);

    /// <inheritdoc/>
    public Tensor DownsampleFeatures(Tensor accumulated, int scale) => _model.Tokenizer.Downsample(accumulated, scale);
}
