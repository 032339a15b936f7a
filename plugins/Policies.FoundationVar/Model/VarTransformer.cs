using NextFlowRL.Torch.Precision;
using NextFlowRL.Torch.NextScale;
using TorchSharp.Modules;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace NextFlowRL.Policies.FoundationVar.Model;

// FoundationVision's VAR transformer; field names are the upstream state-dict keys. Shapes: x [B, n, C] tokens,
// cond [B, D] class embeddings (D = C), logits [B, n, V].

/// <summary>Multi-head self-attention with l2-normalised q/k scaled by the learned, clamped <c>scale_mul_1H11</c>.</summary>
public sealed class VarSelfAttention : nn.Module
{
    private readonly Parameter? scale_mul_1H11;
    private readonly AutocastLinear mat_qkv;
    private readonly Parameter q_bias;
    private readonly Parameter v_bias;
    private readonly AutocastLinear proj;
    private readonly int _heads;
    private readonly int _width;

    /// <summary>Upper bound of the log scale multiplier (log 100).</summary>
    public static readonly double MaxScaleMul = Math.Log(100);

    /// <summary>Creates the layer.</summary>
    public VarSelfAttention(TransformerConfig config) : base("attn")
    {
        _heads = config.Heads;
        _width = config.Width;
        if (config.L2NormAttention) scale_mul_1H11 = new Parameter(full(1, _heads, 1, 1, Math.Log(4.0)));
        mat_qkv = AutocastModules.Linear(_width, 3 * _width, hasBias: false);
        q_bias = new Parameter(zeros(_width));
        v_bias = new Parameter(zeros(_width));
        proj = AutocastModules.Linear(_width, _width);
        RegisterComponents();
        register_buffer("zero_k_bias", zeros(_width));
    }

    /// <summary>Attention of <paramref name="x"/> with an additive mask or null; with a cache, earlier scales' keys/values are prepended.</summary>
    public Tensor Forward(Tensor x, Tensor? mask, KvCache? cache, int layer)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1];
        int dh = _width / _heads;
        var bias = cat([q_bias, zeros_like(q_bias), v_bias]);
        var qkv = Autocast.Linear(x, mat_qkv.weight, bias).view(b, n, 3, _heads, dh).permute(2, 0, 3, 1, 4);
        Tensor q = qkv[0], k = qkv[1], v = qkv[2];
        double scale;
        if (scale_mul_1H11 is not null)
        {
            var mul = scale_mul_1H11.clamp_max(MaxScaleMul).exp();
            q = F.normalize(q, dim: -1).mul(mul);
            k = F.normalize(k, dim: -1);
            scale = 1;
        }
        else
        {
            scale = 0.25 / Math.Sqrt(dh);
        }
        if (cache is not null) (k, v) = cache.Append(layer, k, v);
        // scaled_dot_product_attention divides by sqrt(dh); fold the model's own scale into q instead.
        q = q.mul(scale * Math.Sqrt(dh));
        var o = Autocast.Attention(q, k, v, mask);
        return proj.forward(o.transpose(1, 2).reshape(b, n, _width)).MoveToOuterDisposeScope();
    }

}

/// <summary>The MLP: fc1, GELU (tanh approximation), fc2.</summary>
public sealed class VarFfn : Module<Tensor, Tensor>
{
    private readonly AutocastLinear fc1;
    private readonly AutocastLinear fc2;

    /// <summary>Creates the MLP.</summary>
    public VarFfn(TransformerConfig config) : base("ffn")
    {
        fc1 = AutocastModules.Linear(config.Width, config.MlpHidden);
        fc2 = AutocastModules.Linear(config.MlpHidden, config.Width);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var h = fc1.forward(x);
        using var a = F.gelu(h, TorchSharp.Modules.GELU.Approximate.tanh);
        return fc2.forward(a);
    }
}

/// <summary>An AdaLN block: <c>x += attn(LN(x)(1+s1)+b1) g1; x += ffn(LN(x)(1+s2)+b2) g2</c>, modulations from the condition.</summary>
public sealed class AdaLnSelfAttn : nn.Module
{
    private readonly VarSelfAttention attn;
    private readonly VarFfn ffn;
    private readonly LayerNorm ln_wo_grad;
    private readonly Parameter? ada_gss;
    private readonly Sequential? ada_lin;
    private readonly int _width;

    /// <summary>Creates a block.</summary>
    public AdaLnSelfAttn(TransformerConfig config) : base("block")
    {
        _width = config.Width;
        attn = new VarSelfAttention(config);
        ffn = new VarFfn(config);
        ln_wo_grad = LayerNorm(_width, eps: 1e-6, elementwise_affine: false);
        if (config.SharedAdaLn) ada_gss = new Parameter(zeros(1, 1, 6, _width));
        else ada_lin = Sequential(("0", SiLU()), ("1", AutocastModules.Linear(_width, 6 * _width)));
        RegisterComponents();
    }

    /// <summary>
    /// Applies the block. <paramref name="condition"/> is the class embedding <c>[B, D]</c>, or with a shared AdaLN the
    /// shared projection <c>[B, 1, 6, C]</c>.
    /// </summary>
    public Tensor Forward(Tensor x, Tensor condition, Tensor? mask, KvCache? cache, int layer)
    {
        using var scope = NewDisposeScope();
        var mod = ada_gss is not null ? ada_gss + condition : ada_lin!.forward(condition).view(-1, 1, 6, _width);
        var g1 = mod[.., .., 0];
        var g2 = mod[.., .., 1];
        var s1 = mod[.., .., 2];
        var s2 = mod[.., .., 3];
        var b1 = mod[.., .., 4];
        var b2 = mod[.., .., 5];
        x = x + attn.Forward(ln_wo_grad.forward(x).mul(s1.add(1)).add(b1), mask, cache, layer).mul(g1);
        x = x + ffn.forward(ln_wo_grad.forward(x).mul(s2.add(1)).add(b2)).mul(g2);
        return x.MoveToOuterDisposeScope();
    }

}

/// <summary>The AdaLN before the head: <c>LN(x)(1+scale)+shift</c> from the class embedding.</summary>
public sealed class AdaLnBeforeHead : nn.Module
{
    private readonly LayerNorm ln_wo_grad;
    private readonly Sequential ada_lin;
    private readonly int _width;

    /// <summary>Creates the layer.</summary>
    public AdaLnBeforeHead(TransformerConfig config) : base("head_nm")
    {
        _width = config.Width;
        ln_wo_grad = LayerNorm(_width, eps: 1e-6, elementwise_affine: false);
        ada_lin = Sequential(("0", SiLU()), ("1", AutocastModules.Linear(_width, 2 * _width)));
        RegisterComponents();
    }

    /// <summary>Modulates <paramref name="x"/> <c>[B, n, C]</c> by <paramref name="cond"/> <c>[B, D]</c>.</summary>
    public Tensor Forward(Tensor x, Tensor cond)
    {
        using var scope = NewDisposeScope();
        var mod = ada_lin.forward(cond).view(-1, 1, 2, _width);
        return ln_wo_grad.forward(x).mul(mod[.., .., 0].add(1)).add(mod[.., .., 1]).MoveToOuterDisposeScope();
    }

}

/// <summary>
/// The class-conditional next-scale transformer: <c>word_embed</c> (token features to width C), <c>class_emb</c> (classes
/// plus the unconditional row), start tokens <c>pos_start</c>, absolute positions <c>pos_1LC</c>, level embeddings
/// <c>lvl_embed</c>, AdaLN blocks (per block or shared), the AdaLN before the head and the head.
/// </summary>
public sealed class VarTransformer : nn.Module
{
    private readonly AutocastLinear word_embed;
    private readonly Embedding class_emb;
    private readonly Parameter pos_start;
    private readonly Parameter pos_1LC;
    private readonly Embedding lvl_embed;
    private readonly Sequential? shared_ada_lin;
    private readonly ModuleList<AdaLnSelfAttn> blocks;
    private readonly AdaLnBeforeHead head_nm;
    private readonly AutocastLinear head;
    private readonly int[] _begin;

    /// <summary>Creates a transformer of <paramref name="config"/> (weights to be loaded).</summary>
    public VarTransformer(TransformerConfig config) : base("var")
    {
        Config = config;
        int c = config.Width;
        var sides = config.PatchNums;
        _begin = new int[sides.Count + 1];
        for (int i = 0; i < sides.Count; i++) _begin[i + 1] = _begin[i] + sides[i] * sides[i];
        int l = _begin[^1];
        word_embed = AutocastModules.Linear(config.LatentChannels, c);
        class_emb = Embedding(config.Classes + 1, c);
        pos_start = new Parameter(zeros(1, sides[0] * sides[0], c));
        pos_1LC = new Parameter(zeros(1, l, c));
        lvl_embed = Embedding(sides.Count, c);
        if (config.SharedAdaLn) shared_ada_lin = Sequential(("0", SiLU()), ("1", AutocastModules.Linear(c, 6 * c)));
        blocks = new ModuleList<AdaLnSelfAttn>(Enumerable.Range(0, config.Depth).Select(_ => new AdaLnSelfAttn(config)).ToArray());
        head_nm = new AdaLnBeforeHead(config);
        head = AutocastModules.Float32Linear(c, config.Vocabulary);
        RegisterComponents();
        // Buffers of the official files: the level of every position and the block-causal training mask. The mask this
        // port applies is built by the shared sampler from the schedule; these are kept so the files load as they are.
        var levels = new long[l];
        for (int k = 0; k < sides.Count; k++)
            for (int i = _begin[k]; i < _begin[k + 1]; i++) levels[i] = k;
        register_buffer("lvl_1L", tensor(levels, [1, l]));
        using (var lv = tensor(levels))
            register_buffer("attn_bias_for_masking", zeros(l, l).masked_fill((lv.unsqueeze(1) >= lv.unsqueeze(0)).logical_not(), double.NegativeInfinity).view(1, 1, l, l));
    }

    /// <summary>The architecture.</summary>
    public TransformerConfig Config { get; }

    /// <summary>The unconditional class index (= number of classes).</summary>
    public int Unconditional => Config.Classes;

    /// <summary>Class embeddings <c>[B, D]</c> of labels <c>[B]</c> (the unconditional label is <see cref="Unconditional"/>).</summary>
    public Tensor ClassEmbedding(Tensor labels) => class_emb.forward(labels);

    /// <summary>
    /// Input embeddings of scale <paramref name="scale"/>: start tokens (class embedding + <c>pos_start</c>) for scale 0,
    /// else <c>word_embed</c> of the features <c>[B, Cvae, h, w]</c>; plus the level and position embeddings of the scale.
    /// </summary>
    public Tensor EmbedInput(int scale, Tensor cond, Tensor? features)
    {
        using var scope = NewDisposeScope();
        int n = _begin[scale + 1] - _begin[scale];
        var lvlPos = lvl_embed.weight![scale].view(1, 1, -1) + pos_1LC.narrow(1, _begin[scale], n);
        Tensor x;
        if (scale == 0)
        {
            x = cond.unsqueeze(1).expand(-1, n, -1) + pos_start.expand(cond.shape[0], -1, -1);
        }
        else
        {
            ArgumentNullException.ThrowIfNull(features);
            x = word_embed.forward(features.flatten(2).transpose(1, 2));
        }
        return (x + lvlPos).MoveToOuterDisposeScope();
    }

    /// <summary>The blocks and the head on embedded tokens <c>[B, n, C]</c> with class embeddings <c>[B, D]</c>: logits <c>[B, n, V]</c>.</summary>
    public Tensor Logits(Tensor x, Tensor cond, Tensor? mask, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var blockCond = shared_ada_lin is not null ? shared_ada_lin.forward(cond).view(-1, 1, 6, Config.Width) : cond;
        for (int i = 0; i < blocks.Count; i++) x = blocks[i].Forward(x, blockCond, mask, cache, i);
        return head.forward(head_nm.Forward(x, cond)).MoveToOuterDisposeScope();
    }

}
