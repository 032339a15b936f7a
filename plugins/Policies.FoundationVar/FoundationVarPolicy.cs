using NextFlowRL.Imaging;
using NextFlowRL.Policies.FoundationVar.Model;
using NextFlowRL.Torch.Checkpoints;
using NextFlowRL.Torch.Imaging;
using NextFlowRL.Torch.NextScale;
using TorchSharp.Modules;

namespace NextFlowRL.Policies.FoundationVar;

/// <summary>
/// FoundationVision's class-conditional VAR as a policy: the VQ-VAE (frozen) and the transformer (trainable), loaded
/// from the official state dicts. Prompts are class indices or names (see <see cref="ClassNames"/>); an empty prompt is
/// unconditional. Sampling, guidance and log-probs are the shared next-scale machinery (<see cref="NextScaleSampler"/>).
/// </summary>
public sealed class FoundationVarPolicy : NextScalePolicyBase<Tensor>, INextScaleNetwork<Tensor>
{
    /// <summary>Configuration file of an RL checkpoint directory.</summary>
    public const string ConfigFile = "config.json";

    /// <summary>Transformer weights of an RL checkpoint directory (upstream key layout).</summary>
    public const string TransformerFile = "var.safetensors";

    /// <summary>VQ-VAE weights of an RL checkpoint directory (upstream key layout).</summary>
    public const string VaeFile = "vae.safetensors";

    private readonly FoundationVqVae _vae;
    private readonly VarTransformer _var;
    private readonly ClassNames _classes;
    private readonly string _source;
    private readonly (int Height, int Width) _latent;

    /// <summary>Wraps loaded modules (taken over) that live on <paramref name="device"/>.</summary>
    public FoundationVarPolicy(FoundationVarConfig config, FoundationVqVae vae, VarTransformer transformer, ClassNames classes, string source, Device device, bool frozen = false)
    {
        Config = config ?? throw new ArgumentNullException(nameof(config));
        _vae = vae ?? throw new ArgumentNullException(nameof(vae));
        _var = transformer ?? throw new ArgumentNullException(nameof(transformer));
        _classes = classes ?? throw new ArgumentNullException(nameof(classes));
        _source = source;
        Device = device;
        Schedule = ScaleSchedule.Square(config.Transformer.PatchNums.ToArray());
        _latent = (Schedule.Final.Height, Schedule.Final.Width);
        vae.eval();
        foreach (var p in vae.parameters()) p.requires_grad = false;
        if (frozen)
            foreach (var p in transformer.parameters()) p.requires_grad = false;
        transformer.eval();
    }

    /// <summary>
    /// Builds the policy from the two state dicts (the official <c>var_dNN.pth</c> and <c>vae_ch160v4096z32.pth</c>
    /// layouts, or small random ones): the architecture is inferred from names and shapes, then every tensor is
    /// checked and copied. The dicts stay the caller's.
    /// </summary>
    /// <exception cref="InvalidDataException">A file that is not a FoundationVision state dict, or missing, unexpected or mis-shaped tensors (named).</exception>
    public static FoundationVarPolicy Create(IReadOnlyDictionary<string, Tensor> vae, string vaeSource, IReadOnlyDictionary<string, Tensor> var, string varSource,
        IReadOnlyList<int>? patchNums, ClassNames classes, Device device, string source)
    {
        var config = FoundationVarConfig.Infer(vae, vaeSource, var, varSource, patchNums);
        var vq = new FoundationVqVae(config.Vae);
        var tr = new VarTransformer(config.Transformer);
        try
        {
            StateDictFile.LoadInto(vq, vae, vaeSource);
            StateDictFile.LoadInto(tr, var, varSource);
            vq.to(device);
            tr.to(device);
        }
        catch
        {
            vq.Dispose();
            tr.Dispose();
            throw;
        }
        return new FoundationVarPolicy(config, vq, tr, classes, source, device);
    }

    /// <summary>The inferred architecture.</summary>
    public FoundationVarConfig Config { get; }

    /// <summary>The transformer.</summary>
    public VarTransformer Transformer => _var;

    /// <summary>The VQ-VAE.</summary>
    public FoundationVqVae Vae => _vae;

    /// <inheritdoc/>
    public override string Name => "foundation-var";

    /// <inheritdoc/>
    protected override INextScaleNetwork<Tensor> Network => this;

    /// <inheritdoc/>
    public override PolicyInfo Info => new($"var-d{Config.Transformer.Depth}", Config.ImageSize, Config.ImageSize, _var.parameters().Sum(p => p.numel()), _source);

    /// <inheritdoc/>
    public override ScaleSchedule Schedule { get; }

    /// <inheritdoc/>
    public override Device Device { get; }

    int INextScaleNetwork<Tensor>.Layers => Config.Transformer.Depth;

    /// <summary>The class label of each prompt (the unconditional label for null or empty ones).</summary>
    /// <exception cref="ArgumentException">A prompt that is neither a class index nor a class name.</exception>
    public long[] Labels(IReadOnlyList<string?> prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        int classes = Config.Transformer.Classes;
        return prompts.Select(p =>
        {
            int label = _classes.Resolve(p, classes);
            return (long)(label < 0 ? _var.Unconditional : label);
        }).ToArray();
    }

    Tensor INextScaleNetwork<Tensor>.EncodeConditions(IReadOnlyList<string?> prompts)
    {
        using var labels = tensor(Labels(prompts), device: Device);
        return _var.ClassEmbedding(labels);
    }

    Tensor INextScaleNetwork<Tensor>.EmbedInput(int scale, Tensor condition, Tensor? features) => _var.EmbedInput(scale, condition, features);

    Tensor INextScaleNetwork<Tensor>.Logits(Tensor x, Tensor condition, Tensor? mask, KvCache? cache) => _var.Logits(x, condition, mask, cache);

    /// <inheritdoc cref="INextScaleNetwork{TCondition}.TokenFeatures"/>
    public Tensor TokenFeatures(Tensor tokens, int scale) => _vae.TokenFeatures(tokens, scale, Schedule.Count, _latent);

    /// <inheritdoc cref="INextScaleNetwork{TCondition}.DownsampleFeatures"/>
    public Tensor DownsampleFeatures(Tensor accumulated, int scale)
    {
        var s = Schedule[scale];
        return accumulated.shape[2] == s.Height && accumulated.shape[3] == s.Width
            ? accumulated.alias()
            : nn.functional.adaptive_avg_pool2d(accumulated, [s.Height, s.Width]);
    }

    /// <inheritdoc/>
    public override double ForwardFlops(int rows)
    {
        var t = Config.Transformer;
        double c = t.Width, h = t.MlpHidden, l = Schedule.TotalTokens, v = t.Vocabulary, depth = t.Depth;
        double ada = 6 * c * c; // per row: one AdaLN projection per block, or one shared
        double perBlock = l * (4 * c * c + 2 * c * h) + 2 * l * l * c + (t.SharedAdaLn ? 0 : ada);
        double macs = rows * (depth * perBlock + (t.SharedAdaLn ? ada : 0) + l * (c * v + t.LatentChannels * c) + 2 * c * c);
        return 2 * macs;
    }

    /// <inheritdoc/>
    public override IReadOnlyList<RgbImage> Decode(TokenTrajectories trajectories)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        return ImageTensors.ToImages(_vae.DecodeFeatures(NextScaleSampler.AccumulatedFeatures(this, trajectories)));
    }

    /// <inheritdoc/>
    public override TokenTrajectories Encode(IReadOnlyList<RgbImage> images, IReadOnlyList<string> prompts)
    {
        CheckEncodeInputs(images, prompts, Config.ImageSize);
        using var scope = NewDisposeScope();
        using var x = ImageTensors.FromImages(images, Device);
        var grids = _vae.Encode(x, Schedule.Select(s => (s.Height, s.Width)).ToArray());
        foreach (var g in grids) g.MoveToOuterDisposeScope();
        return new TokenTrajectories(prompts, grids);
    }

    /// <inheritdoc/>
    public override nn.Module AdaptableModule => _var;

    /// <inheritdoc/>
    public override IReadOnlyList<Parameter> TrainableParameters() => _var.parameters().Where(p => p.requires_grad).ToArray();

    /// <inheritdoc/>
    public override void SetTraining(bool training) => _var.train(training);

    /// <inheritdoc/>
    public override INextScalePolicy CreateFrozenCopy()
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        var vq = new FoundationVqVae(Config.Vae);
        var tr = new VarTransformer(Config.Transformer);
        StateDictFile.LoadInto(vq, _vae.state_dict(), _source);
        StateDictFile.LoadInto(tr, _var.state_dict(), _source);
        vq.to(Device);
        tr.to(Device);
        return new FoundationVarPolicy(Config, vq, tr, _classes, _source + " (frozen copy)", Device, frozen: true) { Precision = Precision };
    }

    /// <summary>Writes <c>config.json</c>, <c>var.safetensors</c> and <c>vae.safetensors</c> (upstream key layout), each atomically.</summary>
    public override void Save(string directory)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        Directory.CreateDirectory(directory);
        StateDictFile.WriteSafetensors(Path.Combine(directory, VaeFile), _vae.state_dict());
        StateDictFile.WriteSafetensors(Path.Combine(directory, TransformerFile), _var.state_dict());
        AtomicFile.WriteAllText(Path.Combine(directory, ConfigFile), Config.ToJson());
    }

    /// <inheritdoc/>
    protected override void DisposeModel()
    {
        _vae.Dispose();
        _var.Dispose();
    }
}
