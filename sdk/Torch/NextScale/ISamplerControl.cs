using NextFlowRL.Policies;

namespace NextFlowRL.Torch.NextScale;

/// <summary>
/// A policy built on the shared next-scale machinery that lets benchmarks and parity tests drive its sampler with
/// explicit settings (KV cache on or off, recorded log-probs) and states its compute per forward pass.
/// </summary>
public interface ISamplerControl
{
    /// <summary>The shared sampler with explicit settings (see <see cref="NextScaleSampler.Run{TCondition}"/>).</summary>
    (TokenTrajectories Trajectories, IReadOnlyList<Tensor> LogProbs) Run(IReadOnlyList<string> prompts, IReadOnlyList<Tensor>? prefix,
        SamplingOptions options, SamplerSettings settings, CancellationToken cancellationToken = default);

    /// <summary>
    /// Matmul FLOPs of one teacher-forced forward pass of the transformer over all scales for <paramref name="rows"/> rows
    /// (linear layers, attention products and the head; element-wise work and the frozen tokenizer excluded).
    /// </summary>
    double ForwardFlops(int rows);

    /// <summary>Precision of the sampler's and the log-probs' matrix products (<see cref="Precision.Autocast"/>).</summary>
    Devices.TorchPrecision Precision { get; }
}
