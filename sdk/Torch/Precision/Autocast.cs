using NextFlowRL.Torch.Devices;
using TorchSharp.Modules;

namespace NextFlowRL.Torch.Precision;

/// <summary>
/// Autocast for TorchSharp, which (0.107) has no <c>torch.autocast</c>: inside <see cref="Enter"/> with
/// <see cref="TorchPrecision.Bf16"/>, the matrix products that go through <see cref="Linear(Tensor, Tensor, Tensor?)"/>,
/// <see cref="AutocastLinear"/> and <see cref="Attention"/> run in bfloat16 and return float32, as PyTorch's CPU/CUDA
/// autocast does for <c>linear</c>, <c>matmul</c> and <c>scaled_dot_product_attention</c>. Everything else — norms,
/// softmax and log-softmax, sampling, losses, the weights themselves and the optimizer state — stays float32, and the
/// casts are part of the autograd graph, so gradients reach the float32 weights. The scope flows with the logical call
/// (<see cref="AsyncLocal{T}"/>), never leaks into other threads' work, and nests.
/// </summary>
public static class Autocast
{
    private static readonly AsyncLocal<TorchPrecision> Current = new();

    /// <summary>The precision in effect on this logical call.</summary>
    public static TorchPrecision Precision => Current.Value;

    /// <summary>Runs the matrix products of the calling code in <paramref name="precision"/> until the scope is disposed.</summary>
    public static IDisposable Enter(TorchPrecision precision)
    {
        var previous = Current.Value;
        Current.Value = precision;
        return new Scope(previous);
    }

    /// <summary><c>x W^T + b</c>, in bfloat16 inside a <see cref="TorchPrecision.Bf16"/> scope (result in <paramref name="x"/>'s dtype).</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        if (Current.Value != TorchPrecision.Bf16 || x.dtype != ScalarType.Float32) return nn.functional.linear(x, weight, bias);
        using var scope = NewDisposeScope();
        var y = nn.functional.linear(x.to(ScalarType.BFloat16), weight.to(ScalarType.BFloat16), bias?.to(ScalarType.BFloat16));
        return y.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary><c>scaled_dot_product_attention</c>, in bfloat16 inside a <see cref="TorchPrecision.Bf16"/> scope (result float32).</summary>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, Tensor? mask = null)
    {
        ArgumentNullException.ThrowIfNull(q);
        if (Current.Value != TorchPrecision.Bf16 || q.dtype != ScalarType.Float32) return nn.functional.scaled_dot_product_attention(q, k, v, mask);
        using var scope = NewDisposeScope();
        // A float mask holds -inf/0 biases: bfloat16 represents both exactly.
        var m = mask is not null && mask.dtype == ScalarType.Float32 ? mask.to(ScalarType.BFloat16) : mask;
        var o = nn.functional.scaled_dot_product_attention(q.to(ScalarType.BFloat16), k.to(ScalarType.BFloat16), v.to(ScalarType.BFloat16), m);
        return o.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary><c>a @ b</c>, in bfloat16 inside a <see cref="TorchPrecision.Bf16"/> scope (result float32).</summary>
    public static Tensor MatMul(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (Current.Value != TorchPrecision.Bf16 || a.dtype != ScalarType.Float32) return a.matmul(b);
        using var scope = NewDisposeScope();
        return a.to(ScalarType.BFloat16).matmul(b.to(ScalarType.BFloat16)).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    private sealed class Scope(TorchPrecision previous) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            Current.Value = previous;
        }
    }
}

/// <summary>
/// A drop-in for TorchSharp's <c>nn.Linear</c> that honours <see cref="Autocast"/>: the same parameter names
/// (<c>weight</c>, <c>bias</c>, so state dicts are unchanged), the same initialisation in the same order (Kaiming-uniform
/// with a = sqrt(5), bias uniform in +-1/sqrt(fan_in): the same random draws as <c>nn.Linear</c> under one seed).
/// </summary>
public sealed class AutocastLinear : nn.Module<Tensor, Tensor>
{
    /// <summary>Creates the layer.</summary>
    public AutocastLinear(long inputSize, long outputSize, bool hasBias = true) : base(nameof(AutocastLinear))
    {
        InputSize = inputSize;
        OutputSize = outputSize;
        weight = new Parameter(empty(outputSize, inputSize));
        nn.init.kaiming_uniform_(weight, a: Math.Sqrt(5));
        register_parameter("weight", weight);
        if (hasBias)
        {
            bias = new Parameter(empty(outputSize));
            double bound = inputSize > 0 ? 1.0 / Math.Sqrt(inputSize) : 0;
            nn.init.uniform_(bias, -bound, bound);
            register_parameter("bias", bias);
        }
    }

    /// <summary>Input features.</summary>
    public long InputSize { get; }

    /// <summary>Output features.</summary>
    public long OutputSize { get; }

    /// <summary>The weight, <c>[out, in]</c> (the name mirrors <c>nn.Linear.weight</c>).</summary>
    public Parameter weight { get; }

    /// <summary>The bias, <c>[out]</c>, or null (the name mirrors <c>nn.Linear.bias</c>).</summary>
    public Parameter? bias { get; }

    /// <summary>
    /// Keep this layer in float32 even inside a bf16 scope. Output heads over large vocabularies set it: their logits feed
    /// the sampler and the log-probs, and bf16 rounding there is most of the rollout/update mismatch (docs/gpu-and-windows.md).
    /// </summary>
    public bool KeepFloat32 { get; init; }

    /// <summary>The LoRA adapter attached by <see cref="Adapters.LoraSet.Attach"/>, or null.</summary>
    public Adapters.LoraAdapter? Adapter { get; internal set; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        var y = KeepFloat32 ? nn.functional.linear(input, weight, bias) : Autocast.Linear(input, weight, bias);
        if (Adapter is null || !Adapters.LoraSet.Active) return y;
        using var delta = Adapter.Delta(input);
        using var plain = y;
        return plain.add(delta);
    }
}

/// <summary>Factory in the style of <c>torch.nn</c>: <c>AutocastModules.Linear(in, out)</c> where models wrote <c>Linear(in, out)</c>.</summary>
public static class AutocastModules
{
    /// <summary>An <see cref="AutocastLinear"/>.</summary>
    public static AutocastLinear Linear(long inputSize, long outputSize, bool hasBias = true) => new(inputSize, outputSize, hasBias);

    /// <summary>An <see cref="AutocastLinear"/> that stays float32 in every scope (output heads).</summary>
    public static AutocastLinear Float32Linear(long inputSize, long outputSize, bool hasBias = true) => new(inputSize, outputSize, hasBias) { KeepFloat32 = true };
}
