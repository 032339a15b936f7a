using System.ComponentModel.DataAnnotations;
using NextFlowRL.Plugins;
using NextFlowRL.Torch.Devices;

namespace NextFlowRL.Rewards.Clip;

/// <summary>Options shared by the CLIP-family rewards.</summary>
public abstract class ClipFamilyRewardOptions : ITorchComponentOptions
{
    /// <summary>The model folder (see the plugin README for the files it needs). Checked when the reward first scores.</summary>
    public string? ModelPath { get; set; }

    /// <summary>Weights file inside <see cref="ModelPath"/>; null for the layout's default name.</summary>
    public string? WeightsFile { get; set; }

    /// <summary>Text put before every prompt.</summary>
    public string TextPrefix { get; set; } = "";

    /// <summary>Image-text pairs per forward pass.</summary>
    [Range(1, 4096)]
    public int BatchSize { get; set; } = 16;

    /// <summary>Torch device: <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>; unset = the root <c>Device</c> (default <c>cpu</c>).</summary>
    public string? Device { get; set; }

    /// <summary><c>Fp32</c> or <c>Bf16</c> matrix products; unset = the root <c>Precision</c> (default fp32).</summary>
    public TorchPrecision? Precision { get; set; }
}

/// <summary>Options of the <c>clip</c> reward (section <c>Rewards:clip</c>).</summary>
public sealed class ClipRewardOptions : ClipFamilyRewardOptions
{
    /// <summary>Creates options with CVTG-2K's defaults: prefix <c>"A photo depicts "</c>, scale 2.5.</summary>
    public ClipRewardOptions() => TextPrefix = "A photo depicts ";

    /// <summary>The score is <c>Scale * max(cosine, 0)</c> (2.5 in CLIPScore).</summary>
    [Range(0.0, 1000.0)]
    public double Scale { get; set; } = 2.5;
}

/// <summary>Options of the <c>hps</c> reward (section <c>Rewards:hps</c>).</summary>
public sealed class HpsRewardOptions : ClipFamilyRewardOptions
{
    /// <summary>The OpenCLIP model config inside <see cref="ClipFamilyRewardOptions.ModelPath"/>.</summary>
    [Required]
    public string ConfigFile { get; set; } = "open_clip_config.json";
}

/// <summary>
/// A reward whose score is a differentiable function of the image: trainers can ask for gradients with respect to
/// image tensors.
/// </summary>
public interface IDifferentiableImageReward : IRewardModel
{
    /// <summary>
    /// Scores <c>[batch]</c> of image tensors <c>[batch, 3, H, W]</c> (RGB in [0, 1]) for <paramref name="prompts"/>,
    /// with gradients flowing to <paramref name="images"/>. Call inside a <c>torch.NewDisposeScope()</c>.
    /// </summary>
    Tensor ScoreTensor(Tensor images, IReadOnlyList<string> prompts);
}

/// <summary>
/// Shared behaviour of CLIP-family rewards: the model loads on first use (one clear error if the folder is unusable,
/// repeated on every call), batches run without gradients, component <c>cosine</c> holds the raw similarity.
/// </summary>
public abstract class ClipFamilyReward : IDifferentiableImageReward, IDisposable
{
    private readonly Func<ClipScorer> _load;
    private readonly object _gate = new();
    private ClipScorer? _scorer;
    private ClipModelException? _failure;

    /// <summary>Creates the reward; <paramref name="load"/> runs on first use.</summary>
    protected ClipFamilyReward(string name, ClipFamilyRewardOptions options, Func<ClipScorer> load)
    {
        Name = name;
        Options = options;
        _load = load;
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <summary>The options.</summary>
    protected ClipFamilyRewardOptions Options { get; }

    /// <summary>The loaded model (loads it on first access).</summary>
    /// <exception cref="ClipModelException">The model folder cannot be used.</exception>
    public ClipScorer Scorer
    {
        get
        {
            lock (_gate)
            {
                if (_scorer is not null) return _scorer;
                if (_failure is not null) throw new ClipModelException($"{Name}: {_failure.Message}", _failure);
                try
                {
                    return _scorer = _load();
                }
                catch (Exception e)
                {
                    // Unusable folders are ClipModelExceptions already; anything else (e.g. a device the torch
                    // backend does not have) is wrapped so the caller still gets one line.
                    _failure = e as ClipModelException ?? new ClipModelException($"cannot load the model on '{Options.Device}': {e.Message.ReplaceLineEndings(" ")}", e);
                    throw new ClipModelException($"{Name}: {_failure.Message}", _failure);
                }
            }
        }
    }

    /// <summary>Maps a cosine similarity to the score.</summary>
    public abstract double ScoreOf(double cosine);

    /// <summary>Maps differentiable cosine similarities to scores.</summary>
    protected abstract Tensor ScoreOf(Tensor cosine);

    /// <inheritdoc/>
    public Task<IReadOnlyList<RewardResult>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(samples);
        return Task.Run<IReadOnlyList<RewardResult>>(() =>
        {
            if (samples.Count == 0) return [];
            var scorer = Scorer;
            var cos = scorer.Cosine(samples.Select(s => s.Image).ToList(), samples.Select(s => Options.TextPrefix + s.Prompt).ToList(), Options.BatchSize, cancellationToken);
            return cos.Select(c => new RewardResult(ScoreOf(c), new Dictionary<string, double> { ["cosine"] = c }, [])).ToList();
        }, cancellationToken);
    }

    /// <inheritdoc/>
    public Tensor ScoreTensor(Tensor images, IReadOnlyList<string> prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        return ScoreOf(Scorer.CosineTensor(images, prompts.Select(p => Options.TextPrefix + p).ToList()));
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_gate) _scorer?.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>
/// CLIPScore as in CVTG-2K: <c>Scale * max(cos(image, TextPrefix + prompt), 0)</c> with a Hugging Face
/// <c>CLIPModel</c> folder (e.g. openai/clip-vit-large-patch14). Component <c>cosine</c>. No regions.
/// </summary>
public sealed class ClipReward : ClipFamilyReward
{
    private readonly double _scale;

    /// <summary>Creates the reward.</summary>
    public ClipReward(string name, ClipRewardOptions options)
        : base(name, options, () => ClipScorer.LoadHuggingFace(options.ModelPath ?? "", options.Device, options.WeightsFile, options.Precision ?? TorchPrecision.Fp32)) =>
        _scale = options.Scale;

    /// <inheritdoc/>
    public override double ScoreOf(double cosine) => _scale * Math.Max(cosine, 0);

    /// <inheritdoc/>
    protected override Tensor ScoreOf(Tensor cosine) => nn.functional.relu(cosine) * _scale;
}

/// <summary>
/// HPSv2/v2.1: cosine of the normalized image and text features of an OpenCLIP ViT-H/14 fine-tuned on human
/// preferences (score is the cosine, typically 0.2-0.35 for real models). Component <c>cosine</c>. No regions.
/// </summary>
public sealed class HpsReward : ClipFamilyReward
{
    /// <summary>Creates the reward.</summary>
    public HpsReward(string name, HpsRewardOptions options)
        : base(name, options, () => ClipScorer.LoadOpenClip(options.ModelPath ?? "", options.Device, options.ConfigFile, options.WeightsFile, options.Precision ?? TorchPrecision.Fp32))
    {
    }

    /// <inheritdoc/>
    public override double ScoreOf(double cosine) => cosine;

    /// <inheritdoc/>
    protected override Tensor ScoreOf(Tensor cosine) => cosine;
}

/// <summary>Registration of the CLIP-family rewards.</summary>
public static class ClipRewardExtensions
{
    /// <summary>Adds a CLIPScore reward under <paramref name="name"/>, options from <c>Rewards:&lt;name&gt;</c>.</summary>
    public static INextFlowRLBuilder AddClipReward(this INextFlowRLBuilder builder, string name = "clip", Action<ClipRewardOptions>? configure = null)
    {
        builder.AddTorchComponentOptions(ComponentKind.Reward, name, configure);
        return builder.AddReward(name, "CLIPScore 2.5*max(cos,0) with a Hugging Face CLIP model folder", (sp, n) =>
            new ClipReward(n, sp.GetRequiredService<IOptionsMonitor<ClipRewardOptions>>().Get(n)));
    }

    /// <summary>Adds an HPSv2 reward under <paramref name="name"/>, options from <c>Rewards:&lt;name&gt;</c>.</summary>
    public static INextFlowRLBuilder AddHpsReward(this INextFlowRLBuilder builder, string name = "hps", Action<HpsRewardOptions>? configure = null)
    {
        builder.AddTorchComponentOptions(ComponentKind.Reward, name, configure);
        return builder.AddReward(name, "HPSv2/v2.1 human preference score with an OpenCLIP ViT-H/14 folder", (sp, n) =>
            new HpsReward(n, sp.GetRequiredService<IOptionsMonitor<HpsRewardOptions>>().Get(n)));
    }
}

/// <summary>Plugin entry: registers <c>clip</c> and <c>hps</c>.</summary>
public sealed class ClipPlugin : INextFlowRLPlugin
{
    /// <inheritdoc/>
    public void Register(INextFlowRLBuilder builder)
    {
        builder.AddClipReward();
        builder.AddHpsReward();
    }
}
