using NextFlowRL.Torch.Precision;
using NextFlowRL.Torch.NextScale;
using TorchSharp.Modules;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace NextFlowRL.Policies.Var.Model;

/// <summary>Encoded text condition of a batch.</summary>
/// <param name="Memory">Character memory for cross-attention <c>[B, M, D]</c> (slot 0 is a learned null token).</param>
/// <param name="MemoryMask">Additive key mask <c>[B, 1, 1, M]</c> (0 or -inf).</param>
/// <param name="Cond">Pooled condition vector <c>[B, D]</c> for AdaLN and the start token.</param>
public sealed record TextCondition(Tensor Memory, Tensor MemoryMask, Tensor Cond);

/// <summary>
/// Character-level text encoder: the quoted words of a prompt (the text to render) become one memory slot per
/// character (character + word-slot + centred-position embeddings, one pre-LN transformer layer), plus a learned
/// null slot. The wording around the quotes is not read: the task is to follow the quoted words.
/// </summary>
public sealed class CharTextEncoder : nn.Module
{
    private readonly Embedding chars;
    private readonly Embedding word_slot;
    private readonly Embedding rel_pos;
    private readonly Embedding word_count;
    private readonly Parameter null_slot;
    private readonly LayerNorm ln1;
    private readonly AutocastLinear qkv;
    private readonly AutocastLinear proj;
    private readonly LayerNorm ln2;
    private readonly AutocastLinear fc1;
    private readonly AutocastLinear fc2;
    private readonly AutocastLinear cond1;
    private readonly AutocastLinear cond2;
    private readonly GeneratorConfig _config;

    /// <summary>Character vocabulary size: padding, A-Z, 0-9, other.</summary>
    public const int Vocabulary = 38;

    /// <summary>Creates the encoder.</summary>
    public CharTextEncoder(GeneratorConfig config) : base("text")
    {
        _config = config;
        int d = config.Dim;
        chars = Embedding(Vocabulary, d);
        word_slot = Embedding(config.MaxWords, d);
        rel_pos = Embedding(2 * config.MaxWordChars - 1, d);
        word_count = Embedding(config.MaxWords + 1, d);
        null_slot = new Parameter(randn(1, 1, d) * 0.02);
        ln1 = LayerNorm(d);
        qkv = AutocastModules.Linear(d, 3 * d);
        proj = AutocastModules.Linear(d, d);
        ln2 = LayerNorm(d);
        fc1 = AutocastModules.Linear(d, 2 * d);
        fc2 = AutocastModules.Linear(2 * d, d);
        cond1 = AutocastModules.Linear(d, d);
        cond2 = AutocastModules.Linear(d, d);
        RegisterComponents();
    }

    /// <summary>Character id of a letter (0 is padding).</summary>
    public static long CharId(char c)
    {
        c = char.ToUpperInvariant(c);
        if (c is >= 'A' and <= 'Z') return 1 + (c - 'A');
        if (c is >= '0' and <= '9') return 27 + (c - '0');
        return 37;
    }

    /// <summary>Encodes prompts; a null prompt (or one without quoted words) gives the unconditional condition.</summary>
    public TextCondition Forward(IReadOnlyList<string?> prompts, Device device)
    {
        int b = prompts.Count, w = _config.MaxWords, lc = _config.MaxWordChars, m = w * lc;
        var ids = new long[b * m];
        var slots = new long[b * m];
        var rel = new long[b * m];
        var counts = new long[b];
        var valid = new bool[b * (m + 1)];
        for (int r = 0; r < b; r++)
        {
            valid[r * (m + 1)] = true;
            var words = prompts[r] is null ? [] : PromptWords.Quoted(prompts[r]!);
            int nw = Math.Min(words.Count, w);
            counts[r] = nw;
            for (int j = 0; j < nw; j++)
            {
                var word = words[j];
                int n = Math.Min(word.Length, lc);
                for (int i = 0; i < n; i++)
                {
                    int at = r * m + j * lc + i;
                    ids[at] = CharId(word[i]);
                    slots[at] = j;
                    rel[at] = 2 * i - (n - 1) + (lc - 1);
                    valid[r * (m + 1) + 1 + j * lc + i] = true;
                }
            }
        }
        using var scope = NewDisposeScope();
        var tIds = tensor(ids, [b, m], device: device);
        var x = chars.forward(tIds) + word_slot.forward(tensor(slots, [b, m], device: device))
              + rel_pos.forward(tensor(rel, [b, m], device: device)) + word_count.forward(tensor(counts, [b, 1], device: device));
        x = cat([null_slot.expand(b, 1, -1), x], 1); // [B, M+1, D]
        var validT = tensor(valid, [b, 1, 1, m + 1], device: device);
        var mask = zeros([b, 1, 1, m + 1], device: device).masked_fill(validT.logical_not(), double.NegativeInfinity);
        // One pre-LN self-attention layer over the character slots.
        int d = _config.Dim, heads = _config.Heads, dh = d / heads;
        var h = ln1.forward(x);
        var parts = qkv.forward(h).view(b, m + 1, 3, heads, dh).permute(2, 0, 3, 1, 4);
        var att = NextScaleTransformer.Attention(parts[0], parts[1], parts[2], mask);
        x = x + proj.forward(att.transpose(1, 2).reshape(b, m + 1, d));
        x = x + fc2.forward(F.gelu(fc1.forward(ln2.forward(x))));
        var validF = validT.view(b, m + 1, 1).to_type(x.dtype);
        var pooled = (x * validF).sum(1) / validF.sum(1);
        var cond = cond2.forward(F.silu(cond1.forward(pooled)));
        return new TextCondition(x.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope(), cond.MoveToOuterDisposeScope());
    }
}

/// <summary>One transformer block: AdaLN-modulated block-causal self-attention, cross-attention to the text, AdaLN MLP.</summary>
public sealed class VarBlock : nn.Module
{
    private readonly LayerNorm ln1;
    private readonly AutocastLinear qkv;
    private readonly AutocastLinear proj;
    private readonly LayerNorm ln_cross;
    private readonly AutocastLinear cross_q;
    private readonly AutocastLinear cross_kv;
    private readonly AutocastLinear cross_proj;
    private readonly LayerNorm ln2;
    private readonly AutocastLinear fc1;
    private readonly AutocastLinear fc2;
    private readonly AutocastLinear ada;
    private readonly int _dim;
    private readonly int _heads;

    /// <summary>Creates a block.</summary>
    public VarBlock(GeneratorConfig config) : base("block")
    {
        int d = config.Dim;
        _dim = d;
        _heads = config.Heads;
        ln1 = LayerNorm(d, elementwise_affine: false);
        qkv = AutocastModules.Linear(d, 3 * d);
        proj = AutocastModules.Linear(d, d);
        ln_cross = LayerNorm(d);
        cross_q = AutocastModules.Linear(d, d);
        cross_kv = AutocastModules.Linear(d, 2 * d);
        cross_proj = AutocastModules.Linear(d, d);
        ln2 = LayerNorm(d, elementwise_affine: false);
        fc1 = AutocastModules.Linear(d, config.MlpRatio * d);
        fc2 = AutocastModules.Linear(config.MlpRatio * d, d);
        ada = AutocastModules.Linear(d, 6 * d);
        using (no_grad())
        {
            ada.weight!.mul_(0.1);
            ada.bias!.zero_();
        }
        RegisterComponents();
    }

    /// <summary>
    /// Applies the block to tokens <paramref name="x"/> <c>[B, n, D]</c>. With a cache, keys/values of earlier scales are
    /// prepended (and this call's appended); <paramref name="selfMask"/> is the additive <c>[n, n_keys]</c> mask or null.
    /// </summary>
    public Tensor Forward(Tensor x, TextCondition cond, Tensor? selfMask, KvCache? cache, int layer)
    {
        long b = x.shape[0], n = x.shape[1];
        int dh = _dim / _heads;
        var mod = ada.forward(F.silu(cond.Cond)).view(b, 1, 6, _dim);
        var g1 = mod[.., .., 0];
        var g2 = mod[.., .., 1];
        var s1 = mod[.., .., 2];
        var s2 = mod[.., .., 3];
        var b1 = mod[.., .., 4];
        var b2 = mod[.., .., 5];
        var h = ln1.forward(x) * (1 + s1) + b1;
        var parts = qkv.forward(h).view(b, n, 3, _heads, dh).permute(2, 0, 3, 1, 4);
        Tensor k = parts[1], v = parts[2];
        if (cache is not null) (k, v) = cache.Append(layer, k, v);
        var att = NextScaleTransformer.Attention(parts[0], k, v, selfMask);
        x = x + proj.forward(att.transpose(1, 2).reshape(b, n, _dim)) * (1 + g1);
        // Cross-attention to the character memory.
        long m = cond.Memory.shape[1];
        var q = cross_q.forward(ln_cross.forward(x)).view(b, n, _heads, dh).transpose(1, 2);
        var kv = cross_kv.forward(cond.Memory).view(b, m, 2, _heads, dh).permute(2, 0, 3, 1, 4);
        var catt = NextScaleTransformer.Attention(q, kv[0], kv[1], cond.MemoryMask);
        x = x + cross_proj.forward(catt.transpose(1, 2).reshape(b, n, _dim));
        h = ln2.forward(x) * (1 + s2) + b2;
        return x + fc2.forward(F.gelu(fc1.forward(h))) * (1 + g2);
    }
}

/// <summary>
/// Next-scale prediction transformer (VAR): the tokens of scale k are predicted in parallel from the accumulated
/// features of scales &lt; k (area-downsampled to scale k's grid; a start token from the condition for the first
/// scale), with block-causal attention (full inside a scale, causal across scales), position embeddings from
/// scale-normalized 2-D coordinates (shared across scales) plus a learned level embedding, AdaLN conditioning on the
/// pooled text vector and cross-attention to the character memory.
/// </summary>
public sealed class NextScaleTransformer : nn.Module
{
    private readonly CharTextEncoder text;
    private readonly AutocastLinear start;
    private readonly AutocastLinear input_proj;
    private readonly AutocastLinear pos_proj;
    private readonly Embedding level;
    private readonly ModuleList<VarBlock> blocks;
    private readonly LayerNorm head_ln;
    private readonly AutocastLinear head_ada;
    private readonly AutocastLinear head;
    private readonly GeneratorConfig _config;
    private readonly ScaleShape[] _scales;
    private readonly int[] _begin;
    private readonly Tensor _coords; // [L, P] Fourier features of token coordinates

    private const int Frequencies = 5;

    /// <summary>Creates a randomly initialized generator for a tokenizer's schedule and codebook.</summary>
    public NextScaleTransformer(GeneratorConfig config, TokenizerConfig tokenizer) : base("generator")
    {
        config.Validate();
        _config = config;
        _scales = tokenizer.Schedule().ToArray();
        _begin = new int[_scales.Length + 1];
        for (int i = 0; i < _scales.Length; i++) _begin[i + 1] = _begin[i] + _scales[i].Tokens;
        int d = config.Dim;
        text = new CharTextEncoder(config);
        start = AutocastModules.Linear(d, d);
        input_proj = AutocastModules.Linear(tokenizer.LatentChannels, d);
        int p = 2 + 4 * Frequencies;
        pos_proj = AutocastModules.Linear(p, d);
        level = Embedding(_scales.Length, d);
        blocks = new ModuleList<VarBlock>(Enumerable.Range(0, config.Depth).Select(_ => new VarBlock(config)).ToArray());
        head_ln = LayerNorm(d, elementwise_affine: false);
        head_ada = AutocastModules.Linear(d, 2 * d);
        head = AutocastModules.Float32Linear(d, tokenizer.CodebookSize);
        RegisterComponents();
        _coords = BuildCoordinates();
    }

    /// <summary>The architecture.</summary>
    public GeneratorConfig Config => _config;

    /// <summary>First sequence position of each scale (and the total length at the end).</summary>
    public IReadOnlyList<int> ScaleBegin => _begin;

    private Tensor BuildCoordinates()
    {
        int p = 2 + 4 * Frequencies;
        var data = new float[_begin[^1] * p];
        int at = 0;
        foreach (var s in _scales)
        {
            for (int y = 0; y < s.Height; y++)
            {
                for (int x = 0; x < s.Width; x++)
                {
                    double u = (x + 0.5) / s.Width, v = (y + 0.5) / s.Height;
                    data[at++] = (float)(2 * u - 1);
                    data[at++] = (float)(2 * v - 1);
                    for (int f = 0; f < Frequencies; f++)
                    {
                        double w = Math.PI * (1 << f);
                        data[at++] = (float)Math.Sin(w * u);
                        data[at++] = (float)Math.Cos(w * u);
                        data[at++] = (float)Math.Sin(w * v);
                        data[at++] = (float)Math.Cos(w * v);
                    }
                }
            }
        }
        return tensor(data, [_begin[^1], p]);
    }

    /// <summary>Scaled dot-product attention with an optional additive mask; q/k/v are <c>[B, H, n, dh]</c>.</summary>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, Tensor? mask) =>
        Autocast.Attention(q, k, v, mask);

    /// <summary>Encodes the text condition (null entries are unconditional).</summary>
    public TextCondition EncodeText(IReadOnlyList<string?> prompts, Device device) => text.Forward(prompts, device);

    /// <summary>
    /// Input embeddings of scale <paramref name="scale"/>: the start token (scale 0) or the projected features
    /// <c>[B, C, h, w]</c> of the accumulated features at that scale's grid; plus position and level embeddings.
    /// </summary>
    public Tensor EmbedInput(int scale, TextCondition cond, Tensor? features)
    {
        using var scope = NewDisposeScope();
        Tensor x;
        if (scale == 0)
        {
            var startTok = start.forward(cond.Cond).unsqueeze(1); // [B,1,D]
            x = _scales[0].Tokens == 1 ? startTok : startTok.expand(-1, _scales[0].Tokens, -1);
        }
        else
        {
            ArgumentNullException.ThrowIfNull(features);
            x = input_proj.forward(features.flatten(2).transpose(1, 2));
        }
        var coords = _coords.narrow(0, _begin[scale], _scales[scale].Tokens).to(x.device);
        var lv = level.forward(tensor(new long[] { scale }, device: x.device));
        return (x + pos_proj.forward(coords).unsqueeze(0) + lv.unsqueeze(0)).MoveToOuterDisposeScope();
    }

    /// <summary>Runs the blocks and the head on embedded tokens <c>[B, n, D]</c>; returns logits <c>[B, n, V]</c>.</summary>
    public Tensor Forward(Tensor x, TextCondition cond, Tensor? selfMask, KvCache? cache)
    {
        for (int i = 0; i < blocks.Count; i++) x = blocks[i].Forward(x, cond, selfMask, cache, i);
        var mod = head_ada.forward(F.silu(cond.Cond)).view(x.shape[0], 1, 2, _config.Dim);
        var h = head_ln.forward(x) * (1 + mod[.., .., 0]) + mod[.., .., 1];
        return head.forward(h);
    }
}
