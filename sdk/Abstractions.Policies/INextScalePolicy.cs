using NextFlowRL.Imaging;
using TorchSharp;
using static TorchSharp.torch;

namespace NextFlowRL.Policies;

/// <summary>
/// A next-scale generator (VAR family) as seen by a trainer: it samples whole token grids coarse to fine, continues
/// trajectories from a prefix, scores given tokens by teacher forcing, and decodes grids to images.
/// </summary>
/// <remarks>
/// The distribution behind <see cref="LogProbs"/> is the plain conditional one (no guidance, no truncation,
/// temperature 1); it equals the sampler's distribution when sampling with <see cref="SamplingOptions.Plain"/>.
/// Implementations are not thread-safe.
/// </remarks>
public interface INextScalePolicy : IDisposable
{
    /// <summary>The policy's name (e.g. <c>var</c>).</summary>
    string Name { get; }

    /// <summary>Facts for logs and model cards.</summary>
    PolicyInfo Info { get; }

    /// <summary>The scale schedule r_1..r_T.</summary>
    ScaleSchedule Schedule { get; }

    /// <summary>The device the parameters and token tensors live on.</summary>
    Device Device { get; }

    /// <summary>Samples one complete trajectory per prompt (repeat a prompt to get a group). Runs without gradients.</summary>
    TokenTrajectories Sample(IReadOnlyList<string> prompts, SamplingOptions options, CancellationToken cancellationToken = default);

    /// <summary>
    /// Completes trajectories whose first <c>prefix.Length</c> scales are given, sampling the remaining scales.
    /// Returns full trajectories (the prefix grids followed by the new ones). Runs without gradients.
    /// </summary>
    TokenTrajectories Continue(TokenTrajectories prefix, SamplingOptions options, CancellationToken cancellationToken = default);

    /// <summary>
    /// Teacher-forced per-token log-probabilities of the given tokens under the plain conditional distribution, for
    /// scales <paramref name="firstScale"/> (inclusive) to <paramref name="endScale"/> (exclusive). Element i of the
    /// result is a float32 <c>[rows, h, w]</c> tensor for scale <c>firstScale + i</c>. Gradients flow to the trainable
    /// parameters when autograd is on.
    /// </summary>
    IReadOnlyList<Tensor> LogProbs(TokenTrajectories trajectories, int firstScale, int endScale);

    /// <summary>
    /// Like <see cref="LogProbs"/>, under the distribution the sampler draws from with <paramref name="guidance"/> before
    /// truncation: classifier-free guidance at <see cref="SamplingOptions.CfgScale"/> (with the policy's own schedule of
    /// the guidance over scales) and <see cref="SamplingOptions.Temperature"/>; top-k and top-p are not applied.
    /// Policies without it keep this default, which throws.
    /// </summary>
    /// <exception cref="NotSupportedException">The policy computes plain conditional log-probs only.</exception>
    IReadOnlyList<Tensor> GuidedLogProbs(TokenTrajectories trajectories, int firstScale, int endScale, SamplingOptions guidance) =>
        throw new NotSupportedException($"policy '{Name}' computes log-probs of the plain conditional distribution only; use Train:LossDistribution=Conditional");

    /// <summary>Decodes complete trajectories to images, one per row.</summary>
    IReadOnlyList<RgbImage> Decode(TokenTrajectories trajectories);

    /// <summary>
    /// The tokenizer's encoding of images (one row per image, with the given prompts): the inverse direction of
    /// <see cref="Decode"/>, for checking a port against its reference and for teacher forcing on real images.
    /// Policies without an encoder keep this default, which throws.
    /// </summary>
    /// <exception cref="NotSupportedException">The policy has no image encoder.</exception>
    /// <exception cref="ArgumentException">Counts differ or an image has the wrong size.</exception>
    TokenTrajectories Encode(IReadOnlyList<RgbImage> images, IReadOnlyList<string> prompts) =>
        throw new NotSupportedException($"policy '{Name}' has no image encoder");

    /// <summary>The parameters a trainer updates.</summary>
    IReadOnlyList<TorchSharp.Modules.Parameter> TrainableParameters();

    /// <summary>Switches dropout and similar layers between training and evaluation behaviour.</summary>
    void SetTraining(bool training);

    /// <summary>A deep copy with gradients disabled (the frozen reference policy of KL regularization).</summary>
    INextScalePolicy CreateFrozenCopy();

    /// <summary>Writes weights and configuration into <paramref name="directory"/> atomically (temp files + rename).</summary>
    void Save(string directory);
}

/// <summary>Descriptive facts about a policy instance.</summary>
/// <param name="Model">Model name (e.g. <c>tiny-text</c>).</param>
/// <param name="ImageWidth">Decoded image width in pixels.</param>
/// <param name="ImageHeight">Decoded image height in pixels.</param>
/// <param name="Parameters">Number of trainable parameters.</param>
/// <param name="Source">Where the weights came from (path).</param>
public sealed record PolicyInfo(string Model, int ImageWidth, int ImageHeight, long Parameters, string Source);

/// <summary>Creates policy instances; registered by a policy plugin under the policy's name.</summary>
public interface IPolicyProvider
{
    /// <summary>The registered name (e.g. <c>var</c>).</summary>
    string Name { get; }

    /// <summary>
    /// Loads a policy from a checkpoint directory written by <see cref="INextScalePolicy.Save"/>, or the plugin's default
    /// model when <paramref name="checkpoint"/> is null.
    /// </summary>
    /// <exception cref="InvalidDataException">The checkpoint is missing, corrupt or does not match the architecture; the message says which.</exception>
    INextScalePolicy Load(string? checkpoint, Device? device = null);
}
