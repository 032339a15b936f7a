using TorchSharp.Modules;

namespace NextFlowRL.Policies.Var.Training;

/// <summary>
/// AdamW with decoupled weight decay whose moment state is plain named tensors, so pretraining checkpoints can store
/// and resume it exactly (safetensors <c>optim.safetensors</c>).
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly (string Name, Parameter P)[] _params;
    private readonly Dictionary<string, Tensor> _m = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tensor> _v = new(StringComparer.Ordinal);

    /// <summary>Creates the optimizer over named parameters.</summary>
    public AdamW(IEnumerable<(string Name, Parameter P)> parameters, double beta1 = 0.9, double beta2 = 0.95, double weightDecay = 0.01, double eps = 1e-8)
    {
        _params = parameters.Where(p => p.P.requires_grad).ToArray();
        Beta1 = beta1;
        Beta2 = beta2;
        WeightDecay = weightDecay;
        Eps = eps;
        foreach (var (n, p) in _params)
        {
            _m[n] = zeros_like(p).detach();
            _v[n] = zeros_like(p).detach();
        }
    }

    /// <summary>First-moment decay.</summary>
    public double Beta1 { get; }

    /// <summary>Second-moment decay.</summary>
    public double Beta2 { get; }

    /// <summary>Decoupled weight decay (not applied to 1-D parameters: biases, norms, embeddings' vectors).</summary>
    public double WeightDecay { get; }

    /// <summary>Numerical epsilon.</summary>
    public double Eps { get; }

    /// <summary>Number of steps taken.</summary>
    public long Steps { get; private set; }

    /// <summary>Clears gradients.</summary>
    public void ZeroGrad()
    {
        foreach (var (_, p) in _params) p.grad?.zero_();
    }

    /// <summary>Clips the global gradient norm; returns the norm before clipping.</summary>
    public double ClipGradNorm(double maxNorm)
    {
        using var scope = NewDisposeScope();
        var grads = _params.Where(p => p.P.grad is not null).Select(p => p.P.grad!).ToArray();
        if (grads.Length == 0) return 0;
        double norm = stack(grads.Select(g => g.norm()).ToArray()).norm().item<float>();
        if (norm > maxNorm && maxNorm > 0)
        {
            using var _ = no_grad();
            foreach (var g in grads) g.mul_(maxNorm / (norm + 1e-6));
        }
        return norm;
    }

    /// <summary>One update with learning rate <paramref name="lr"/>.</summary>
    public void Step(double lr)
    {
        Steps++;
        double bc1 = 1 - Math.Pow(Beta1, Steps), bc2 = 1 - Math.Pow(Beta2, Steps);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        foreach (var (n, p) in _params)
        {
            var g = p.grad;
            if (g is null) continue;
            var m = _m[n];
            var v = _v[n];
            m.mul_(Beta1).add_(g, alpha: 1 - Beta1);
            v.mul_(Beta2).addcmul_(g, g, value: 1 - Beta2);
            if (WeightDecay > 0 && p.dim() > 1) p.mul_(1 - lr * WeightDecay);
            var denom = (v / bc2).sqrt_().add_(Eps);
            p.addcdiv_(m, denom, value: -lr / bc1);
        }
    }

    /// <summary>The state as named tensors (<c>m.*</c>, <c>v.*</c>) for checkpoints.</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> State() =>
        _m.Select(kv => KeyValuePair.Create("m." + kv.Key, kv.Value)).Concat(_v.Select(kv => KeyValuePair.Create("v." + kv.Key, kv.Value)));

    /// <summary>Restores the state written by <see cref="State"/>.</summary>
    /// <exception cref="InvalidDataException">A moment tensor is missing or mis-shaped.</exception>
    public void Load(IReadOnlyDictionary<string, Tensor> state, long steps, string source)
    {
        using var _ = no_grad();
        foreach (var (n, _) in _params)
        {
            foreach (var (prefix, dict) in new[] { ("m.", _m), ("v.", _v) })
            {
                if (!state.TryGetValue(prefix + n, out var t) || !t.shape.SequenceEqual(dict[n].shape))
                    throw new InvalidDataException($"{source}: optimizer state for '{n}' missing or mis-shaped.");
                dict[n].copy_(t);
            }
        }
        Steps = steps;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var t in _m.Values.Concat(_v.Values)) t.Dispose();
    }
}
