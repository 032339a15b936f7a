using System.Text.Json;
using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Cli.Tests;

/// <summary>
/// foundation-var through the real CLI on the upstream-made random fixtures: the porting tools (<c>policy encode|decode|
/// logprobs|convert</c>), <c>sample</c> with a class name, and a 2-step <c>train</c> with a reward.
/// </summary>
public sealed class FoundationVarCliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nextflow-fvar-cli", Guid.NewGuid().ToString("N")[..10]);

    private static string Fixture(params string[] parts) => Repo.PathOf(["tests", "Policies.FoundationVar.Tests", "Fixtures", .. parts]);

    private static string[] Policy(string variant = "plain") =>
    [
        "--policy", "foundation-var",
        "--set", $"Policies:foundation-var:Checkpoint={Fixture($"var_{variant}.pth")}",
        "--set", $"Policies:foundation-var:Vae={Fixture("vae.pth")}",
    ];

    public FoundationVarCliTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    [Fact]
    public async Task PolicyToolsRoundTripAndAgreeWithUpstream()
    {
        var tokens = Path.Combine(_dir, "tokens.json");
        var enc = await CliRunner.RunAsync(["policy", "encode", .. Policy(), "--out", tokens, .. Enumerable.Range(0, 4).Select(i => Fixture("images", $"{i:000}.png"))]);
        Assert.True(enc.ExitCode == 0, enc.ToString());
        using (var ours = JsonDocument.Parse(File.ReadAllText(tokens)))
        using (var reference = JsonDocument.Parse(File.ReadAllText(Fixture("reference_vae.json"))))
        {
            var a = ours.RootElement.GetProperty("rows").EnumerateArray().Select(r => r.GetProperty("scales").GetRawText().Replace(" ", "")).ToList();
            var b = reference.RootElement.GetProperty("rows").EnumerateArray().Select(r => r.GetProperty("scales").GetRawText().Replace(" ", "")).ToList();
            Assert.Equal(b, a);
        }

        var decoded = Path.Combine(_dir, "decoded");
        var dec = await CliRunner.RunAsync(["policy", "decode", .. Policy(), "--tokens", Fixture("random_tokens.json"), "--out", decoded]);
        Assert.True(dec.ExitCode == 0, dec.ToString());
        Assert.Equal(6, Directory.GetFiles(decoded, "*.png").Length);

        var lp = await CliRunner.RunAsync(["policy", "logprobs", .. Policy("shared"), "--tokens", Fixture("random_tokens.json"), "--cfg", "1.5", "--format", "json"]);
        Assert.True(lp.ExitCode == 0, lp.ToString());
        using var got = JsonDocument.Parse(lp.Stdout);
        using var want = JsonDocument.Parse(File.ReadAllText(Fixture("reference_shared.json")));
        var expected = want.RootElement.GetProperty("random").GetProperty("guided").EnumerateArray().ToList();
        var rows = got.RootElement.EnumerateArray().ToList();
        Assert.Equal(expected.Count, rows.Count);
        for (int r = 0; r < rows.Count; r++)
        {
            var x = rows[r].GetProperty("scales").EnumerateArray().Select(v => v.GetDouble()).ToArray();
            var y = expected[r].GetProperty("scales").EnumerateArray().Select(v => v.GetDouble()).ToArray();
            for (int k = 0; k < y.Length; k++) Assert.True(Math.Abs(x[k] - y[k]) <= 1e-4 * Math.Max(1, Math.Abs(y[k])), $"row {r} scale {k}: {x[k]} vs {y[k]}");
        }

        var converted = Path.Combine(_dir, "converted");
        var conv = await CliRunner.RunAsync(["policy", "convert", .. Policy(), "--out", converted]);
        Assert.True(conv.ExitCode == 0, conv.ToString());
        var again = await CliRunner.RunAsync(["policy", "logprobs", "--policy", "foundation-var", "--checkpoint", converted, "--tokens", Fixture("random_tokens.json"), "--format", "json"]);
        Assert.True(again.ExitCode == 0, again.ToString());

        var mismatch = await CliRunner.RunAsync(["policy", "decode", "--tokens", Fixture("random_tokens.json"), "--out", decoded]); // the default policy (var)
        Assert.Equal(2, mismatch.ExitCode);
        Assert.Contains("does not match policy 'var'", mismatch.Stderr);
    }

    [Fact]
    public async Task SampleTakesClassNamesAndExplainsUnknownOnes()
    {
        var ok = await CliRunner.RunAsync(["sample", .. Policy(), "--prompt", "golden retriever", "--prompt", "207", "--seed", "1", "--out", _dir]);
        Assert.True(ok.ExitCode == 0, ok.ToString());
        Assert.True(File.Exists(Path.Combine(_dir, "001.png")));
        var bad = await CliRunner.RunAsync(["sample", .. Policy(), "--prompt", "goldn retriever", "--seed", "1", "--out", _dir]);
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("closest names: 'golden retriever' (207)", bad.Stderr);
        var missing = await CliRunner.RunAsync(["sample", "--policy", "foundation-var", "--prompt", "1", "--seed", "1", "--out", _dir]);
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("Policies:foundation-var:Checkpoint", missing.Stderr);
    }

    [Fact]
    public async Task BenchPolicyReportsEveryFigureWithItsReference()
    {
        var r = await CliRunner.RunAsync(["bench", "policy", .. Policy(), "--batch", "2", "--repeats", "1", "--cfg", "1.5", "--top-k", "8", "--format", "json"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        foreach (var key in new[] { "cachedImagesPerSecond", "recomputeImagesPerSecond", "kvBound", "samplerPeakFraction", "trainPeakFraction", "matmulFlopsPerSecond", "loadMemoryRatio" })
            Assert.True(root.GetProperty(key).GetDouble() > 0, key);
        Assert.Equal(JsonValueKind.Null, root.GetProperty("upstreamImagesPerSecond").ValueKind);
        var bad = await CliRunner.RunAsync(["bench", "policy", .. Policy(), "--batch", "0"]);
        Assert.Equal(2, bad.ExitCode);
        var noFiles = await CliRunner.RunAsync(["bench", "policy", "--policy", "var", "--batch", "1", "--upstream", "/nonexistent"]);
        Assert.Equal(2, noFiles.ExitCode);
        Assert.Contains("Policies:var:Checkpoint", noFiles.Stderr);
    }

    [Fact]
    public async Task TwoStepsOfRlWithARewardRunEndToEnd()
    {
        var prompts = Path.Combine(_dir, "classes.jsonl");
        File.WriteAllLines(prompts, new[] { "golden retriever", "tench", "volcano", "Granny Smith" }.Select((p, i) => $$"""{"prompt": "{{p}}", "bin": "b{{i % 2}}"}"""));
        var run = Path.Combine(_dir, "run");
        var r = await CliRunner.RunAsync(
        [
            "train", "--steps", "2", "--out", run, .. Policy("shared").Skip(2),
            "--set", "Train:Policy=foundation-var",
            "--set", "Train:Rewards:0:Name=brightness",
            "--set", $"Train:TrainPrompts={prompts}",
            "--set", $"Train:EvalPrompts={prompts}",
            // The main job's further evaluations (text prompts, a second OCR reader) do not apply to a class-conditional model.
            "--set", "Train:EvalSets:ood=",
            "--set", "Train:EvalReaders:0=",
            "--set", "Train:PromptsPerStep=2",
            "--set", "Train:GroupSize=3",
            "--set", "Train:Vmr:SplitScale=3",
            "--set", "Train:Rollout:TopK=16",
            "--set", "Train:Rollout:CfgScale=1.5",
            "--set", "Train:LearningRate=0.001",
        ], TimeSpan.FromMinutes(5));
        Assert.True(r.ExitCode == 0, r.ToString());
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl"));
        Assert.Equal(2, lines.Length);
        using var last = JsonDocument.Parse(lines[^1]);
        Assert.True(double.IsFinite(last.RootElement.GetProperty("loss").GetDouble()));
        Assert.True(last.RootElement.GetProperty("grad_norm").GetDouble() > 0);
    }
}
