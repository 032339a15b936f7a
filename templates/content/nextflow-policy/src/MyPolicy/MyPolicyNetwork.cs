using NextFlowRL.Policies;
using NextFlowRL.Torch.NextScale;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MyPolicy;

/// <summary>Shape of the backbone; saved beside the weights.</summary>
public sealed record MyPolicyConfig
{
    /// <summary>Token grid side per scale, coarse to fine.</summary>
    public int[] Sides { get; init; } = [1, 2, 4, 8];

    /// <summary>Codebook size.</summary>
    public int Vocab { get; init; } = 16;

    /// <summary>Channels of the token features.</summary>
    public int Channels { get; init; } = 8;

    /// <summary>Width of the hidden layer.</summary>
    public int Dim { get; init; } = 32;

    /// <summary>Pixels per token of the finest grid.</summary>
    public int PixelsPerToken { get; init; } = 4;
}

/// <summary>
/// A deliberately small backbone to replace with yours. It has what the shared sampler needs
/// (<see cref="INextScaleNetwork{TCondition}"/>): a prompt encoder (a bag of characters), the input embedding of each
/// scale (start token, or the accumulated features through the previous scale, downsampled), logits per position (an
/// MLP here; a real backbone runs its transformer with the given block-causal mask and KV cache), and the tokenizer's
/// feature arithmetic (codebook features upsampled to the finest grid, area-downsampled back).
/// </summary>
public sealed class MyPolicyNetwork : nn.Module, INextScaleNetwork<Tensor>
{
    private readonly Embedding _chars;
    private readonly Parameter _start;
    private readonly Embedding _level;
    private readonly Linear _input;
    private readonly Linear _hidden;
    private readonly Linear _head;
    private readonly Embedding _codebook;
    private readonly Linear _toRgb;

    /// <summary>Creates the network with weights drawn from torch's current random state.</summary>
    public MyPolicyNetwork(MyPolicyConfig config) : base("my_policy")
    {
        Config = config;
        Schedule = ScaleSchedule.Square(config.Sides);
        _chars = nn.Embedding(128, config.Dim);
        _start = nn.Parameter(randn(1, 1, config.Dim) * 0.02f);
        _level = nn.Embedding(config.Sides.Length, config.Dim);
        _input = nn.Linear(config.Channels, config.Dim);
        _hidden = nn.Linear(config.Dim, config.Dim);
        _head = nn.Linear(config.Dim, config.Vocab);
        _codebook = nn.Embedding(config.Vocab, config.Channels);
        _toRgb = nn.Linear(config.Channels, 3);
        RegisterComponents();
    }

    /// <summary>The shape.</summary>
    public MyPolicyConfig Config { get; }

    /// <inheritdoc/>
    public ScaleSchedule Schedule { get; }

    /// <inheritdoc/>
    public Device Device => _head.weight!.device;

    /// <inheritdoc/>
    public int Layers => 1;

    /// <summary>Final grid side in pixels.</summary>
    public int ImageSize => Config.Sides[^1] * Config.PixelsPerToken;

    /// <inheritdoc/>
    public Tensor EncodeConditions(IReadOnlyList<string?> prompts)
    {
        using var scope = NewDisposeScope();
        var rows = prompts.Select(p =>
        {
            if (string.IsNullOrEmpty(p)) return zeros(Config.Dim, device: Device); // the unconditional branch of CFG
            using var ids = tensor(p.Select(c => (long)(c % 128)).ToArray(), device: Device);
            return _chars.forward(ids).mean([0]);
        }).ToArray();
        return stack(rows).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public Tensor EmbedInput(int scale, Tensor condition, Tensor? features)
    {
        var level = _level.forward(tensor(new long[] { scale }, device: Device)).unsqueeze(0);
        var x = features is null
            ? _start.expand(condition.shape[0], 1, -1)
            : _input.forward(features.flatten(2).transpose(1, 2));
        return x + condition.unsqueeze(1) + level;
    }

    /// <inheritdoc/>
    public Tensor Logits(Tensor x, Tensor condition, Tensor? mask, KvCache? cache) =>
        _head.forward(x + nn.functional.gelu(_hidden.forward(x)));

    /// <inheritdoc/>
    public Tensor TokenFeatures(Tensor tokens, int scale)
    {
        var f = _codebook.forward(tokens).permute(0, 3, 1, 2);
        var side = Config.Sides[^1];
        return nn.functional.interpolate(f, [side, side], mode: InterpolationMode.Nearest);
    }

    /// <inheritdoc/>
    public Tensor DownsampleFeatures(Tensor accumulated, int scale) =>
        nn.functional.adaptive_avg_pool2d(accumulated, [Config.Sides[scale], Config.Sides[scale]]);

    /// <summary>
    /// Accumulated features of the finest grid to an image tensor <c>[B, 3, H, W]</c> in [-1, 1] at pixel resolution
    /// (the range <c>ImageTensors.ToImages</c> takes).
    /// </summary>
    public Tensor ToImage(Tensor accumulated)
    {
        var rgb = nn.functional.sigmoid(_toRgb.forward(accumulated.permute(0, 2, 3, 1))).permute(0, 3, 1, 2) * 2 - 1;
        return rgb.repeat_interleave(Config.PixelsPerToken, 2).repeat_interleave(Config.PixelsPerToken, 3);
    }

    /// <summary>Multiply-adds of one forward pass over every position of <paramref name="rows"/> rows, times 2.</summary>
    public double ForwardFlops(int rows) =>
        2.0 * rows * Schedule.TotalTokens * (Config.Channels * Config.Dim + Config.Dim * Config.Dim + Config.Dim * Config.Vocab);
}
