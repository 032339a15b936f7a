using System.ComponentModel.DataAnnotations;
using NextFlowRL.Imaging;
using NextFlowRL.Plugins;

namespace NextFlowRL.Rewards.ImageStats;

/// <summary>Which image statistic a <see cref="ImageStatsReward"/> steers toward its target.</summary>
public enum ImageStatistic
{
    /// <summary>Mean luma (Rec. 601 weights) in [0, 1].</summary>
    Brightness,

    /// <summary>Standard deviation of luma in [0, 0.5] (RMS contrast).</summary>
    Contrast,
}

/// <summary>Options of an image-statistics reward (section <c>Rewards:&lt;name&gt;</c>).</summary>
public sealed class ImageStatsRewardOptions
{
    /// <summary>The statistic to score.</summary>
    public ImageStatistic Statistic { get; set; } = ImageStatistic.Brightness;

    /// <summary>The wanted value of the statistic.</summary>
    [Range(0.0, 1.0)]
    public double Target { get; set; } = 0.5;
}

/// <summary>
/// Scores images by how close a statistic is to a target: <c>score = 1 - |stat - target|</c> (1 is best).
/// Components: <c>brightness</c>, <c>contrast</c> (always both). No regions.
/// </summary>
public sealed class ImageStatsReward : IRewardModel
{
    private readonly ImageStatsRewardOptions _options;

    /// <summary>Creates the reward.</summary>
    public ImageStatsReward(string name, ImageStatsRewardOptions options)
    {
        Name = name;
        _options = options;
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public Task<IReadOnlyList<RewardResult>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(samples);
        var results = new RewardResult[samples.Count];
        for (int i = 0; i < samples.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (brightness, contrast) = Measure(samples[i].Image);
            double stat = _options.Statistic == ImageStatistic.Brightness ? brightness : contrast;
            results[i] = new RewardResult(
                1 - Math.Abs(stat - _options.Target),
                new Dictionary<string, double> { ["brightness"] = brightness, ["contrast"] = contrast },
                []);
        }
        return Task.FromResult<IReadOnlyList<RewardResult>>(results);
    }

    /// <summary>Mean and standard deviation of luma in [0, 1].</summary>
    public static (double Brightness, double Contrast) Measure(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var p = image.Pixels;
        double sum = 0, sumSq = 0;
        for (int i = 0; i < p.Length; i += 3)
        {
            double y = (0.299 * p[i] + 0.587 * p[i + 1] + 0.114 * p[i + 2]) / 255.0;
            sum += y;
            sumSq += y * y;
        }
        int n = image.Width * image.Height;
        double mean = sum / n;
        return (mean, Math.Sqrt(Math.Max(0, sumSq / n - mean * mean)));
    }
}

/// <summary>Registration of image-statistics rewards.</summary>
public static class ImageStatsRewardExtensions
{
    /// <summary>Adds an image-statistics reward under <paramref name="name"/>, options from <c>Rewards:&lt;name&gt;</c>.</summary>
    public static INextFlowRLBuilder AddImageStatsReward(
        this INextFlowRLBuilder builder,
        string name = "brightness",
        Action<ImageStatsRewardOptions>? configure = null)
    {
        builder.AddComponentOptions(ComponentKind.Reward, name, configure);
        return builder.AddReward(name, "image statistics toward a target (needs no model)", (sp, n) =>
            new ImageStatsReward(n, sp.GetRequiredService<IOptionsMonitor<ImageStatsRewardOptions>>().Get(n)));
    }
}

/// <summary>Plugin entry: registers <c>brightness</c> (target 0.5) and <c>contrast</c> (target 0.25).</summary>
public sealed class ImageStatsPlugin : INextFlowRLPlugin
{
    /// <inheritdoc/>
    public void Register(INextFlowRLBuilder builder)
    {
        builder.AddImageStatsReward("brightness", o => o.Statistic = ImageStatistic.Brightness);
        builder.AddImageStatsReward("contrast", o =>
        {
            o.Statistic = ImageStatistic.Contrast;
            if (builder.GetComponentSection(ComponentKind.Reward, "contrast")["Target"] is null) o.Target = 0.25;
        });
    }
}
