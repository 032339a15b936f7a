using TorchSharp.Modules;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace NextFlowRL.Policies.FoundationVar.Model;

// FoundationVision's multi-scale VQ-VAE (vae_ch160v4096z32): field names are the upstream state-dict keys, so the
// official .pth loads as it is. Images are [B, 3, H, W] in [-1, 1]; latents are [B, Cvae, H/16, W/16].

/// <summary>GroupNorm with 32 groups and eps 1e-6, as in the upstream VAE.</summary>
internal static class VaeNorm
{
    public static GroupNorm Create(long channels) => GroupNorm(32, channels, eps: 1e-6);
}

/// <summary>Two 3x3 convolutions with GroupNorm + SiLU before each, and a 1x1 shortcut when the width changes.</summary>
public sealed class ResnetBlock : Module<Tensor, Tensor>
{
    private readonly GroupNorm norm1;
    private readonly Conv2d conv1;
    private readonly GroupNorm norm2;
    private readonly Conv2d conv2;
    private readonly Conv2d? nin_shortcut;

    /// <summary>Creates a block from <paramref name="input"/> to <paramref name="output"/> channels.</summary>
    public ResnetBlock(long input, long output) : base("resnet_block")
    {
        norm1 = VaeNorm.Create(input);
        conv1 = Conv2d(input, output, 3, padding: 1);
        norm2 = VaeNorm.Create(output);
        conv2 = Conv2d(output, output, 3, padding: 1);
        if (input != output) nin_shortcut = Conv2d(input, output, 1);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = conv1.forward(F.silu(norm1.forward(x)));
        h = conv2.forward(F.silu(norm2.forward(h)));
        var shortcut = nin_shortcut is null ? x : nin_shortcut.forward(x);
        return (shortcut + h).MoveToOuterDisposeScope();
    }
}

/// <summary>Single-head self-attention over the spatial sites (1x1 conv q/k/v and output projection), with a residual.</summary>
public sealed class AttnBlock : Module<Tensor, Tensor>
{
    private readonly GroupNorm norm;
    private readonly Conv2d qkv;
    private readonly Conv2d proj_out;
    private readonly long _channels;

    /// <summary>Creates the block for <paramref name="channels"/> channels.</summary>
    public AttnBlock(long channels) : base("attn_block")
    {
        _channels = channels;
        norm = VaeNorm.Create(channels);
        qkv = Conv2d(channels, 3 * channels, 1);
        proj_out = Conv2d(channels, channels, 1);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], h = x.shape[2], w = x.shape[3], c = _channels;
        var parts = qkv.forward(norm.forward(x)).reshape(b, 3, c, h * w);
        var q = parts[.., 0].permute(0, 2, 1);           // [B, HW, C]
        var k = parts[.., 1];                            // [B, C, HW]
        var v = parts[.., 2];                            // [B, C, HW]
        var att = bmm(q, k).mul(Math.Pow(c, -0.5)).softmax(2); // [B, HW(q), HW(k)]
        var o = bmm(v, att.permute(0, 2, 1)).view(b, c, h, w);
        return (x + proj_out.forward(o)).MoveToOuterDisposeScope();
    }
}

/// <summary>2x downsampling: zero pad right/bottom by one, 3x3 convolution with stride 2.</summary>
public sealed class Downsample2x : Module<Tensor, Tensor>
{
    private readonly Conv2d conv;

    /// <summary>Creates the layer.</summary>
    public Downsample2x(long channels) : base("downsample")
    {
        conv = Conv2d(channels, channels, 3, stride: 2);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var padded = F.pad(x, [0, 1, 0, 1]);
        return conv.forward(padded);
    }
}

/// <summary>2x nearest-neighbour upsampling followed by a 3x3 convolution.</summary>
public sealed class Upsample2x : Module<Tensor, Tensor>
{
    private readonly Conv2d conv;

    /// <summary>Creates the layer.</summary>
    public Upsample2x(long channels) : base("upsample")
    {
        conv = Conv2d(channels, channels, 3, padding: 1);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var up = F.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest);
        return conv.forward(up);
    }
}

/// <summary>One resolution level: residual blocks, attention after each block (lowest resolution only), and a resampler.</summary>
public sealed class VaeLevel : Module<Tensor, Tensor>
{
    private readonly ModuleList<ResnetBlock> block;
    private readonly ModuleList<AttnBlock> attn;
    private readonly Module<Tensor, Tensor>? downsample;
    private readonly Module<Tensor, Tensor>? upsample;

    /// <summary>Creates a level of <paramref name="blocks"/> blocks from <paramref name="input"/> to <paramref name="output"/> channels.</summary>
    public VaeLevel(long input, long output, int blocks, bool attention, bool down, bool up) : base("level")
    {
        block = new ModuleList<ResnetBlock>(Enumerable.Range(0, blocks).Select(i => new ResnetBlock(i == 0 ? input : output, output)).ToArray());
        attn = new ModuleList<AttnBlock>(attention ? Enumerable.Range(0, blocks).Select(_ => new AttnBlock(output)).ToArray() : []);
        if (down) downsample = new Downsample2x(output);
        if (up) upsample = new Upsample2x(output);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        for (int i = 0; i < block.Count; i++)
        {
            x = block[i].forward(x);
            if (attn.Count > 0) x = attn[i].forward(x);
        }
        if (downsample is not null) x = downsample.forward(x);
        if (upsample is not null) x = upsample.forward(x);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>The middle of encoder and decoder: block, attention, block.</summary>
public sealed class VaeMiddle : Module<Tensor, Tensor>
{
    private readonly ResnetBlock block_1;
    private readonly AttnBlock? attn_1;
    private readonly ResnetBlock block_2;

    /// <summary>Creates the middle for <paramref name="channels"/> channels.</summary>
    public VaeMiddle(long channels, bool attention) : base("mid")
    {
        block_1 = new ResnetBlock(channels, channels);
        if (attention) attn_1 = new AttnBlock(channels);
        block_2 = new ResnetBlock(channels, channels);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = block_1.forward(x);
        if (attn_1 is not null) h = attn_1.forward(h);
        return block_2.forward(h).MoveToOuterDisposeScope();
    }
}

/// <summary>Image to latent features: conv_in, levels (each downsampling but the last), middle, GroupNorm + SiLU + conv_out.</summary>
public sealed class VaeEncoder : Module<Tensor, Tensor>
{
    private readonly Conv2d conv_in;
    private readonly ModuleList<VaeLevel> down;
    private readonly VaeMiddle mid;
    private readonly GroupNorm norm_out;
    private readonly Conv2d conv_out;

    /// <summary>Creates the encoder of <paramref name="config"/>.</summary>
    public VaeEncoder(VaeConfig config) : base("encoder")
    {
        int levels = config.ChannelMultipliers.Count;
        conv_in = Conv2d(3, config.Channels, 3, padding: 1);
        var list = new List<VaeLevel>();
        long input = config.Channels;
        for (int i = 0; i < levels; i++)
        {
            long output = config.Channels * config.ChannelMultipliers[i];
            list.Add(new VaeLevel(input, output, config.ResBlocks, attention: i == levels - 1 && config.Attention, down: i != levels - 1, up: false));
            input = output;
        }
        down = new ModuleList<VaeLevel>(list.ToArray());
        mid = new VaeMiddle(input, config.MiddleAttention);
        norm_out = VaeNorm.Create(input);
        conv_out = Conv2d(input, config.LatentChannels, 3, padding: 1);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = conv_in.forward(x);
        foreach (var level in down) h = level.forward(h);
        h = mid.forward(h);
        return conv_out.forward(F.silu(norm_out.forward(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>Latent features to image: conv_in, middle, levels from the lowest resolution up (each upsampling but the first), GroupNorm + SiLU + conv_out.</summary>
public sealed class VaeDecoder : Module<Tensor, Tensor>
{
    private readonly Conv2d conv_in;
    private readonly VaeMiddle mid;
    private readonly ModuleList<VaeLevel> up;
    private readonly GroupNorm norm_out;
    private readonly Conv2d conv_out;

    /// <summary>Creates the decoder of <paramref name="config"/>.</summary>
    public VaeDecoder(VaeConfig config) : base("decoder")
    {
        int levels = config.ChannelMultipliers.Count;
        long input = config.Channels * config.ChannelMultipliers[^1];
        conv_in = Conv2d(config.LatentChannels, input, 3, padding: 1);
        mid = new VaeMiddle(input, config.MiddleAttention);
        // up[i] is level i (upstream builds them from the lowest resolution and prepends), run from i = levels-1 to 0.
        var built = new VaeLevel[levels];
        for (int i = levels - 1; i >= 0; i--)
        {
            long output = config.Channels * config.ChannelMultipliers[i];
            built[i] = new VaeLevel(input, output, config.ResBlocks + 1, attention: i == levels - 1 && config.Attention, down: false, up: i != 0);
            input = output;
        }
        up = new ModuleList<VaeLevel>(built);
        norm_out = VaeNorm.Create(input);
        conv_out = Conv2d(input, 3, 3, padding: 1);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor z)
    {
        using var scope = NewDisposeScope();
        var h = mid.forward(conv_in.forward(z));
        for (int i = up.Count - 1; i >= 0; i--) h = up[i].forward(h);
        return conv_out.forward(F.silu(norm_out.forward(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>The refinement conv of a scale's upsampled codes: <c>phi(h) = (1 - r) h + r conv3x3(h)</c>, r = 0.5.</summary>
public sealed class Phi : Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly double _ratio;

    /// <summary>Creates a phi conv on <paramref name="channels"/> channels.</summary>
    public Phi(long channels, double ratio) : base("phi")
    {
        _ratio = ratio;
        weight = new Parameter(zeros(channels, channels, 3, 3));
        bias = new Parameter(zeros(channels));
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor h)
    {
        using var scope = NewDisposeScope();
        var conv = F.conv2d(h, weight, bias, padding: [1, 1]);
        return (h.mul(1 - _ratio) + conv.mul(_ratio)).MoveToOuterDisposeScope();
    }
}

/// <summary>The partially shared phi convs (<c>quant_resi.qresi_ls.N</c>): K convs, each serving the scales nearest its tick.</summary>
public sealed class PhiPartiallyShared : nn.Module
{
    private readonly ModuleList<Phi> qresi_ls;

    /// <summary>Creates <paramref name="count"/> convs.</summary>
    public PhiPartiallyShared(int count, long channels, double ratio) : base("quant_resi")
    {
        qresi_ls = new ModuleList<Phi>(Enumerable.Range(0, count).Select(_ => new Phi(channels, ratio)).ToArray());
        RegisterComponents();
    }

    /// <summary>The conv at index <paramref name="index"/>.</summary>
    public Phi this[int index] => qresi_ls[index];

}

/// <summary>The one fully shared phi conv (<c>quant_resi.qresi</c>).</summary>
public sealed class PhiShared : nn.Module
{
    private readonly Phi qresi;

    /// <summary>Creates the conv.</summary>
    public PhiShared(long channels, double ratio) : base("quant_resi")
    {
        qresi = new Phi(channels, ratio);
        RegisterComponents();
    }

    /// <summary>The conv.</summary>
    public Phi Conv => qresi;
}

/// <summary>
/// The multi-scale residual quantizer (<c>quantize.*</c>): codebook, phi convs and the usage buffer of the official files.
/// </summary>
public sealed class MultiScaleQuantizer : nn.Module
{
    private readonly Embedding embedding;
    private readonly nn.Module quant_resi;
    private readonly VaeConfig _config;

    /// <summary>Creates the quantizer of <paramref name="config"/>.</summary>
    public MultiScaleQuantizer(VaeConfig config) : base("quantize")
    {
        _config = config;
        embedding = Embedding(config.Vocabulary, config.LatentChannels);
        quant_resi = config.PhiSharing switch
        {
            PhiSharing.Shared => (nn.Module)new PhiShared(config.LatentChannels, 0.5),
            PhiSharing.NonShared => new ModuleList<Phi>(Enumerable.Range(0, config.PhiCount).Select(_ => new Phi(config.LatentChannels, 0.5)).ToArray()),
            _ => new PhiPartiallyShared(config.PhiCount, config.LatentChannels, 0.5),
        };
        RegisterComponents();
        // Per-scale code usage statistics of VAE training: unused here, kept so the official files load as they are.
        register_buffer("ema_vocab_hit_SV", zeros(config.UsageRows, config.Vocabulary));
    }

    /// <summary>The codebook <c>[V, Cvae]</c>.</summary>
    public Tensor Codebook => embedding.weight!;

    /// <summary>Code features <c>[B, Cvae, h, w]</c> of tokens <c>[B, h, w]</c>.</summary>
    public Tensor Embed(Tensor tokens)
    {
        using var e = embedding.forward(tokens);
        return e.permute(0, 3, 1, 2).contiguous();
    }

    /// <summary>The phi conv that serves scale <paramref name="scale"/> of <paramref name="scales"/> (see <see cref="PhiTicks.Index"/>).</summary>
    public Module<Tensor, Tensor> PhiFor(int scale, int scales) => quant_resi switch
    {
        PhiShared s => s.Conv,
        PhiPartiallyShared p => p[PhiTicks.Index(_config.PhiCount, scales > 1 ? (double)scale / (scales - 1) : 0)],
        ModuleList<Phi> l => l[PhiTicks.Index(_config.PhiCount, scales > 1 ? (double)scale / (scales - 1) : 0)],
        _ => throw new InvalidOperationException("unknown phi layout"),
    };

    /// <summary>Nearest-code indices <c>[N]</c> of rows <c>[N, C]</c> (squared Euclidean distance, first minimum).</summary>
    public Tensor Nearest(Tensor rows)
    {
        using var scope = NewDisposeScope();
        var e = embedding.weight!;
        var d = rows.square().sum(1, keepdim: true) + e.square().sum(1, keepdim: false);
        d.addmm_(rows, e.t(), beta: 1, alpha: -2);
        return d.argmin(1).MoveToOuterDisposeScope();
    }

}

/// <summary>
/// Which of K phi convs serves a scale: the one whose tick is nearest to the scale's position <c>k / (S - 1)</c> in [0, 1],
/// the first on ties; ticks are K evenly spaced points from <c>1/(3K)</c> to <c>1 - 1/(3K)</c> when K = 4, else from
/// <c>1/(2K)</c> to <c>1 - 1/(2K)</c> (FoundationVision's tick arithmetic, computed the way numpy's linspace does).
/// </summary>
public static class PhiTicks
{
    /// <summary>The ticks of <paramref name="count"/> convs.</summary>
    public static double[] Ticks(int count)
    {
        double start = count == 4 ? 1.0 / 3 / count : 1.0 / 2 / count;
        double stop = 1 - start;
        var ticks = new double[count];
        if (count == 1) { ticks[0] = start; return ticks; }
        double step = (stop - start) / (count - 1);
        for (int i = 0; i < count; i++) ticks[i] = i * step + start;
        ticks[^1] = stop;
        return ticks;
    }

    /// <summary>The index of the conv serving position <paramref name="at"/> in [0, 1].</summary>
    public static int Index(int count, double at)
    {
        var ticks = Ticks(count);
        int best = 0;
        for (int i = 1; i < ticks.Length; i++)
            if (Math.Abs(ticks[i] - at) < Math.Abs(ticks[best] - at)) best = i;
        return best;
    }
}

/// <summary>
/// FoundationVision's VQ-VAE: encoder, <c>quant_conv</c>, multi-scale residual quantizer, <c>post_quant_conv</c>, decoder.
/// For scale k of S the remaining residual is area-downsampled to the scale's grid (not at the last scale), quantized
/// to the nearest code, the codes are bicubic-upsampled back to the latent grid (not at the last scale), refined by the
/// scale's phi, added to the accumulated features and subtracted from the residual.
/// </summary>
public sealed class FoundationVqVae : nn.Module
{
    private readonly VaeEncoder encoder;
    private readonly VaeDecoder decoder;
    private readonly MultiScaleQuantizer quantize;
    private readonly Conv2d quant_conv;
    private readonly Conv2d post_quant_conv;

    /// <summary>Creates a VQ-VAE of <paramref name="config"/> (weights to be loaded).</summary>
    public FoundationVqVae(VaeConfig config) : base("vae")
    {
        Config = config;
        encoder = new VaeEncoder(config);
        decoder = new VaeDecoder(config);
        quantize = new MultiScaleQuantizer(config);
        quant_conv = Conv2d(config.LatentChannels, config.LatentChannels, 3, padding: 1);
        post_quant_conv = Conv2d(config.LatentChannels, config.LatentChannels, 3, padding: 1);
        RegisterComponents();
    }

    /// <summary>The architecture.</summary>
    public VaeConfig Config { get; }

    /// <summary>The quantizer.</summary>
    public MultiScaleQuantizer Quantizer => quantize;

    /// <summary>
    /// The contribution of scale <paramref name="scale"/>'s tokens to the accumulated features: phi(bicubic(embed(tokens)))
    /// on the <paramref name="latent"/> grid (no upsampling at the last scale).
    /// </summary>
    public Tensor TokenFeatures(Tensor tokens, int scale, int scales, (int Height, int Width) latent)
    {
        using var scope = NewDisposeScope();
        var h = quantize.Embed(tokens);
        if (scale != scales - 1) h = F.interpolate(h, size: [latent.Height, latent.Width], mode: InterpolationMode.Bicubic, align_corners: false);
        return quantize.PhiFor(scale, scales).forward(h).MoveToOuterDisposeScope();
    }

    /// <summary>Token grids of images <c>[B, 3, H, W]</c> in [-1, 1] for the grids <paramref name="scales"/> (the last equal to the latent grid).</summary>
    public Tensor[] Encode(Tensor images, IReadOnlyList<(int Height, int Width)> scales)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var f = quant_conv.forward(encoder.forward(images));
        long b = f.shape[0], c = f.shape[1];
        var latent = ((int)f.shape[2], (int)f.shape[3]);
        if (scales[^1] != latent)
            throw new ArgumentException($"The last scale {scales[^1].Height}x{scales[^1].Width} must equal the latent grid {latent.Item1}x{latent.Item2} of {images.shape[2]}x{images.shape[3]} images.");
        var rest = f.clone();
        var tokens = new Tensor[scales.Count];
        for (int k = 0; k < scales.Count; k++)
        {
            var (h, w) = scales[k];
            var z = k != scales.Count - 1 ? F.adaptive_avg_pool2d(rest, [h, w]) : rest;
            var idx = quantize.Nearest(z.permute(0, 2, 3, 1).reshape(-1, c)).view(b, h, w);
            tokens[k] = idx.MoveToOuterDisposeScope();
            rest = rest - TokenFeatures(idx, k, scales.Count, latent);
        }
        return tokens;
    }

    /// <summary>Images <c>[B, 3, H, W]</c> in [-1, 1] from accumulated features (clamped like upstream).</summary>
    public Tensor DecodeFeatures(Tensor accumulated)
    {
        using var scope = NewDisposeScope();
        return decoder.forward(post_quant_conv.forward(accumulated)).clamp(-1, 1).MoveToOuterDisposeScope();
    }

}
