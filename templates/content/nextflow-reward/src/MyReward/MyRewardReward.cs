using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using NextFlowRL.Imaging;
using NextFlowRL.Plugins;
using NextFlowRL.Rewards;

namespace MyReward;

/// <summary>Options, bound from Rewards:my-reward (for example --set Rewards:my-reward:TargetInk=0.2).</summary>
public sealed class MyRewardOptions
{
    /// <summary>Fraction of the image that should be ink (pixels darker than <see cref="InkThreshold"/>).</summary>
    [Range(0.0, 1.0)]
    public double TargetInk { get; set; } = 0.15;

    /// <summary>Gray level (0-255) below which a pixel counts as ink.</summary>
    [Range(1, 255)]
    public int InkThreshold { get; set; } = 128;
}

/// <summary>
/// An example reward to replace with your own: 1 when the ink fraction equals <see cref="MyRewardOptions.TargetInk"/>,
/// falling linearly to 0 at a distance of the target (or of 1 - target). It reports the ink's bounding box as a
/// region, so the trainer's Mask Propagation focuses the update on it.
/// </summary>
public sealed class MyRewardReward(string name, MyRewardOptions options) : IRewardModel
{
    /// <inheritdoc/>
    public string Name { get; } = name;

    /// <inheritdoc/>
    public Task<IReadOnlyList<RewardResult>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellationToken = default)
    {
        var results = new List<RewardResult>(samples.Count);
        foreach (var sample in samples)
        {
            cancellationToken.ThrowIfCancellationRequested();
            results.Add(Score(sample.Image));
        }
        return Task.FromResult<IReadOnlyList<RewardResult>>(results);
    }

    private RewardResult Score(RgbImage image)
    {
        var p = image.Pixels;
        int ink = 0, minX = int.MaxValue, minY = int.MaxValue, maxX = -1, maxY = -1;
        for (int y = 0; y < image.Height; y++)
            for (int x = 0; x < image.Width; x++)
            {
                int i = (y * image.Width + x) * 3;
                if ((p[i] + p[i + 1] + p[i + 2]) / 3 >= options.InkThreshold) continue;
                ink++;
                minX = Math.Min(minX, x); maxX = Math.Max(maxX, x);
                minY = Math.Min(minY, y); maxY = Math.Max(maxY, y);
            }
        double fraction = (double)ink / (image.Width * image.Height);
        double range = Math.Max(options.TargetInk, 1 - options.TargetInk);
        double score = Math.Max(0, 1 - Math.Abs(fraction - options.TargetInk) / range);
        var regions = ink == 0
            ? Array.Empty<RewardRegion>()
            : [new RewardRegion(minX, minY, maxX - minX + 1, maxY - minY + 1, 1.0, "ink")];
        return new RewardResult(score, new Dictionary<string, double> { ["ink_fraction"] = fraction }, regions);
    }
}

/// <summary>Registration: the reward and its validated options.</summary>
public static class MyRewardExtensions
{
    /// <summary>Adds the reward under <paramref name="name"/>.</summary>
    public static INextFlowRLBuilder AddMyReward(this INextFlowRLBuilder builder, string name = "my-reward", Action<MyRewardOptions>? configure = null)
    {
        builder.AddComponentOptions(ComponentKind.Reward, name, configure);
        return builder.AddReward(name, "ink fraction toward a target (example reward)", (services, n) =>
            new MyRewardReward(n, services.GetRequiredService<IOptionsMonitor<MyRewardOptions>>().Get(n)));
    }
}

/// <summary>The entry type the host looks for: exactly one per plugin assembly.</summary>
public sealed class MyRewardPlugin : INextFlowRLPlugin
{
    /// <inheritdoc/>
    public void Register(INextFlowRLBuilder builder) => builder.AddMyReward();
}
