using System.Text.Json;
using NextFlowRL.Imaging;
using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Packaging.Tests;

/// <summary>
/// A new user's first hour, from the packed packages only: install the templates, create a reward plugin, build it,
/// run its tests, drop it into a plugins folder, list it, score images and train 2 steps with it.
/// </summary>
[Collection(PackedFeedCollection.Name)]
public sealed class TemplateTests(PackedFeed feed)
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(5);

    private async Task<CliResult> Dotnet(string workingDirectory, params string[] args)
    {
        var r = await ProcessRunner.RunAsync("dotnet", args, Long, workingDirectory);
        Assert.True(r.ExitCode == 0, $"dotnet {string.Join(" ", args)}\n{r}");
        return r;
    }

    private async Task<string> CreateFromTemplate(string template, string name)
    {
        var work = Path.Combine(feed.Root, "work-" + name);
        Directory.CreateDirectory(work);
        File.Copy(feed.NuGetConfig, Path.Combine(work, "nuget.config"));
        var hive = Path.Combine(feed.Root, "hive");
        await Dotnet(work, "new", "install", feed.Package("NextFlowRL.Templates"), "--debug:custom-hive", hive, "--force");
        await Dotnet(work, "new", template, "-n", name, "--debug:custom-hive", hive);
        return Path.Combine(work, name);
    }

    [Fact]
    public async Task ARewardPluginFromTheTemplateBuildsTestsLoadsScoresAndTrains()
    {
        var project = await CreateFromTemplate("nextflow-reward", "InkReward");
        var plugins = Path.Combine(project, "plugins");

        // The created project references the packed packages and nothing from this repository.
        var csproj = File.ReadAllText(Path.Combine(project, "src", "InkReward", "InkReward.csproj"));
        Assert.Contains($"Include=\"NextFlowRL.Abstractions\" Version=\"{feed.Version}\"", csproj);
        Assert.DoesNotContain(Repo.Root, csproj);

        await Dotnet(project, "build", "src/InkReward", $"-p:NextFlowPluginsDir={plugins}", "-nologo", "-v:quiet");
        var folder = Path.Combine(plugins, "InkReward");
        Assert.True(File.Exists(Path.Combine(folder, "InkReward.dll")));
        // The host provides the contracts: no copies in the plugin folder.
        Assert.False(File.Exists(Path.Combine(folder, "NextFlowRL.Abstractions.dll")));

        // Its tests pass as created, snapshot included (CI is set: a missing snapshot would fail).
        var test = await Dotnet(project, "test", "tests/InkReward.Tests", "-nologo");
        Assert.Contains("Passed!", test.Stdout);

        var list = await CliRunner.RunAsync(["plugins", "--plugins-dir", plugins], Long);
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Matches(@"ink-reward\s*│\s*reward\s*│\s*loaded", list.Stdout);

        var image = Path.Combine(feed.Root, "hello.png");
        ImageFile.SavePng(TestImages.Text("HELLO"), image);
        var score = await CliRunner.RunAsync(["score", "--plugins-dir", plugins, "--reward", "ink-reward", "--prompt", "HELLO", "--format", "json", image], Long);
        Assert.True(score.ExitCode == 0, score.ToString());
        Assert.Contains("ink_fraction", score.Stdout);

        var run = Path.Combine(feed.Root, "run");
        var train = await CliRunner.RunAsync(
        [
            "train", "--steps", "2", "--out", run, "--plugins-dir", plugins,
            "--set", "Train:Rewards:0:Name=ink-reward",
            "--set", "Train:PromptsPerStep=1", "--set", "Train:GroupSize=2", "--set", "Train:MicroBatch=2",
            "--set", "Train:Evaluate=false", "--set", "Train:SampleEvery=0",
        ], Long);
        Assert.True(train.ExitCode == 0, train.ToString());
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl"));
        Assert.Equal(2, lines.Length);
        Assert.True(JsonDocument.Parse(lines[1]).RootElement.GetProperty("reward_mean").ValueKind == JsonValueKind.Number, lines[1]);
    }
}
