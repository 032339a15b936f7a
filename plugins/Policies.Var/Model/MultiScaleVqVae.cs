using TorchSharp.Modules;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace NextFlowRL.Policies.Var.Model;

/// <summary>
/// Multi-scale residual VQ-VAE (VAR's tokenizer scheme). For scale k the remaining residual is area-downsampled to
/// the scale's grid, each site is quantized to its nearest code, the code features are bicubic-upsampled back to the
/// latent grid, refined by a shared convolution <c>phi(x) = 0.5 x + 0.5 conv(x)</c>, added to the accumulated features
/// and subtracted from the residual. The decoder reconstructs from the accumulated features.
/// Images are float tensors <c>[B, 3, H, W]</c> in [-1, 1].
/// </summary>
public sealed class MultiScaleVqVae : nn.Module
{
    private readonly Sequential encoder;
    private readonly Sequential decoder;
    private readonly Embedding codebook;
    private readonly ModuleList<Conv2d> phi;
    private readonly TokenizerConfig _config;
    private readonly ScaleShape[] _scales;

    /// <summary>Creates a randomly initialized tokenizer.</summary>
    public MultiScaleVqVae(TokenizerConfig config) : base("tokenizer")
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        _config = config;
        _scales = config.Schedule().ToArray();
        int c = config.Channels, z = config.LatentChannels;
        if (config.Architecture == "linear")
        {
            // Linear patch tokenizer: encoder/decoder are a patch projection and its transpose (fitted by PCA, see
            // Pretrainer.FitLinearTokenizer); the codebook is fitted by k-means on the multi-scale residuals.
            int patch = 1 << config.Downsamples;
            encoder = Sequential(("patchify", Conv2d(3, z, patch, stride: patch, bias: false)));
            decoder = Sequential(("unpatchify", ConvTranspose2d(z, 3, patch, stride: patch, bias: false)));
        }
        else if (config.Architecture == "patch")
        {
            // Patch tokenizer: all convolutions run on the latent grid (one site per patch), so it trains fast on CPU.
            int patch = 1 << config.Downsamples, hidden = c * 4;
            encoder = Sequential(
                ("patchify", Conv2d(3, hidden, patch, stride: patch)), ("act0", SiLU()),
                ("mid", Conv2d(hidden, hidden, 3, padding: 1)), ("act1", SiLU()),
                ("out", Conv2d(hidden, z, 1)));
            decoder = Sequential(
                ("in", Conv2d(z, hidden, 3, padding: 1)), ("act0", SiLU()),
                ("mid", Conv2d(hidden, hidden, 3, padding: 1)), ("act1", SiLU()),
                ("unpatchify", ConvTranspose2d(hidden, 3, patch, stride: patch)));
        }
        else
        {
            var enc = new List<(string, nn.Module<Tensor, Tensor>)> { ("in", Conv2d(3, c, 3, padding: 1)), ("in_act", SiLU()) };
            int ch = c;
            for (int i = 0; i < config.Downsamples; i++)
            {
                int next = Math.Min(c * (1 << (i + 1)), c * 2);
                enc.Add(($"down{i}", Conv2d(ch, next, 4, stride: 2, padding: 1)));
                enc.Add(($"down{i}_act", SiLU()));
                ch = next;
            }
            enc.Add(("mid", Conv2d(ch, ch, 3, padding: 1)));
            enc.Add(("mid_act", SiLU()));
            enc.Add(("out", Conv2d(ch, z, 1)));
            encoder = Sequential(enc);
            var dec = new List<(string, nn.Module<Tensor, Tensor>)> { ("in", Conv2d(z, ch, 3, padding: 1)), ("in_act", SiLU()), ("mid", Conv2d(ch, ch, 3, padding: 1)), ("mid_act", SiLU()) };
            for (int i = config.Downsamples - 1; i >= 0; i--)
            {
                int next = i == 0 ? c : Math.Min(c * (1 << i), c * 2);
                dec.Add(($"up{i}", Upsample(scale_factor: [2.0, 2.0], mode: UpsampleMode.Nearest)));
                dec.Add(($"up{i}_conv", Conv2d(ch, next, 3, padding: 1)));
                dec.Add(($"up{i}_act", SiLU()));
                ch = next;
            }
            dec.Add(("out", Conv2d(ch, 3, 3, padding: 1)));
            decoder = Sequential(dec);
        }
        codebook = Embedding(config.CodebookSize, z);
        using (no_grad()) codebook.weight!.uniform_(-1.0 / config.CodebookSize, 1.0 / config.CodebookSize);
        phi = new ModuleList<Conv2d>(Enumerable.Range(0, config.PhiCount).Select(_ => Conv2d(z, z, 3, padding: 1)).ToArray());
        if (config.Architecture == "linear")
        {
            // phi starts as the identity (0.5x + 0.5x).
            using var _ = no_grad();
            foreach (var conv in phi)
            {
                conv.weight!.zero_();
                for (int i = 0; i < z; i++) conv.weight![i, i, 1, 1] = tensor(1f);
                conv.bias!.zero_();
            }
        }
        RegisterComponents();
    }

    /// <summary>The architecture.</summary>
    public TokenizerConfig Config => _config;

    /// <summary>The scale grids, coarse to fine.</summary>
    public IReadOnlyList<ScaleShape> Scales => _scales;

    /// <summary>The codebook weights <c>[V, C]</c>.</summary>
    public Tensor Codebook => codebook.weight!;

    /// <summary>Continuous latent features <c>[B, C, h, w]</c> of images.</summary>
    public Tensor EncodeFeatures(Tensor images) => encoder.forward(images);

    /// <summary>Decodes accumulated features to images in [-1, 1] (unclamped).</summary>
    public Tensor DecodeFeatures(Tensor fhat) => decoder.forward(fhat);

    private int PhiIndex(int scale) => _scales.Length == 1 ? 0 : (int)Math.Round((double)scale / (_scales.Length - 1) * (phi.Count - 1));

    /// <summary>Nearest-code indices <c>[B, h, w]</c> of features <c>[B, C, h, w]</c>.</summary>
    public Tensor Quantize(Tensor z)
    {
        using var scope = NewDisposeScope();
        long b = z.shape[0], h = z.shape[2], w = z.shape[3];
        var flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]);
        var e = codebook.weight!;
        var d = flat.pow(2).sum(1, keepdim: true) - 2 * flat.matmul(e.t()) + e.pow(2).sum(1).unsqueeze(0);
        return d.argmin(1).reshape(b, h, w).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The contribution of scale <paramref name="scale"/>'s tokens to the accumulated features:
    /// phi(upsample(embed(tokens))) as <c>[B, C, H, W]</c> on the latent grid.
    /// </summary>
    public Tensor EmbedScale(Tensor tokens, int scale)
    {
        using var scope = NewDisposeScope();
        var h = codebook.forward(tokens).permute(0, 3, 1, 2);
        int n = _config.LatentSize;
        if (h.shape[2] != n || h.shape[3] != n)
            h = F.interpolate(h, size: [n, n], mode: InterpolationMode.Bicubic, align_corners: false);
        var conv = phi[PhiIndex(scale)];
        return (0.5 * h + 0.5 * conv.forward(h)).MoveToOuterDisposeScope();
    }

    /// <summary>Area-downsamples accumulated features to the grid of scale <paramref name="scale"/>.</summary>
    public Tensor Downsample(Tensor fhat, int scale)
    {
        var s = _scales[scale];
        if (fhat.shape[2] == s.Height && fhat.shape[3] == s.Width) return fhat.alias();
        return F.adaptive_avg_pool2d(fhat, [s.Height, s.Width]);
    }

    /// <summary>Token grids per scale of images (no gradients).</summary>
    public Tensor[] Encode(Tensor images)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var f = EncodeFeatures(images);
        var residual = f;
        var tokens = new Tensor[_scales.Length];
        for (int k = 0; k < _scales.Length; k++)
        {
            var idx = Quantize(Downsample(residual, k));
            tokens[k] = idx.MoveToOuterDisposeScope();
            residual = residual - EmbedScale(idx, k);
        }
        return tokens;
    }

    /// <summary>Accumulated features from token grids (the first <c>tokens.Count</c> scales).</summary>
    public Tensor AccumulatedFeatures(IReadOnlyList<Tensor> tokens)
    {
        using var scope = NewDisposeScope();
        Tensor? fhat = null;
        for (int k = 0; k < tokens.Count; k++)
        {
            var e = EmbedScale(tokens[k], k);
            fhat = fhat is null ? e : fhat + e;
        }
        return fhat!.MoveToOuterDisposeScope();
    }

    /// <summary>Decodes complete token grids to images <c>[B, 3, H, W]</c> in [-1, 1].</summary>
    public Tensor DecodeTokens(IReadOnlyList<Tensor> tokens)
    {
        using var scope = NewDisposeScope();
        return DecodeFeatures(AccumulatedFeatures(tokens)).clamp(-1, 1).MoveToOuterDisposeScope();
    }

    /// <summary>Training forward: reconstruction (straight-through) and the VQ loss (codebook + 0.25 * commitment, mean over scales).</summary>
    public (Tensor Reconstruction, Tensor VqLoss) ForwardTrain(Tensor images)
    {
        var f = EncodeFeatures(images);
        var fnog = f.detach();
        Tensor residual = fnog;
        Tensor fhat = zeros_like(f);
        Tensor vq = zeros(1, device: f.device);
        for (int k = 0; k < _scales.Length; k++)
        {
            Tensor idx;
            using (no_grad()) idx = Quantize(Downsample(residual, k));
            var h = EmbedScale(idx, k);
            fhat = fhat + h;
            residual = residual - h.detach();
            vq = vq + F.mse_loss(fhat, fnog) + 0.25 * F.mse_loss(fhat.detach(), f);
        }
        vq = vq / _scales.Length;
        var st = (fhat - f).detach() + f;
        var rec = DecodeFeatures(st);
        return (rec, vq);
    }

    /// <summary>
    /// Residual vectors <c>[N, C]</c> seen at every scale for a batch of images (codebook initialization and restarts),
    /// with the code usage counts <c>[V]</c> of the batch.
    /// </summary>
    public (Tensor Residuals, Tensor Usage) ResidualSamples(Tensor images)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var residual = EncodeFeatures(images);
        var parts = new List<Tensor>();
        var usage = zeros(_config.CodebookSize, dtype: ScalarType.Int64, device: images.device);
        for (int k = 0; k < _scales.Length; k++)
        {
            var z = Downsample(residual, k);
            parts.Add(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]));
            var idx = Quantize(z);
            usage.index_add_(0, idx.flatten(), ones_like(idx.flatten()), 1);
            residual = residual - EmbedScale(idx, k);
        }
        return (cat(parts.ToArray(), 0).MoveToOuterDisposeScope(), usage.MoveToOuterDisposeScope());
    }

    /// <summary>Replaces the codes where <paramref name="dead"/> is true by random rows of <paramref name="candidates"/>.</summary>
    /// <returns>The number of codes replaced.</returns>
    public int ReviveCodes(Tensor dead, Tensor candidates, Generator? generator = null)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var deadIdx = dead.nonzero().flatten();
        int n = (int)deadIdx.shape[0];
        if (n == 0 || candidates.shape[0] == 0) return 0;
        var pick = randint(0, candidates.shape[0], [n], dtype: ScalarType.Int64, generator: generator, device: candidates.device);
        var noise = 0.01 * randn([n, candidates.shape[1]], generator: generator, device: candidates.device);
        codebook.weight!.index_copy_(0, deadIdx, candidates.index_select(0, pick) + noise);
        return n;
    }

    /// <summary>Sets the linear patch encoder/decoder from an orthonormal basis <c>[3*p*p, Z]</c> (linear architecture only).</summary>
    public void SetPatchBasis(Tensor basis)
    {
        if (_config.Architecture != "linear") throw new InvalidOperationException("Only the linear tokenizer has a patch basis.");
        int patch = 1 << _config.Downsamples, z = _config.LatentChannels;
        using var _ = no_grad();
        var enc = (Conv2d)encoder.children().First();
        var dec = (ConvTranspose2d)decoder.children().First();
        var w = basis.t().reshape(z, 3, patch, patch);
        enc.weight!.copy_(w);
        dec.weight!.copy_(w);
    }

    /// <summary>Sets the codebook rows.</summary>
    public void SetCodebook(Tensor codes)
    {
        using var _ = no_grad();
        codebook.weight!.copy_(codes);
    }
}
