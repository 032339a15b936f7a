using NextFlowRL.Hosting;
using NextFlowRL.Imaging;
using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Rewards.Ocr.Tests;

/// <summary>The built plugin folder loads in the real host (shared types, no private SkiaSharp) and scores image files.</summary>
public sealed class HostLoadingTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "ocr-host-" + Guid.NewGuid().ToString("N"));

    public HostLoadingTests()
    {
        var source = Repo.PluginFolder("NextFlowRL.Rewards.Ocr");
        var target = Path.Combine(_root, "plugins", "NextFlowRL.Rewards.Ocr");
        Directory.CreateDirectory(target);
        foreach (var file in Directory.GetFiles(source, "*", SearchOption.AllDirectories))
        {
            var dest = Path.Combine(target, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
            File.Copy(file, dest);
        }
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task PluginFolderLoadsAndScoresFilesThroughTheHost()
    {
        Assert.Empty(Directory.GetFiles(Repo.PluginFolder("NextFlowRL.Rewards.Ocr"), "libSkiaSharp*", SearchOption.AllDirectories));
        var config = NextFlowRLConfiguration.Build(["Rewards:ocr:Workers=2"], baseDirectory: _root);
        using var host = NextFlowRLHost.Build(config, pluginDirectories: [Path.Combine(_root, "plugins")]);
        var report = Assert.Single(host.Plugins, p => p.Name == "NextFlowRL.Rewards.Ocr");
        Assert.Equal(PluginStatus.Loaded, report.Status);
        Assert.Equal(["ocr", "ocr-block", "ocr-edit"], report.Components.Select(c => c.Name).Order());
        Assert.Contains(host.Commands, c => c.Path.SequenceEqual(["bench", "ocr"]));
        host.EnsureValidOptions();

        var file = Path.Combine(_root, "open.png");
        ImageFile.SavePng(Render.Word("open"), file);
        var reward = Assert.IsAssignableFrom<ISummarizingReward>(host.GetReward("ocr"));
        var results = await reward.ScoreAsync([new RewardSample(ImageFile.Load(file), "a sign that says 'open'")]);
        Assert.Equal(1, Assert.Single(results).Components["word_acc"]);
        Assert.Equal(1, reward.Summarize(results)["word_accuracy"]);
    }
}
