using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using NextFlowRL.Hosting;
using NextFlowRL.Imaging;
using NextFlowRL.Plugins;
using NextFlowRL.Rewards;
using NextFlowRL.Testing;
using NextFlowRL.Training;
using Xunit;

namespace NextFlowRL.Cluster.Tests;

/// <summary>Reward workers: a batch scored on two silos gives the trainer's in-process results.</summary>
public sealed class ClusterRewardTests
{
    [Fact]
    public async Task ABatchScoredOnTheRewardWorkersEqualsTheInProcessScores()
    {
        using var host = NextFlowRLHost.Build(new ConfigurationBuilder().Build(), pluginDirectories: [Path.Combine(Path.GetDirectoryName(Repo.CliDll)!, "plugins")]);
        using var primary = await WorkerProcess.StartAsync(Repo.WorkerDll, null);
        using var second = await WorkerProcess.StartAsync(Repo.WorkerDll, primary);
        var options = new TrainerOptions { Cluster = { Gateways = [primary.Gateway, second.Gateway], MinWorkers = 2 } };
        var trainer = WorkerFingerprint.Of(host).For([WorkerFingerprint.Key(ComponentKind.Reward, "ocr"), WorkerFingerprint.Key(ComponentKind.Policy, "var")]);
        using var cluster = await ClusterRollouts.ConnectAsync(options, trainer, NullLogger.Instance, default);
        Assert.Equal(2, cluster.Workers);

        string[] words = ["CAT", "DOG", "SUN", "MAP", "RED", "BOX"];
        var samples = words.Select((w, i) => new RewardSample(
            TextRenderer.Render(160, 64, (255, 255, 255), [new TextItem(i % 2 == 0 ? w : w[..2] + "Q", 80, 32, 36, "DejaVuSans-Bold", (0, 0, 0))]),
            $"a sign that says \"{w}\"")).ToList();
        var local = host.GetReward("ocr");
        var reward = new ClusterReward(cluster, local);
        var remote = await reward.ScoreAsync(samples);
        var here = await local.ScoreAsync(samples);
        Assert.Equal(here.Select(r => r.Score), remote.Select(r => r.Score));
        Assert.Equal(here.Select(r => r.Regions.Count), remote.Select(r => r.Regions.Count));
        Assert.Equal(((ISummarizingReward)local).Summarize(here), reward.Summarize(remote));
        // One batch of three on each silo.
        Assert.Contains("reward 'ocr': 3 images", primary.Output, StringComparison.Ordinal);
        Assert.Contains("reward 'ocr': 3 images", second.Output, StringComparison.Ordinal);
        Assert.Empty(await reward.ScoreAsync([]));
    }
}
