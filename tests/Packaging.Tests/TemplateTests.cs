using System.Text.Json;
using NextFlowRL.Imaging;
using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Packaging.Tests;

/// <summary>
/// A new user's first hour, from the packed packages only: install the templates, create a reward (or policy) plugin, build it,
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
        await Dotnet(work, "new", template, "-n", name, "--debug:custom-hive", feed.Hive);
        return Path.Combine(work, name);
    }

    /// <summary>
    /// Builds the created plugin into its plugins folder, checks that the host-provided assemblies stayed out of it,
    /// runs the created tests and checks that <c>nextflow-rl plugins</c> lists the component as loaded.
    /// </summary>
    private async Task<string> BuildTestAndList(string project, string name, string component, string kind, params string[] hostProvided)
    {
        var plugins = Path.Combine(project, "plugins");
        await Dotnet(project, "build", $"src/{name}", $"-p:NextFlowPluginsDir={plugins}", "-nologo", "-v:quiet");
        var folder = Path.Combine(plugins, name);
        Assert.True(File.Exists(Path.Combine(folder, name + ".dll")));
        foreach (var dll in hostProvided)
            Assert.False(File.Exists(Path.Combine(folder, dll)), $"{dll} was copied into the plugin folder");

        // The tests pass as created (CI is set: a missing snapshot would fail).
        var test = await Dotnet(project, "test", $"tests/{name}.Tests", "-nologo");
        Assert.Contains("Passed!", test.Stdout);

        var list = await CliRunner.RunAsync(["plugins", "--plugins-dir", plugins], Long);
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.True(System.Text.RegularExpressions.Regex.IsMatch(list.Stdout, $@"{component}\s*│\s*{kind}\s*│\s*loaded"), list.ToString());
        return plugins;
    }

    [Fact]
    public async Task ARewardPluginFromTheTemplateBuildsTestsLoadsScoresAndTrains()
    {
        var project = await CreateFromTemplate("nextflow-reward", "InkReward");

        // The created project references the packed packages and nothing from this repository.
        var csproj = File.ReadAllText(Path.Combine(project, "src", "InkReward", "InkReward.csproj"));
        Assert.Contains($"Include=\"NextFlowRL.Abstractions\" Version=\"{feed.Version}\"", csproj);
        Assert.DoesNotContain(Repo.Root, csproj);

        var plugins = await BuildTestAndList(project, "InkReward", "ink-reward", "reward", "NextFlowRL.Abstractions.dll");

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

    [Fact]
    public async Task APolicyPluginFromTheTemplateKeepsTheContractSamplesAndTrains()
    {
        var project = await CreateFromTemplate("nextflow-policy", "TinyBackbone");
        // The contract tests run LibTorch: the NextFlowRL.Torch package's Debian 12 fix applies to the test project.
        var plugins = await BuildTestAndList(project, "TinyBackbone", "tiny-backbone", "policy", "TorchSharp.dll", "NextFlowRL.Torch.dll", "NextFlowRL.Abstractions.dll");

        var samples = Path.Combine(feed.Root, "samples");
        var sample = await CliRunner.RunAsync(["sample", "--plugins-dir", plugins, "--policy", "tiny-backbone", "--prompt", "HELLO", "--count", "2", "--out", samples], Long);
        Assert.True(sample.ExitCode == 0, sample.ToString());
        var png = ImageFile.Load(Path.Combine(samples, "000.png"));
        Assert.Equal((32, 32), (png.Width, png.Height));

        var run = Path.Combine(feed.Root, "policy-run");
        var train = await CliRunner.RunAsync(
        [
            "train", "--steps", "2", "--out", run, "--plugins-dir", plugins,
            "--set", "Train:Policy=tiny-backbone", "--set", "Train:Rewards:0:Name=brightness",
            "--set", "Train:PromptsPerStep=1", "--set", "Train:GroupSize=2", "--set", "Train:MicroBatch=2",
            "--set", "Train:Evaluate=false", "--set", "Train:SampleEvery=0",
        ], Long);
        Assert.True(train.ExitCode == 0, train.ToString());
        Assert.Equal(2, File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Length);
    }
}
