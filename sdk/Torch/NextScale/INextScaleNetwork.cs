using NextFlowRL.Policies;
using static TorchSharp.torch;

namespace NextFlowRL.Torch.NextScale;

/// <summary>
/// What a VAR-family backbone provides to the shared next-scale machinery (<see cref="NextScaleSampler"/>): a
/// condition encoder, the input embedding of each scale, the transformer with an optional KV cache, and the
/// tokenizer's feature arithmetic (a scale's token contribution to the accumulated features, and the area-downsampled
/// features that are the next scale's input). Everything else — sampling, guidance, truncation, masks, teacher-forced
/// log-probs by scale range, continuation from a prefix — is shared and tested once.
/// </summary>
/// <typeparam name="TCondition">The backbone's encoded condition of a batch (text memory, class embeddings, ...).</typeparam>
public interface INextScaleNetwork<TCondition>
{
    /// <summary>The scale schedule r_1..r_T.</summary>
    ScaleSchedule Schedule { get; }

    /// <summary>Where parameters and tensors live.</summary>
    Device Device { get; }

    /// <summary>Transformer layers (one KV-cache slot each).</summary>
    int Layers { get; }

    /// <summary>Encodes one condition per row; a null entry is the unconditional condition (the CFG branch).</summary>
    /// <exception cref="ArgumentException">A prompt the backbone cannot condition on; the message says what it accepts.</exception>
    TCondition EncodeConditions(IReadOnlyList<string?> prompts);

    /// <summary>
    /// Input embeddings <c>[B, n_k, D]</c> of scale <paramref name="scale"/> with position and level embeddings: the start
    /// tokens from the condition for scale 0 (<paramref name="features"/> null), otherwise the accumulated features
    /// through scale k-1 downsampled to scale k's grid, <c>[B, C, h_k, w_k]</c>.
    /// </summary>
    Tensor EmbedInput(int scale, TCondition condition, Tensor? features);

    /// <summary>
    /// The transformer on embedded tokens <c>[B, n, D]</c>: logits <c>[B, n, V]</c>. With a cache, the keys/values of the
    /// earlier scales are prepended and this call's appended; <paramref name="mask"/> is an additive <c>[n, n_keys]</c>
    /// mask or null.
    /// </summary>
    Tensor Logits(Tensor x, TCondition condition, Tensor? mask, KvCache? cache);

    /// <summary>Contribution of scale <paramref name="scale"/>'s tokens <c>[B, h, w]</c> to the accumulated features <c>[B, C, H, W]</c>.</summary>
    Tensor TokenFeatures(Tensor tokens, int scale);

    /// <summary>Accumulated features <c>[B, C, H, W]</c> downsampled to scale <paramref name="scale"/>'s grid (the input of that scale).</summary>
    Tensor DownsampleFeatures(Tensor accumulated, int scale);
}

/// <summary>
/// Per-layer key/value cache of block-causal attention at sampling time. The cache owns its tensors (they are detached
/// from every dispose scope, so the layers' own scopes may end freely); dispose it when the sampling call ends.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor?[] _keys;
    private readonly Tensor?[] _values;

    /// <summary>Creates an empty cache for <paramref name="layers"/> layers.</summary>
    public KvCache(int layers)
    {
        _keys = new Tensor?[layers];
        _values = new Tensor?[layers];
    }

    /// <summary>Number of layers.</summary>
    public int Layers => _keys.Length;

    /// <summary>Cached keys of <paramref name="layer"/> <c>[B, H, L, dh]</c>, or null before the first scale.</summary>
    public Tensor? Keys(int layer) => _keys[layer];

    /// <summary>
    /// Appends this call's keys/values <c>[B, H, n, dh]</c> of <paramref name="layer"/> along the sequence and returns all
    /// keys/values so far (owned by the cache: do not dispose them).
    /// </summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor keys, Tensor values)
    {
        Tensor k, v;
        if (_keys[layer] is { } k0)
        {
            k = cat([k0, keys], 2);
            v = cat([_values[layer]!, values], 2);
            k0.Dispose();
            _values[layer]!.Dispose();
        }
        else
        {
            k = keys.alias();
            v = values.alias();
        }
        _keys[layer] = k.DetachFromDisposeScope();
        _values[layer] = v.DetachFromDisposeScope();
        return (k, v);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        for (int i = 0; i < _keys.Length; i++)
        {
            _keys[i]?.Dispose();
            _values[i]?.Dispose();
            _keys[i] = _values[i] = null;
        }
    }
}

/// <summary>How the sampler computes each scale's logits (for tests and benchmarks).</summary>
/// <param name="UseKvCache">Reuse keys/values of earlier scales (normal); false recomputes the whole prefix every scale.</param>
/// <param name="RecordLogProbs">Also return the log-probabilities of the chosen tokens under the plain conditional distribution.</param>
/// <param name="RecordGuided">Record them instead under the guided, tempered distribution before truncation.</param>
public sealed record SamplerSettings(bool UseKvCache = true, bool RecordLogProbs = false, bool RecordGuided = false);
