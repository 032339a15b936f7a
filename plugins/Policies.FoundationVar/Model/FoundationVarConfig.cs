using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace NextFlowRL.Policies.FoundationVar.Model;

/// <summary>How the VQ-VAE's phi convs are shared across scales (upstream <c>share_quant_resi</c>).</summary>
public enum PhiSharing
{
    /// <summary>K convs, each serving the scales nearest its tick (<c>quant_resi.qresi_ls.N</c>; the official files, K = 4).</summary>
    PartiallyShared,

    /// <summary>One conv for every scale (<c>quant_resi.qresi</c>).</summary>
    Shared,

    /// <summary>One conv per scale (<c>quant_resi.N</c>).</summary>
    NonShared,
}

/// <summary>The VQ-VAE's architecture, as inferred from its state dict.</summary>
public sealed record VaeConfig
{
    /// <summary>Base channels (<c>ch</c>; 160 in the official file).</summary>
    public required int Channels { get; init; }

    /// <summary>Channel multiplier per resolution level (1,1,2,2,4 officially).</summary>
    public required IReadOnlyList<int> ChannelMultipliers { get; init; }

    /// <summary>Residual blocks per encoder level (the decoder has one more).</summary>
    public required int ResBlocks { get; init; }

    /// <summary>Latent / code channels (<c>Cvae</c>; 32 officially).</summary>
    public required int LatentChannels { get; init; }

    /// <summary>Codebook size (4096 officially).</summary>
    public required int Vocabulary { get; init; }

    /// <summary>Attention after the blocks of the lowest-resolution level.</summary>
    public required bool Attention { get; init; }

    /// <summary>Attention in the middle of encoder and decoder.</summary>
    public required bool MiddleAttention { get; init; }

    /// <summary>How the phi convs are shared.</summary>
    public required PhiSharing PhiSharing { get; init; }

    /// <summary>Number of phi convs.</summary>
    public required int PhiCount { get; init; }

    /// <summary>Rows of the usage buffer <c>quantize.ema_vocab_hit_SV</c> (0 when the file has none).</summary>
    public required int UsageRows { get; init; }

    /// <summary>Pixels per latent site (2^(levels - 1); 16 officially).</summary>
    [JsonIgnore]
    public int Downsample => 1 << (ChannelMultipliers.Count - 1);
}

/// <summary>The transformer's architecture, as inferred from its state dict.</summary>
public sealed record TransformerConfig
{
    /// <summary>Blocks (16, 20, 24, 30, 36 officially).</summary>
    public required int Depth { get; init; }

    /// <summary>Embedding width C (64 x depth officially).</summary>
    public required int Width { get; init; }

    /// <summary>Attention heads.</summary>
    public required int Heads { get; init; }

    /// <summary>MLP hidden width.</summary>
    public required int MlpHidden { get; init; }

    /// <summary>Number of classes (the class embedding has one more row: the unconditional one).</summary>
    public required int Classes { get; init; }

    /// <summary>Token vocabulary (the VQ-VAE's codebook size).</summary>
    public required int Vocabulary { get; init; }

    /// <summary>Latent channels of the token features (the VQ-VAE's Cvae).</summary>
    public required int LatentChannels { get; init; }

    /// <summary>l2-normalised q/k with the learned clamped <c>scale_mul_1H11</c> (all official files).</summary>
    public required bool L2NormAttention { get; init; }

    /// <summary>One AdaLN projection shared by all blocks (<c>shared_ada_lin</c>, the d36 model) instead of one per block.</summary>
    public required bool SharedAdaLn { get; init; }

    /// <summary>Side of each scale's square token grid, coarse to fine.</summary>
    public required IReadOnlyList<int> PatchNums { get; init; }
}

/// <summary>The architecture of a FoundationVision VAR checkpoint pair, inferred from the state dicts' names and shapes.</summary>
public sealed record FoundationVarConfig
{
    /// <summary>The default schedule of the official 256 px models.</summary>
    public static readonly IReadOnlyList<int> DefaultPatchNums = [1, 2, 3, 4, 5, 6, 8, 10, 13, 16];

    /// <summary>The VQ-VAE.</summary>
    public required VaeConfig Vae { get; init; }

    /// <summary>The transformer.</summary>
    public required TransformerConfig Transformer { get; init; }

    /// <summary>Decoded image side in pixels.</summary>
    [JsonIgnore]
    public int ImageSize => Transformer.PatchNums[^1] * Vae.Downsample;

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>The configuration as JSON (written beside RL checkpoints).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads <see cref="ToJson"/>'s output.</summary>
    /// <exception cref="InvalidDataException">Not a valid configuration.</exception>
    public static FoundationVarConfig FromJson(string json, string source)
    {
        try
        {
            return JsonSerializer.Deserialize<FoundationVarConfig>(json, Json) ?? throw new InvalidDataException($"{source}: empty configuration");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: not a foundation-var configuration ({e.Message})");
        }
    }

    /// <summary>
    /// Infers both architectures from the state dicts. <paramref name="patchNums"/> null takes the schedule from the
    /// transformer's <c>lvl_1L</c> buffer (the level of every position), else the official default.
    /// </summary>
    /// <exception cref="InvalidDataException">A file that is not a FoundationVision VQ-VAE / VAR state dict, a pair that does not fit together, or a schedule that does not match the checkpoint; the message says which.</exception>
    public static FoundationVarConfig Infer(IReadOnlyDictionary<string, Tensor> vae, string vaeSource, IReadOnlyDictionary<string, Tensor> var, string varSource, IReadOnlyList<int>? patchNums)
    {
        var v = InferVae(vae, vaeSource);
        var t = InferTransformer(var, varSource, patchNums);
        if (t.Vocabulary != v.Vocabulary || t.LatentChannels != v.LatentChannels)
            throw new InvalidDataException($"{varSource} and {vaeSource} do not belong together: the transformer predicts {t.Vocabulary} codes of {t.LatentChannels} channels, the VQ-VAE has {v.Vocabulary} codes of {v.LatentChannels} channels");
        return new FoundationVarConfig { Vae = v, Transformer = t };
    }

    private static Tensor Need(IReadOnlyDictionary<string, Tensor> sd, string key, string source, string what) =>
        sd.TryGetValue(key, out var t) ? t
            : throw new InvalidDataException($"{source}: not a {what} state dict (no '{key}'; its keys begin {string.Join(", ", sd.Keys.Order(StringComparer.Ordinal).Take(4))})");

    private static int Count(IReadOnlyDictionary<string, Tensor> sd, string pattern)
    {
        var re = new Regex(pattern, RegexOptions.CultureInvariant);
        return sd.Keys.Select(k => re.Match(k)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).DefaultIfEmpty(-1).Max() + 1;
    }

    /// <summary>Infers the VQ-VAE's architecture.</summary>
    public static VaeConfig InferVae(IReadOnlyDictionary<string, Tensor> sd, string source)
    {
        const string what = "FoundationVision VQ-VAE";
        int ch = (int)Need(sd, "encoder.conv_in.weight", source, what).shape[0];
        var codebook = Need(sd, "quantize.embedding.weight", source, what);
        int levels = Count(sd, @"^encoder\.down\.(\d+)\.");
        int blocks = Count(sd, @"^encoder\.down\.0\.block\.(\d+)\.");
        if (levels < 1 || blocks < 1) throw new InvalidDataException($"{source}: not a {what} state dict (no encoder.down.N.block.M tensors)");
        var mult = Enumerable.Range(0, levels)
            .Select(i => (int)(Need(sd, $"encoder.down.{i}.block.0.conv1.weight", source, what).shape[0] / ch)).ToArray();
        PhiSharing sharing;
        int phis;
        if (sd.ContainsKey("quantize.quant_resi.qresi.weight")) { sharing = PhiSharing.Shared; phis = 1; }
        else if ((phis = Count(sd, @"^quantize\.quant_resi\.qresi_ls\.(\d+)\.weight$")) > 0) sharing = PhiSharing.PartiallyShared;
        else if ((phis = Count(sd, @"^quantize\.quant_resi\.(\d+)\.weight$")) > 0) sharing = PhiSharing.NonShared;
        else throw new InvalidDataException($"{source}: not a {what} state dict (no phi convs quantize.quant_resi.*)");
        return new VaeConfig
        {
            Channels = ch,
            ChannelMultipliers = mult,
            ResBlocks = blocks,
            LatentChannels = (int)codebook.shape[1],
            Vocabulary = (int)codebook.shape[0],
            Attention = sd.ContainsKey($"encoder.down.{levels - 1}.attn.0.qkv.weight"),
            MiddleAttention = sd.ContainsKey("encoder.mid.attn_1.qkv.weight"),
            PhiSharing = sharing,
            PhiCount = phis,
            UsageRows = sd.TryGetValue("quantize.ema_vocab_hit_SV", out var usage) ? (int)usage.shape[0] : 0,
        };
    }

    /// <summary>Infers the transformer's architecture and checks the schedule against it.</summary>
    public static TransformerConfig InferTransformer(IReadOnlyDictionary<string, Tensor> sd, string source, IReadOnlyList<int>? patchNums)
    {
        const string what = "FoundationVision VAR transformer";
        var word = Need(sd, "word_embed.weight", source, what);
        var head = Need(sd, "head.weight", source, what);
        var cls = Need(sd, "class_emb.weight", source, what);
        var posStart = Need(sd, "pos_start", source, what);
        var pos = Need(sd, "pos_1LC", source, what);
        var lvl = Need(sd, "lvl_embed.weight", source, what);
        int depth = Count(sd, @"^blocks\.(\d+)\.");
        if (depth < 1) throw new InvalidDataException($"{source}: not a {what} state dict (no blocks.N tensors)");
        int width = (int)word.shape[0];
        bool l2 = sd.TryGetValue("blocks.0.attn.scale_mul_1H11", out var scaleMul);
        int heads = l2 ? (int)scaleMul!.shape[1] : Math.Max(1, width / 64);
        if (width % heads != 0) throw new InvalidDataException($"{source}: width {width} is not a multiple of {heads} heads");
        int scales = (int)lvl.shape[0], length = (int)pos.shape[1], first = (int)posStart.shape[1];
        IReadOnlyList<int> schedule;
        if (patchNums is not null) schedule = patchNums;
        else if (sd.TryGetValue("lvl_1L", out var levels)) schedule = FromLevels(levels, source);
        else schedule = DefaultPatchNums;
        int want = schedule.Sum(p => p * p);
        if (schedule.Count != scales || want != length || schedule[0] * schedule[0] != first)
            throw new InvalidDataException(
                $"{source}: the schedule (PatchNums) {string.Join(",", schedule)} ({schedule.Count} scales, {want} tokens) does not match the checkpoint " +
                $"({scales} scales, {length} tokens, {first} at the first scale); set Policies:foundation-var:PatchNums to the model's patch_nums");
        return new TransformerConfig
        {
            Depth = depth,
            Width = width,
            Heads = heads,
            MlpHidden = (int)Need(sd, "blocks.0.ffn.fc1.weight", source, what).shape[0],
            Classes = (int)cls.shape[0] - 1,
            Vocabulary = (int)head.shape[0],
            LatentChannels = (int)word.shape[1],
            L2NormAttention = l2,
            SharedAdaLn = sd.ContainsKey("shared_ada_lin.1.weight"),
            PatchNums = schedule.ToArray(),
        };
    }

    /// <summary>Patch sides from the level of every position (<c>lvl_1L</c>, <c>[1, L]</c>): level k covers pn_k^2 positions.</summary>
    private static int[] FromLevels(Tensor levels, string source)
    {
        var values = levels.to(ScalarType.Int64).cpu().data<long>().ToArray();
        var counts = values.GroupBy(x => x).OrderBy(g => g.Key).Select(g => g.Count()).ToArray();
        var sides = counts.Select(c => (int)Math.Round(Math.Sqrt(c))).ToArray();
        if (sides.Zip(counts).Any(p => p.First * p.First != p.Second))
            throw new InvalidDataException($"{source}: lvl_1L describes non-square scales ({string.Join(",", counts)} positions); set Policies:foundation-var:PatchNums");
        return sides;
    }
}
