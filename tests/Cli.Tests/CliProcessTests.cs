using System.Text.Json;
using NextFlowRL.Imaging;
using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Cli.Tests;

/// <summary><c>nextflow-rl plugins</c> and <c>score</c> run as real processes.</summary>
public sealed class CliProcessTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nextflow-cli-tests", Guid.NewGuid().ToString("N")[..10]);

    public CliProcessTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private string Image(string name, byte r, byte g, byte b)
    {
        var path = Path.Combine(_dir, name);
        ImageFile.SavePng(RgbImage.Filled(8, 8, r, g, b), path);
        return path;
    }

    private static void AssertOneCleanErrorLine(CliResult result)
    {
        Assert.NotEqual(0, result.ExitCode);
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length >= 1, result.ToString());
        Assert.All(lines, l => Assert.StartsWith("nextflow-rl: error: ", l));
        Assert.DoesNotContain("   at ", result.Stderr);
    }

    [Fact]
    public async Task PluginsJsonListsTheBundledPluginAsLoaded()
    {
        var result = await CliRunner.RunAsync("plugins", "--format", "json");
        Assert.True(result.ExitCode == 0, result.ToString());
        using var doc = JsonDocument.Parse(result.Stdout);
        var brightness = doc.RootElement.EnumerateArray().Single(e => e.GetProperty("name").GetString() == "brightness");
        Assert.Equal("reward", brightness.GetProperty("kind").GetString());
        Assert.Equal("loaded", brightness.GetProperty("status").GetString());
        Assert.False(string.IsNullOrEmpty(brightness.GetProperty("version").GetString()));
        Assert.Equal(JsonValueKind.Null, brightness.GetProperty("reason").ValueKind);
    }

    [Fact]
    public async Task ScoreAnImageFileAsJson()
    {
        var gray = Image("gray.png", 128, 128, 128);
        var result = await CliRunner.RunAsync("score", "--reward", "brightness", "--prompt", "mid gray", gray, "--format", "json");
        Assert.True(result.ExitCode == 0, result.ToString());
        using var doc = JsonDocument.Parse(result.Stdout);
        var row = Assert.Single(doc.RootElement.EnumerateArray());
        Assert.Equal(gray, row.GetProperty("image").GetString());
        Assert.Equal("mid gray", row.GetProperty("prompt").GetString());
        Assert.Equal(1 - Math.Abs(128 / 255.0 - 0.5), row.GetProperty("score").GetDouble(), 6);
        Assert.True(row.GetProperty("components").TryGetProperty("brightness", out _));
        Assert.Equal(0, row.GetProperty("regions").GetArrayLength());
        Assert.Equal(JsonValueKind.Null, row.GetProperty("error").ValueKind);
    }

    [Fact]
    public async Task ManifestRowsComeBackInInputOrderWithASummary()
    {
        Image("white.png", 255, 255, 255);
        Image("black.png", 0, 0, 0);
        var manifest = Path.Combine(_dir, "set.jsonl");
        File.WriteAllLines(manifest, [
            """{"image": "white.png", "prompt": "white"}""",
            "",
            """{"image": "black.png", "prompt": "black", "metadata": {"target_words": "night"}}""",
        ]);
        var result = await CliRunner.RunAsync("score", "--reward", "brightness", "--manifest", manifest, "--format", "json", "--summary", "--batch-size", "1");
        Assert.True(result.ExitCode == 0, result.ToString());
        using var doc = JsonDocument.Parse(result.Stdout);
        var rows = doc.RootElement.GetProperty("rows").EnumerateArray().ToList();
        Assert.Equal(["white", "black"], rows.Select(r => r.GetProperty("prompt").GetString()));
        Assert.Equal(0.5, rows[0].GetProperty("score").GetDouble(), 6);
        var summary = doc.RootElement.GetProperty("summary");
        Assert.Equal(2, summary.GetProperty("count").GetDouble());
        Assert.Equal(0.5, summary.GetProperty("mean_score").GetDouble(), 6);
    }

    [Fact]
    public async Task PluginCompiledAgainstTheSdkIsDroppedInAndUsedWhileBrokenOnesAreReported()
    {
        var plugins = Path.Combine(_dir, "plugins");
        PluginCompiler.Compile("Fixture.Red", Path.Combine(plugins, "Fixture.Red", "Fixture.Red.dll"), ["""
            using NextFlowRL.Plugins;
            using NextFlowRL.Rewards;
            namespace Fixture.Red;
            public sealed class RedReward : IRewardModel
            {
                public string Name => "red";
                public Task<IReadOnlyList<RewardResult>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellationToken = default) =>
                    Task.FromResult<IReadOnlyList<RewardResult>>(samples.Select(s => RewardResult.Of(s.Image[0, 0].R / 255.0)).ToList());
            }
            public sealed class RedPlugin : INextFlowRLPlugin
            {
                public void Register(INextFlowRLBuilder builder) => builder.AddReward("red", "red of the first pixel", (_, _) => new RedReward());
            }
            """]);
        PluginCompiler.Compile("Fixture.Broken", Path.Combine(plugins, "Fixture.Broken", "Fixture.Broken.dll"), ["""
            using NextFlowRL.Plugins;
            namespace Fixture.Broken;
            public sealed class BrokenPlugin : INextFlowRLPlugin
            {
                public void Register(INextFlowRLBuilder builder) => throw new InvalidOperationException("cannot find my weights");
            }
            """]);

        var list = await CliRunner.RunAsync("plugins", "--format", "json", "--plugins-dir", plugins);
        Assert.True(list.ExitCode == 0, list.ToString());
        using var doc = JsonDocument.Parse(list.Stdout);
        var byName = doc.RootElement.EnumerateArray().ToDictionary(e => e.GetProperty("name").GetString()!);
        Assert.Equal("loaded", byName["red"].GetProperty("status").GetString());
        Assert.Equal("failed", byName["Fixture.Broken"].GetProperty("status").GetString());
        Assert.Contains("cannot find my weights", byName["Fixture.Broken"].GetProperty("reason").GetString());
        Assert.Equal("loaded", byName["brightness"].GetProperty("status").GetString());

        var red = Image("red.png", 255, 0, 0);
        var score = await CliRunner.RunAsync("score", "--plugins-dir", plugins, "--reward", "red", "--prompt", "red", red, "--format", "json");
        Assert.True(score.ExitCode == 0, score.ToString());
        using var scored = JsonDocument.Parse(score.Stdout);
        Assert.Equal(1.0, scored.RootElement[0].GetProperty("score").GetDouble());
    }

    [Fact]
    public async Task UnknownRewardIsOneLine()
    {
        var result = await CliRunner.RunAsync("score", "--reward", "nope", "--prompt", "x", Image("a.png", 1, 2, 3));
        AssertOneCleanErrorLine(result);
        Assert.Contains("unknown reward 'nope'; available: ", result.Stderr);
        Assert.Contains("brightness", result.Stderr);
        Assert.Equal(2, result.ExitCode);
    }

    [Fact]
    public async Task MissingAndCorruptImagesAreReportedPerRowWithNonZeroExit()
    {
        var ok = Image("ok.png", 128, 128, 128);
        var corrupt = Path.Combine(_dir, "corrupt.png");
        File.WriteAllText(corrupt, "garbage");
        var missing = Path.Combine(_dir, "missing.png");
        var result = await CliRunner.RunAsync("score", "--reward", "brightness", "--prompt", "x", ok, corrupt, missing, "--format", "json");
        Assert.Equal(1, result.ExitCode);
        AssertOneCleanErrorLine(result with { ExitCode = 1 });
        Assert.Contains($"image '{missing}' not found", result.Stderr);
        Assert.Contains($"image '{corrupt}' is not a readable image", result.Stderr);
        using var doc = JsonDocument.Parse(result.Stdout);
        var rows = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(3, rows.Count);
        Assert.Equal(JsonValueKind.Null, rows[0].GetProperty("error").ValueKind);
        Assert.Equal(JsonValueKind.Null, rows[1].GetProperty("score").ValueKind);
        Assert.Contains("not found", rows[2].GetProperty("error").GetString());
    }

    [Theory]
    [InlineData("score", "--reward", "brightness")]
    [InlineData("score", "--reward", "brightness", "--manifest", "/nonexistent/m.jsonl")]
    [InlineData("score", "--reward", "brightness", "--bogus")]
    [InlineData("score", "--prompt", "x")]
    [InlineData("plugins", "--format", "xml")]
    [InlineData("frobnicate")]
    [InlineData("score", "--reward", "brightness", "--set", "broken")]
    public async Task UsageErrorsAreOneLineWithExitCode2(params string[] args)
    {
        var result = await CliRunner.RunAsync(args);
        AssertOneCleanErrorLine(result);
        Assert.Equal(2, result.ExitCode);
    }

    [Fact]
    public async Task MalformedManifestLineNamesTheLine()
    {
        var manifest = Path.Combine(_dir, "bad.jsonl");
        File.WriteAllLines(manifest, ["""{"image": "a.png", "prompt": "x"}""", "{not json"]);
        var result = await CliRunner.RunAsync("score", "--reward", "brightness", "--manifest", manifest);
        AssertOneCleanErrorLine(result);
        Assert.Contains($"{manifest}:2", result.Stderr);
    }

    [Fact]
    public async Task InvalidOptionsAreListedTogether()
    {
        var result = await CliRunner.RunAsync("score", "--reward", "brightness", "--prompt", "x", Image("a.png", 1, 2, 3),
            "--set", "Rewards:brightness:Target=3", "--set", "Rewards:contrast:Target=-2");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("2 problems", result.Stderr);
        Assert.Contains("[brightness]", result.Stderr);
        Assert.Contains("[contrast]", result.Stderr);
        Assert.DoesNotContain("   at ", result.Stderr);
    }
}
