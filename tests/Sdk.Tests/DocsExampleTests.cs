using System.Text.RegularExpressions;
using NextFlowRL.Hosting;
using NextFlowRL.Imaging;
using NextFlowRL.Rewards;
using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Tests;

/// <summary>docs/writing-a-reward-plugin.md: its C# code compiles as written, loads as a plugin and scores.</summary>
public sealed class DocsExampleTests : IDisposable
{
    private readonly string _root = TestPlugins.TempDir();

    public void Dispose()
    {
        try { Directory.Delete(_root, true); } catch (IOException) { }
    }

    public static string ExampleSource()
    {
        var doc = File.ReadAllText(Repo.PathOf("docs", "writing-a-reward-plugin.md"));
        var blocks = Regex.Matches(doc, "```csharp\n(.*?)```", RegexOptions.Singleline).Select(m => m.Groups[1].Value).ToList();
        return Assert.Single(blocks);
    }

    [Fact]
    public async Task ExamplePluginCompilesLoadsAndScores()
    {
        TestPlugins.Create(_root, "Example.Colorfulness", ExampleSource());
        var config = NextFlowRLConfiguration.Build(["Rewards:colorfulness:Scale=50"], baseDirectory: Path.GetTempPath());
        using var host = NextFlowRLHost.Build(config, pluginDirectories: [_root]);
        Assert.Equal(PluginStatus.Loaded, Assert.Single(host.Plugins).Status);
        Assert.Empty(host.ValidateOptions());

        var reward = host.GetReward("colorfulness");
        var gray = RgbImage.Filled(8, 8, 120, 120, 120);
        var red = RgbImage.Filled(8, 8, 255, 0, 0);
        var results = await reward.ScoreAsync([new RewardSample(gray, "gray"), new RewardSample(red, "red")]);
        Assert.Equal(0, results[0].Score, 9);
        // Pure red: mean rg = 255, mean yb = 127.5 -> 0.3 * sqrt(255^2 + 127.5^2) = 85.53; Scale 50 caps the score at 1.
        Assert.Equal(85.5305, results[1].Components["colorfulness"], 3);
        Assert.Equal(1.0, results[1].Score);
    }

    [Fact]
    public void ExampleOptionsAreValidatedAtStart()
    {
        TestPlugins.Create(_root, "Example.Colorfulness", ExampleSource());
        var config = NextFlowRLConfiguration.Build(["Rewards:colorfulness:Scale=0"], baseDirectory: Path.GetTempPath());
        using var host = NextFlowRLHost.Build(config, pluginDirectories: [_root]);
        var error = Assert.Single(host.ValidateOptions());
        Assert.Contains("Scale", error);
    }
}
