using NextFlowRL.Torch.Precision;
using TorchSharp.Modules;
using static TorchSharp.torch.nn;

namespace NextFlowRL.Rewards.Clip;

/// <summary>A CLIP-family dual encoder: projected (unnormalized) image and text features in a joint space.</summary>
public interface IClipEncoder
{
    /// <summary>The architecture.</summary>
    ClipArchitecture Architecture { get; }

    /// <summary>Image features <c>[batch, EmbedDim]</c> of preprocessed pixels <c>[batch, 3, ImageSize, ImageSize]</c>.</summary>
    Tensor EncodeImage(Tensor pixels);

    /// <summary>
    /// Text features <c>[batch, EmbedDim]</c> of token ids <c>[batch, ContextLength]</c> (int64), pooled at
    /// <paramref name="endIndex"/> (<c>[batch]</c>, int64: the position of each end-of-text token).
    /// </summary>
    Tensor EncodeText(Tensor ids, Tensor endIndex);
}

/// <summary>Tensor helpers shared by both layouts.</summary>
internal static class ClipOps
{
    /// <summary>Multi-head attention of projected q, k, v <c>[B, T, D]</c>; <paramref name="mask"/> is added to the scores.</summary>
    public static Tensor Attend(Tensor q, Tensor k, Tensor v, int heads, Tensor? mask)
    {
        long b = q.shape[0], t = q.shape[1], d = q.shape[2], hd = d / heads;
        Tensor Split(Tensor x) => x.view(b, t, heads, hd).transpose(1, 2);
        var scores = Autocast.MatMul(Split(q), Split(k).transpose(-2, -1)) * (1.0 / Math.Sqrt(hd));
        if (mask is not null) scores = scores + mask;
        var attn = functional.softmax(scores, -1);
        return Autocast.MatMul(attn, Split(v)).transpose(1, 2).reshape(b, t, d);
    }

    public static Tensor Activate(Tensor x, ClipActivation act) =>
        act == ClipActivation.QuickGelu ? x * torch.sigmoid(x * 1.702) : functional.gelu(x);

    /// <summary>Causal mask <c>[T, T]</c>: 0 on and below the diagonal, -inf above.</summary>
    public static Tensor CausalMask(long t, Device device) =>
        torch.full(t, t, float.NegativeInfinity, device: device).triu(1);

    /// <summary>Rows of <paramref name="x"/> <c>[B, T, D]</c> at <paramref name="index"/> <c>[B]</c>.</summary>
    public static Tensor Gather(Tensor x, Tensor index) =>
        x.gather(1, index.view(-1, 1, 1).expand(-1, 1, x.shape[2])).squeeze(1);
}

// ---------------------------------------------------------------------------------------------------------------
// Hugging Face CLIPModel layout. Field names are the state-dict keys of transformers' CLIPModel.
// ---------------------------------------------------------------------------------------------------------------

internal sealed class HfAttention : Module<Tensor, Tensor?, Tensor>
{
    private readonly AutocastLinear q_proj, k_proj, v_proj, out_proj;
    private readonly int _heads;

    public HfAttention(int width, int heads) : base(nameof(HfAttention))
    {
        q_proj = AutocastModules.Linear(width, width);
        k_proj = AutocastModules.Linear(width, width);
        v_proj = AutocastModules.Linear(width, width);
        out_proj = AutocastModules.Linear(width, width);
        _heads = heads;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor? mask) =>
        out_proj.forward(ClipOps.Attend(q_proj.forward(x), k_proj.forward(x), v_proj.forward(x), _heads, mask));
}

internal sealed class HfMlp : Module<Tensor, Tensor>
{
    private readonly AutocastLinear fc1, fc2;
    private readonly ClipActivation _act;

    public HfMlp(int width, int hidden, ClipActivation act) : base(nameof(HfMlp))
    {
        fc1 = AutocastModules.Linear(width, hidden);
        fc2 = AutocastModules.Linear(hidden, width);
        _act = act;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => fc2.forward(ClipOps.Activate(fc1.forward(x), _act));
}

internal sealed class HfEncoderLayer : Module<Tensor, Tensor?, Tensor>
{
    private readonly HfAttention self_attn;
    private readonly LayerNorm layer_norm1;
    private readonly HfMlp mlp;
    private readonly LayerNorm layer_norm2;

    public HfEncoderLayer(ClipTowerConfig c) : base(nameof(HfEncoderLayer))
    {
        self_attn = new HfAttention(c.Width, c.Heads);
        layer_norm1 = LayerNorm(c.Width, c.LayerNormEps);
        mlp = new HfMlp(c.Width, c.MlpWidth, c.Activation);
        layer_norm2 = LayerNorm(c.Width, c.LayerNormEps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor? mask)
    {
        x = x + self_attn.forward(layer_norm1.forward(x), mask);
        return x + mlp.forward(layer_norm2.forward(x));
    }
}

internal sealed class HfEncoder : Module<Tensor, Tensor?, Tensor>
{
    private readonly ModuleList<HfEncoderLayer> layers;

    public HfEncoder(ClipTowerConfig c) : base(nameof(HfEncoder))
    {
        layers = new ModuleList<HfEncoderLayer>(Enumerable.Range(0, c.Layers).Select(_ => new HfEncoderLayer(c)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor? mask)
    {
        foreach (var layer in layers) x = layer.forward(x, mask);
        return x;
    }
}

internal sealed class HfTextEmbeddings : Module<Tensor, Tensor>
{
    private readonly Embedding token_embedding, position_embedding;

    public HfTextEmbeddings(ClipArchitecture a) : base(nameof(HfTextEmbeddings))
    {
        token_embedding = Embedding(a.VocabSize, a.Text.Width);
        position_embedding = Embedding(a.ContextLength, a.Text.Width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids) =>
        token_embedding.forward(ids) + position_embedding.forward(torch.arange(ids.shape[1], device: ids.device)).unsqueeze(0);
}

internal sealed class HfTextTransformer : Module<Tensor, Tensor, Tensor>
{
    private readonly HfTextEmbeddings embeddings;
    private readonly HfEncoder encoder;
    private readonly LayerNorm final_layer_norm;

    public HfTextTransformer(ClipArchitecture a) : base(nameof(HfTextTransformer))
    {
        embeddings = new HfTextEmbeddings(a);
        encoder = new HfEncoder(a.Text);
        final_layer_norm = LayerNorm(a.Text.Width, a.Text.LayerNormEps);
        RegisterComponents();
    }

    // ids [B, T], endIndex [B] -> pooled [B, width]
    public override Tensor forward(Tensor ids, Tensor endIndex)
    {
        var x = encoder.forward(embeddings.forward(ids), ClipOps.CausalMask(ids.shape[1], ids.device));
        return ClipOps.Gather(final_layer_norm.forward(x), endIndex);
    }
}

internal sealed class HfVisionEmbeddings : Module<Tensor, Tensor>
{
    private readonly Parameter class_embedding;
    private readonly Conv2d patch_embedding;
    private readonly Embedding position_embedding;

    public HfVisionEmbeddings(ClipArchitecture a) : base(nameof(HfVisionEmbeddings))
    {
        int w = a.Vision.Width, grid = a.ImageSize / a.PatchSize;
        class_embedding = new Parameter(torch.randn(w));
        patch_embedding = Conv2d(3, w, a.PatchSize, stride: a.PatchSize, bias: false);
        position_embedding = Embedding(grid * grid + 1, w);
        RegisterComponents();
    }

    // pixels [B, 3, S, S] -> tokens [B, 1 + grid^2, width]
    public override Tensor forward(Tensor pixels)
    {
        var patches = patch_embedding.forward(pixels).flatten(2).transpose(1, 2);
        var cls = class_embedding.view(1, 1, -1).expand(pixels.shape[0], 1, -1);
        var x = torch.cat(new[] { cls, patches }, 1);
        return x + position_embedding.forward(torch.arange(x.shape[1], device: pixels.device)).unsqueeze(0);
    }
}

internal sealed class HfVisionTransformer : Module<Tensor, Tensor>
{
    private readonly HfVisionEmbeddings embeddings;
    private readonly LayerNorm pre_layrnorm; // sic: the upstream key name
    private readonly HfEncoder encoder;
    private readonly LayerNorm post_layernorm;

    public HfVisionTransformer(ClipArchitecture a) : base(nameof(HfVisionTransformer))
    {
        embeddings = new HfVisionEmbeddings(a);
        pre_layrnorm = LayerNorm(a.Vision.Width, a.Vision.LayerNormEps);
        encoder = new HfEncoder(a.Vision);
        post_layernorm = LayerNorm(a.Vision.Width, a.Vision.LayerNormEps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor pixels)
    {
        var x = encoder.forward(pre_layrnorm.forward(embeddings.forward(pixels)), null);
        return post_layernorm.forward(x[.., 0]);
    }
}

/// <summary>
/// CLIP with the Hugging Face <c>CLIPModel</c> parameter names (<c>text_model.*</c>, <c>vision_model.*</c>,
/// <c>visual_projection.weight</c>, <c>text_projection.weight</c>, <c>logit_scale</c>), so a <c>model.safetensors</c>
/// of e.g. openai/clip-vit-large-patch14 loads unchanged.
/// </summary>
public sealed class HfClipModel : Module, IClipEncoder
{
    private readonly HfTextTransformer text_model;
    private readonly HfVisionTransformer vision_model;
    private readonly AutocastLinear visual_projection;
    private readonly AutocastLinear text_projection;
    private readonly Parameter logit_scale;

    /// <summary>Creates a randomly initialized model of the given architecture.</summary>
    public HfClipModel(ClipArchitecture architecture) : base(nameof(HfClipModel))
    {
        ArgumentNullException.ThrowIfNull(architecture);
        Architecture = architecture;
        text_model = new HfTextTransformer(architecture);
        vision_model = new HfVisionTransformer(architecture);
        visual_projection = AutocastModules.Linear(architecture.Vision.Width, architecture.EmbedDim, hasBias: false);
        text_projection = AutocastModules.Linear(architecture.Text.Width, architecture.EmbedDim, hasBias: false);
        logit_scale = new Parameter(torch.tensor(MathF.Log(1 / 0.07f)));
        RegisterComponents();
    }

    /// <inheritdoc/>
    public ClipArchitecture Architecture { get; }

    /// <inheritdoc/>
    public Tensor EncodeImage(Tensor pixels) => visual_projection.forward(vision_model.forward(pixels));

    /// <inheritdoc/>
    public Tensor EncodeText(Tensor ids, Tensor endIndex) => text_projection.forward(text_model.forward(ids, endIndex));
}

// ---------------------------------------------------------------------------------------------------------------
// OpenCLIP layout (open_clip.model.CLIP with VisionTransformer/TextTransformer). Field names are open_clip's keys.
// ---------------------------------------------------------------------------------------------------------------

internal sealed class OcAttention : Module<Tensor, Tensor?, Tensor>
{
    private readonly Parameter in_proj_weight, in_proj_bias;
    private readonly AutocastLinear out_proj;
    private readonly int _heads;

    public OcAttention(int width, int heads) : base(nameof(OcAttention))
    {
        in_proj_weight = new Parameter(torch.randn(3 * width, width) * (1.0 / Math.Sqrt(width)));
        in_proj_bias = new Parameter(torch.zeros(3 * width));
        out_proj = AutocastModules.Linear(width, width);
        _heads = heads;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor? mask)
    {
        var qkv = functional.linear(x, in_proj_weight, in_proj_bias).chunk(3, -1);
        return out_proj.forward(ClipOps.Attend(qkv[0], qkv[1], qkv[2], _heads, mask));
    }
}

internal sealed class OcMlp : Module<Tensor, Tensor>
{
    private readonly AutocastLinear c_fc, c_proj;
    private readonly ClipActivation _act;

    public OcMlp(int width, int hidden, ClipActivation act) : base(nameof(OcMlp))
    {
        c_fc = AutocastModules.Linear(width, hidden);
        c_proj = AutocastModules.Linear(hidden, width);
        _act = act;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => c_proj.forward(ClipOps.Activate(c_fc.forward(x), _act));
}

internal sealed class OcResidualBlock : Module<Tensor, Tensor?, Tensor>
{
    private readonly LayerNorm ln_1;
    private readonly OcAttention attn;
    private readonly LayerNorm ln_2;
    private readonly OcMlp mlp;

    public OcResidualBlock(ClipTowerConfig c) : base(nameof(OcResidualBlock))
    {
        ln_1 = LayerNorm(c.Width, c.LayerNormEps);
        attn = new OcAttention(c.Width, c.Heads);
        ln_2 = LayerNorm(c.Width, c.LayerNormEps);
        mlp = new OcMlp(c.Width, c.MlpWidth, c.Activation);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor? mask)
    {
        x = x + attn.forward(ln_1.forward(x), mask);
        return x + mlp.forward(ln_2.forward(x));
    }
}

internal sealed class OcTransformer : Module<Tensor, Tensor?, Tensor>
{
    private readonly ModuleList<OcResidualBlock> resblocks;

    public OcTransformer(ClipTowerConfig c) : base(nameof(OcTransformer))
    {
        resblocks = new ModuleList<OcResidualBlock>(Enumerable.Range(0, c.Layers).Select(_ => new OcResidualBlock(c)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor? mask)
    {
        foreach (var block in resblocks) x = block.forward(x, mask);
        return x;
    }
}

internal sealed class OcVisionTransformer : Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly Parameter class_embedding, positional_embedding;
    private readonly LayerNorm ln_pre;
    private readonly OcTransformer transformer;
    private readonly LayerNorm ln_post;
    private readonly Parameter proj;

    public OcVisionTransformer(ClipArchitecture a) : base(nameof(OcVisionTransformer))
    {
        int w = a.Vision.Width, grid = a.ImageSize / a.PatchSize;
        conv1 = Conv2d(3, w, a.PatchSize, stride: a.PatchSize, bias: false);
        class_embedding = new Parameter(torch.randn(w) * (1.0 / Math.Sqrt(w)));
        positional_embedding = new Parameter(torch.randn(grid * grid + 1, w) * (1.0 / Math.Sqrt(w)));
        ln_pre = LayerNorm(w, a.Vision.LayerNormEps);
        transformer = new OcTransformer(a.Vision);
        ln_post = LayerNorm(w, a.Vision.LayerNormEps);
        proj = new Parameter(torch.randn(w, a.EmbedDim) * (1.0 / Math.Sqrt(w)));
        RegisterComponents();
    }

    // pixels [B, 3, S, S] -> features [B, EmbedDim]
    public override Tensor forward(Tensor pixels)
    {
        var patches = conv1.forward(pixels).flatten(2).transpose(1, 2);
        var cls = class_embedding.view(1, 1, -1).expand(pixels.shape[0], 1, -1);
        var x = torch.cat(new[] { cls, patches }, 1) + positional_embedding.unsqueeze(0);
        x = transformer.forward(ln_pre.forward(x), null);
        return Autocast.MatMul(ln_post.forward(x[.., 0]), proj);
    }
}

/// <summary>
/// CLIP with OpenCLIP's parameter names (<c>visual.conv1.weight</c>, <c>visual.transformer.resblocks.N.attn.in_proj_weight</c>,
/// <c>visual.proj</c>, <c>token_embedding.weight</c>, <c>positional_embedding</c>, <c>transformer.resblocks.N.*</c>,
/// <c>ln_final</c>, <c>text_projection</c>, <c>logit_scale</c>): ViT-H/14 checkpoints such as HPSv2/v2.1 load unchanged.
/// </summary>
public sealed class OpenClipModel : Module, IClipEncoder
{
    private readonly OcVisionTransformer visual;
    private readonly Embedding token_embedding;
    private readonly Parameter positional_embedding;
    private readonly OcTransformer transformer;
    private readonly LayerNorm ln_final;
    private readonly Parameter text_projection;
    private readonly Parameter logit_scale;

    /// <summary>Creates a randomly initialized model of the given architecture.</summary>
    public OpenClipModel(ClipArchitecture architecture) : base(nameof(OpenClipModel))
    {
        ArgumentNullException.ThrowIfNull(architecture);
        Architecture = architecture;
        var a = architecture;
        visual = new OcVisionTransformer(a);
        token_embedding = Embedding(a.VocabSize, a.Text.Width);
        positional_embedding = new Parameter(torch.randn(a.ContextLength, a.Text.Width) * 0.01);
        transformer = new OcTransformer(a.Text);
        ln_final = LayerNorm(a.Text.Width, a.Text.LayerNormEps);
        text_projection = new Parameter(torch.randn(a.Text.Width, a.EmbedDim) * (1.0 / Math.Sqrt(a.Text.Width)));
        logit_scale = new Parameter(torch.tensor(MathF.Log(1 / 0.07f)));
        RegisterComponents();
    }

    /// <inheritdoc/>
    public ClipArchitecture Architecture { get; }

    /// <inheritdoc/>
    public Tensor EncodeImage(Tensor pixels) => visual.forward(pixels);

    /// <inheritdoc/>
    public Tensor EncodeText(Tensor ids, Tensor endIndex)
    {
        var x = token_embedding.forward(ids) + positional_embedding.unsqueeze(0);
        x = transformer.forward(x, ClipOps.CausalMask(ids.shape[1], ids.device));
        return Autocast.MatMul(ClipOps.Gather(ln_final.forward(x), endIndex), text_projection);
    }
}
