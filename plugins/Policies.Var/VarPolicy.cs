using NextFlowRL.Imaging;
using NextFlowRL.Policies.Var.Model;
using NextFlowRL.Torch.Checkpoints;
using NextFlowRL.Torch.Imaging;
using NextFlowRL.Torch.NextScale;
using TorchSharp.Modules;

namespace NextFlowRL.Policies.Var;

/// <summary>
/// The VAR policy: a multi-scale residual VQ-VAE tokenizer (frozen) and a text-conditioned next-scale transformer
/// (trainable). See the plugin README for the architecture.
/// </summary>
public sealed class VarPolicy : NextScalePolicyBase<TextCondition>
{
    private readonly VarModel _model;
    private readonly string _source;
    private readonly ScaleSchedule _schedule;
    private readonly VarNetwork _network;

    /// <summary>Wraps a loaded model (taken over) living on <paramref name="device"/>.</summary>
    public VarPolicy(VarModel model, string source, Device device, bool frozen = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _source = source;
        Device = device;
        _schedule = model.Config.Tokenizer.Schedule();
        _network = new VarNetwork(model, device);
        model.Tokenizer.eval();
        foreach (var p in model.Tokenizer.parameters()) p.requires_grad = false;
        if (frozen)
        {
            foreach (var p in model.Generator.parameters()) p.requires_grad = false;
        }
        model.Generator.eval();
    }

    /// <summary>The underlying model.</summary>
    public VarModel Model => _model;

    /// <inheritdoc/>
    public override string Name => "var";

    /// <inheritdoc/>
    protected override INextScaleNetwork<TextCondition> Network => _network;

    /// <inheritdoc/>
    public override PolicyInfo Info => new(_model.Config.Name, _model.Config.Tokenizer.ImageSize, _model.Config.Tokenizer.ImageSize,
        _model.Generator.parameters().Sum(p => p.numel()), _source);

    /// <inheritdoc/>
    public override ScaleSchedule Schedule => _schedule;

    /// <inheritdoc/>
    public override Device Device { get; }

    /// <inheritdoc/>
    public override double ForwardFlops(int rows)
    {
        var config = _model.Config;
        double d = config.Generator.Dim, l = config.Tokenizer.Scales.Sum(s => s[0] * s[1]);
        double m = 1 + config.Generator.MaxWords * config.Generator.MaxWordChars, v = config.Tokenizer.CodebookSize;
        double perTokenBlock = 3 * d * d + d * d + d * d + d * d + 2 * config.Generator.MlpRatio * d * d;
        double perRowBlock = 6 * d * d + m * 2 * d * d + 2 * l * l * d + 2 * l * m * d;
        double text = m * (3 * d * d + d * d + 4 * d * d) + 2 * m * m * d + 2 * d * d;
        double macs = rows * (config.Generator.Depth * (l * perTokenBlock + perRowBlock) + l * (d * v + config.Tokenizer.LatentChannels * d + 22 * d) + text);
        return 2 * macs;
    }

    /// <inheritdoc/>
    public override IReadOnlyList<RgbImage> Decode(TokenTrajectories trajectories)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        ArgumentNullException.ThrowIfNull(trajectories);
        if (trajectories.Length != _schedule.Count)
            throw new ArgumentException($"Decoding needs complete trajectories ({_schedule.Count} scales), got {trajectories.Length}.");
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var images = _model.Tokenizer.DecodeTokens(trajectories.Grids.Select(g => g.to(Device)).ToList());
        return ImageTensors.ToImages(images);
    }

    /// <inheritdoc/>
    public override TokenTrajectories Encode(IReadOnlyList<RgbImage> images, IReadOnlyList<string> prompts)
    {
        CheckEncodeInputs(images, prompts, _model.Config.Tokenizer.ImageSize);
        using var x = ImageTensors.FromImages(images, Device);
        return new TokenTrajectories(prompts, _model.Tokenizer.Encode(x));
    }

    /// <inheritdoc/>
    public override nn.Module AdaptableModule => _model.Generator;

    /// <inheritdoc/>
    public override IReadOnlyList<Parameter> TrainableParameters() => _model.Generator.parameters().Where(p => p.requires_grad).ToArray();

    /// <inheritdoc/>
    public override void SetTraining(bool training) => _model.Generator.train(training);

    /// <inheritdoc/>
    public override INextScalePolicy CreateFrozenCopy()
    {
        var copy = new VarModel(_model.Config);
        var state = _model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        StateDictFile.LoadInto(copy.Tokenizer, state.Where(kv => kv.Key.StartsWith("tokenizer.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key["tokenizer.".Length..], kv => kv.Value), _source);
        StateDictFile.LoadInto(copy.Generator, state.Where(kv => kv.Key.StartsWith("generator.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key["generator.".Length..], kv => kv.Value), _source);
        copy.Tokenizer.to(Device);
        copy.Generator.to(Device);
        return new VarPolicy(copy, _source + " (frozen copy)", Device, frozen: true) { Precision = Precision };
    }

    /// <inheritdoc/>
    public override void Save(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        _model.Save(directory);
    }

    /// <inheritdoc/>
    protected override void DisposeModel() => _model.Dispose();
}
