using System.Diagnostics;
using System.Text.Json;
using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Cli.Tests;

/// <summary>
/// <c>train</c>, <c>train --resume</c>, <c>sample</c> and <c>eval</c> as real processes, on a tiny real policy plugin
/// (built from TestKit's TinyNextScalePolicy) and the bundled brightness reward.
/// </summary>
public sealed class TrainCliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nextflow-train-cli", Guid.NewGuid().ToString("N")[..10]);
    private readonly string _plugins;
    private readonly string _prompts;

    public TrainCliTests()
    {
        _plugins = Path.Combine(_dir, "plugins");
        var folder = Path.Combine(_plugins, "Fixture.TinyPolicy");
        PluginCompiler.Compile("Fixture.TinyPolicy", Path.Combine(folder, "Fixture.TinyPolicy.dll"), ["""
            using NextFlowRL.Plugins;
            using NextFlowRL.Policies;
            using NextFlowRL.Testing;
            namespace Fixture.TinyPolicy;
            public sealed class TinyPolicyPlugin : INextFlowRLPlugin
            {
                public void Register(INextFlowRLBuilder builder) => builder.AddPolicy("tiny", "tiny test policy", (_, _) => new TinyPolicyProvider(3));
            }
            """]);
        File.Copy(typeof(TinyNextScalePolicy).Assembly.Location, Path.Combine(folder, "NextFlowRL.TestKit.dll"));
        _prompts = Path.Combine(_dir, "prompts.jsonl");
        File.WriteAllLines(_prompts, Enumerable.Range(0, 4).Select(i => $$"""{"prompt": "square {{i}}", "bin": "b{{i % 2}}"}"""));
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private string[] Common() =>
    [
        "--plugins-dir", _plugins,
        "--set", "Train:Policy=tiny",
        "--set", "Train:Rewards:0:Name=brightness",
        "--set", $"Train:TrainPrompts={_prompts}",
        "--set", $"Train:EvalPrompts={_prompts}",
        "--set", "Train:PromptsPerStep=2",
        "--set", "Train:GroupSize=4",
        "--set", "Train:Vmr:SplitScale=1",
        "--set", "Train:CheckpointEvery=1",
        "--set", "Train:LearningRate=0.01",
    ];

    [Fact]
    public async Task BenchTrainPrintsEachFigureBesideItsGoal()
    {
        var r = await CliRunner.RunAsync(["bench", "train", "--steps", "2", .. Common()], TimeSpan.FromMinutes(3));
        Assert.True(r.ExitCode == 0, r.ToString());
        foreach (var line in new[] { "rollout s/step", "% hidden behind sampling", "update / matmul", "(goal >= 0.5)", "model shapes", "updates / image", "peak rss", "MB/step", "(goal: flat)" })
            Assert.Contains(line, r.Stdout, StringComparison.Ordinal);
        var bad = await CliRunner.RunAsync(["bench", "train", "--steps", "1", .. Common()]);
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--steps must be at least 2", bad.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TrainWritesAnHtmlReportThatABrowserOpensCleanlyAndReportComparesRuns()
    {
        var a = Path.Combine(_dir, "run-a");
        var b = Path.Combine(_dir, "run-b");
        foreach (var (run, seed) in new[] { (a, "1"), (b, "2") })
        {
            var train = await CliRunner.RunAsync(["train", "--steps", "2", "--out", run, "--seed", seed, "--set", "Train:SampleEvery=1", .. Common()], TimeSpan.FromMinutes(3));
            Assert.True(train.ExitCode == 0, train.ToString());
            // Each evaluation shows its own progress line (plain lines: standard error is redirected here).
            Assert.Contains("eval before held-out [", train.Stderr, StringComparison.Ordinal);
            Assert.Contains("eval after held-out [", train.Stderr, StringComparison.Ordinal);
        }
        var report = Path.Combine(a, "report.html");
        Assert.True(File.Exists(report), "train did not write report.html");
        var html = File.ReadAllText(report);
        foreach (var section in new[] { "id=\"evaluation\"", "id=\"curves\"", "id=\"health\"", "id=\"time\"", "id=\"samples\"", "id=\"configuration\"" })
            Assert.Contains(section, html);
        Assert.DoesNotContain("<script", html);
        Assert.DoesNotContain("src=\"http", html);

        var single = await Browser.OpenAsync(report, "report-single");
        Assert.Empty(single.Errors);
        Assert.Equal(0, single.BrokenImages);
        Assert.True(single.Images >= 3, $"{single.Images} images (eval before/after and step grids expected)");
        Assert.True(single.Charts >= 4, $"{single.Charts} charts");
        Assert.Contains("run-a", single.Title);

        // Rebuilding one run's report, and one report comparing both runs side by side (a folder of runs stands for all).
        File.Delete(report);
        var rebuilt = await CliRunner.RunAsync(["report", a]);
        Assert.True(rebuilt.ExitCode == 0 && File.Exists(report), rebuilt.ToString());
        var compare = Path.Combine(_dir, "compare.html");
        var both = await CliRunner.RunAsync(["report", _dir, "--out", compare]);
        Assert.True(both.ExitCode == 0, both.ToString());
        Assert.Contains("2 runs", both.Stderr);
        var side = await Browser.OpenAsync(compare, "report-compare");
        Assert.Empty(side.Errors);
        Assert.Equal(0, side.BrokenImages);
        Assert.Contains("2 runs compared", side.Title);

        var missing = await CliRunner.RunAsync(["report", Path.Combine(_dir, "plugins")]);
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("no run folders", missing.Stderr);
    }

    [Fact]
    public async Task AblateRunsEachVariantEvaluatesTheBaseModelOnceAndReusesFinishedRuns()
    {
        var root = Path.Combine(_dir, "ablation");
        string[] Ablate(string only) => ["ablate", "--steps", "1", "--seeds", "1", "--only", only, "--out", root, .. Common(),
            "--set", "Train:EvalSets:ood=", "--set", "Train:EvalReaders:0="];
        // An ablation of the compute-matched baseline alone: its run evaluates the base model.
        var matched = await CliRunner.RunAsync(Ablate("G x K"), TimeSpan.FromMinutes(4));
        Assert.True(matched.ExitCode == 0, matched.ToString());
        var matchedRun = Path.Combine(root, "vanilla-grpo-g-x-k-samples", "seed-1");
        Assert.True(File.Exists(Path.Combine(matchedRun, "eval_before.json")));
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(matchedRun, "config.json"))))
            Assert.Equal(8, config.RootElement.GetProperty("GroupSize").GetInt32()); // G x K images per prompt

        // Both vanilla variants: the finished run is reused, and the new one does not evaluate the base model again
        // (the evaluation does not depend on the variant or the seed: the reused run has it).
        var both = await CliRunner.RunAsync(Ablate("vanilla"), TimeSpan.FromMinutes(4));
        Assert.True(both.ExitCode == 0, both.ToString());
        Assert.Single(both.Stderr.Split("finished earlier, reusing its results").Skip(1));
        Assert.False(File.Exists(Path.Combine(root, "vanilla-grpo", "seed-1", "eval_before.json")));
        Assert.True(File.Exists(Path.Combine(root, "vanilla-grpo", "seed-1", "eval_after.json")));
        var table = File.ReadAllText(Path.Combine(root, "ablation.md"));
        foreach (var row in new[] { "| base model |", "| vanilla GRPO | 1 |", "| vanilla GRPO, G x K samples | 1 |" })
        {
            Assert.Contains(row, table, StringComparison.Ordinal);
            Assert.Contains(row, both.Stdout, StringComparison.Ordinal);
        }

        // Again: nothing trains, the table is the same.
        var again = await CliRunner.RunAsync(Ablate("vanilla"), TimeSpan.FromMinutes(4));
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(2, again.Stderr.Split("finished earlier, reusing its results").Length - 1);
        Assert.Equal(table, File.ReadAllText(Path.Combine(root, "ablation.md")));
    }

    [Fact]
    public async Task TrainThenResume()
    {
        var run = Path.Combine(_dir, "run");
        var first = await CliRunner.RunAsync(["train", "--steps", "2", "--out", run, .. Common()], TimeSpan.FromMinutes(3));
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Contains("held-out metric", first.Stdout);
        // Redirected output keeps each table row on one line: the metric, its values and the paired change with its interval.
        Assert.Contains(first.Stdout.Split('\n'), l => l.Contains("│ mean_score ", StringComparison.Ordinal) && l.Contains('[', StringComparison.Ordinal) && l.Contains(']', StringComparison.Ordinal));
        // Progress on standard error, ending at the last step: the rate reads as steps per second or, for slow steps,
        // seconds per step ("--" when the steps were too quick to time).
        Assert.Matches(@"train \[#+\] 2/2 (-- steps/s ETA --:--|\d+\.\d (steps/s|s/step) ETA \d\d:\d\d)", first.Stderr);
        Assert.Equal(2, File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Length);

        var resumed = await CliRunner.RunAsync(["train", "--resume", run, "--steps", "3", "--plugins-dir", _plugins], TimeSpan.FromMinutes(3));
        Assert.True(resumed.ExitCode == 0, resumed.ToString());
        Assert.Contains("resuming from", resumed.Stderr);
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl"));
        Assert.Equal(3, lines.Length);
        Assert.Equal(3, JsonDocument.Parse(lines[2]).RootElement.GetProperty("step").GetDouble());
        Assert.Equal("step-000003", File.ReadAllText(Path.Combine(run, "checkpoints", "latest")));
    }

    [Fact]
    public async Task StopSignalWritesACheckpointAndTheRunResumes()
    {
        var run = Path.Combine(_dir, "interrupted");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in (string[])["exec", Repo.CliDll, "train", "--steps", "5000", "--out", run, "--set", "Train:Evaluate=false", "--set", "Train:CheckpointEvery=0", .. Common()])
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var metrics = Path.Combine(run, "metrics.jsonl");
        var deadline = DateTime.UtcNow.AddMinutes(4);
        while (DateTime.UtcNow < deadline && !process.HasExited && (!File.Exists(metrics) || File.ReadAllLines(metrics).Length < 2)) await Task.Delay(100);
        Assert.False(process.HasExited, "training ended before it was interrupted");
        // SIGTERM: SIGINT may be ignored by inheritance when tests run in a background job; the CLI treats both alike.
        Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();
        using (var exit = new CancellationTokenSource(TimeSpan.FromMinutes(3)))
        {
            try
            {
                await process.WaitForExitAsync(exit.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail("nextflow-rl did not stop within 3 minutes of SIGTERM:\n" + await stderr);
            }
        }
        var err = await stderr;
        Assert.True(process.ExitCode == 130, err);
        Assert.Contains("train --resume", err);
        var latest = File.ReadAllText(Path.Combine(run, "checkpoints", "latest"));
        int saved = int.Parse(latest["step-".Length..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(saved >= 2);
        Assert.Equal(saved, File.ReadAllLines(metrics).Length);
    }

    [Fact]
    public async Task InvalidTrainingConfigurationListsEveryProblem()
    {
        var result = await CliRunner.RunAsync(["train", "--out", Path.Combine(_dir, "bad"), .. Common(), "--set", "Train:GroupSize=1", "--set", "Train:ClipEpsilon=3", "--steps", "0"]);
        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("3 problems", result.Stderr);
        foreach (var key in new[] { "GroupSize", "ClipEpsilon", "Steps" }) Assert.Contains(key, result.Stderr);
        Assert.DoesNotContain("   at ", result.Stderr);
    }

    [Fact]
    public async Task ValuesOfTheWrongTypeAreListedWithTheOtherProblems()
    {
        var result = await CliRunner.RunAsync(["train", "--out", Path.Combine(_dir, "typed"), .. Common(), "--set", "Train:LearningRate=abc",
            "--set", "Train:Vmr:Schedule=Sideways", "--set", "Train:GroupSize=1"]);
        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("3 problems", result.Stderr);
        Assert.Contains("Train:LearningRate: 'abc' is not a number", result.Stderr);
        Assert.Contains("Train:Vmr:Schedule: 'Sideways' is not one of Joint, Fine, Coarse", result.Stderr);
        Assert.Contains("Train:GroupSize must be >= 2", result.Stderr);
    }

    [Fact]
    public async Task ResumeOfSomethingThatIsNotARunIsOneLine()
    {
        var result = await CliRunner.RunAsync("train", "--resume", _dir, "--plugins-dir", _plugins);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("is not a run directory", result.Stderr);
    }

    [Fact]
    public async Task SampleWritesOnePngPerPromptInOrderAndIsDeterministic()
    {
        string[] Args(string dir) => ["sample", "--policy", "tiny", "--prompt", "first", "--prompt", "second", "--count", "2", "--seed", "7", "--out", dir, "--plugins-dir", _plugins];
        var a = await CliRunner.RunAsync(Args(Path.Combine(_dir, "a")));
        Assert.True(a.ExitCode == 0, a.ToString());
        var b = await CliRunner.RunAsync(Args(Path.Combine(_dir, "b")));
        Assert.True(b.ExitCode == 0, b.ToString());
        var files = Directory.GetFiles(Path.Combine(_dir, "a")).Select(f => Path.GetFileName(f)).Order().ToArray();
        Assert.Equal(["000.png", "001.png", "002.png", "003.png", "grid.png"], files);
        foreach (var f in files)
            Assert.Equal(File.ReadAllBytes(Path.Combine(_dir, "a", f!)), File.ReadAllBytes(Path.Combine(_dir, "b", f!)));
    }

    [Fact]
    public async Task EvalPrintsSetMetricsPerBin()
    {
        var result = await CliRunner.RunAsync("eval", "--policy", "tiny", "--prompts", _prompts, "--reward", "brightness", "--format", "json", "--plugins-dir", _plugins);
        Assert.True(result.ExitCode == 0, result.ToString());
        using var doc = JsonDocument.Parse(result.Stdout);
        Assert.Equal(16, doc.RootElement.GetProperty("count").GetDouble()); // 4 prompts x Train:EvalImagesPerPrompt (4)
        Assert.True(doc.RootElement.TryGetProperty("bin/b0/mean_score", out _));
        // Every metric comes with its 95% interval over prompts.
        double low = doc.RootElement.GetProperty("mean_score/ci_low").GetDouble(), high = doc.RootElement.GetProperty("mean_score/ci_high").GetDouble();
        Assert.InRange(doc.RootElement.GetProperty("mean_score").GetDouble(), low, high);

        // A paired comparison with a baseline: the policy against itself differs by exactly 0.
        var saved = Path.Combine(_dir, "tiny-base");
        var convert = await CliRunner.RunAsync("policy", "convert", "--policy", "tiny", "--out", saved, "--plugins-dir", _plugins);
        Assert.True(convert.ExitCode == 0, convert.ToString());
        var paired = await CliRunner.RunAsync("eval", "--policy", "tiny", "--checkpoint", saved, "--prompts", _prompts, "--reward", "brightness", "--images-per-prompt", "2", "--baseline", saved, "--plugins-dir", _plugins);
        Assert.True(paired.ExitCode == 0, paired.ToString());
        Assert.Contains("minus baseline", paired.Stdout);
        Assert.Contains("0.0000 [0.0000, 0.0000]", paired.Stdout);
    }

    [Fact]
    public async Task ProgressIsSpectresLiveDisplayOnATerminalAndPlainLinesWhenRedirected()
    {
        string[] args = ["eval", "--policy", "tiny", "--prompts", _prompts, "--reward", "brightness", "--images-per-prompt", "4", "--plugins-dir", _plugins];
        // Redirected (this process reads its output): plain lines, no control codes.
        var plain = await CliRunner.RunAsync(args);
        Assert.True(plain.ExitCode == 0, plain.ToString());
        Assert.Contains("eval [########################] 16/16", plain.Stderr);
        Assert.False(plain.Stderr.Contains('\u001b', StringComparison.Ordinal), plain.Stderr.Replace("\u001b", "<ESC>", StringComparison.Ordinal));
        // On a terminal (script(1) gives the process a pseudo-terminal): Spectre's bar, percentage and remaining time.
        var terminal = await OnTerminalAsync(args);
        Assert.True(terminal.ExitCode == 0, terminal.ToString());
        Assert.Contains("100%", terminal.Stdout);
        Assert.Contains("\u2501", terminal.Stdout); // the bar's heavy horizontal line
        Assert.DoesNotContain("eval [####", terminal.Stdout);
        Assert.Contains("mean_score", terminal.Stdout); // the results follow the display
    }

    /// <summary>Runs the CLI on a pseudo-terminal (script(1)), as a user at a terminal would.</summary>
    private static Task<CliResult> OnTerminalAsync(string[] args)
    {
        var command = string.Join(' ', ((string[])["dotnet", "exec", Repo.CliDll, .. args]).Select(a => "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'"));
        return ProcessRunner.RunAsync("script", ["-qec", command, "/dev/null"], TimeSpan.FromMinutes(2), environment: new Dictionary<string, string> { ["TERM"] = "xterm-256color", ["COLUMNS"] = "160" });
    }

    [Fact]
    public async Task PluginCommandsShowTheCliDisplayOnATerminal()
    {
        // pretrain tokenizer (the VAR tools plugin) takes the host's IProgressDisplay: on a pseudo-terminal, Spectre's bar.
        string[] args = ["pretrain", "tokenizer", "--out", Path.Combine(_dir, "tok"), "--steps", "2", "--batch", "2", "--threads", "0"];
        var terminal = await OnTerminalAsync(args);
        Assert.True(terminal.ExitCode == 0, terminal.ToString());
        Assert.Contains("tokenizer k-means", terminal.Stdout, StringComparison.Ordinal);
        Assert.Contains("100%", terminal.Stdout, StringComparison.Ordinal);
        Assert.Contains("\u2501", terminal.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("tokenizer k-means [####", terminal.Stdout, StringComparison.Ordinal);
        // The step's detail has a column of its own, cut to the terminal's width: the row keeps its bar (it collapsed to
        // one ellipsis when label and detail shared the description).
        Assert.Contains("reconstruc", terminal.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EvalWithSeveralReadersScoresTheSameImagesOnce()
    {
        var result = await CliRunner.RunAsync("eval", "--policy", "tiny", "--prompts", _prompts, "--reward", "brightness", "--reward", "contrast",
            "--images-per-prompt", "2", "--format", "json", "--out", Path.Combine(_dir, "readers"), "--plugins-dir", _plugins);
        Assert.True(result.ExitCode == 0, result.ToString());
        using var doc = JsonDocument.Parse(result.Stdout);
        // Keys per reader; both read the same 8 images (the image statistics are their components).
        Assert.Equal(8, doc.RootElement.GetProperty("brightness/count").GetDouble());
        Assert.Equal(8, doc.RootElement.GetProperty("contrast/count").GetDouble());
        Assert.Equal(doc.RootElement.GetProperty("brightness/mean_brightness").GetDouble(), doc.RootElement.GetProperty("contrast/mean_brightness").GetDouble(), 12);
        Assert.False(doc.RootElement.TryGetProperty("count", out _));
        Assert.True(File.Exists(Path.Combine(_dir, "readers", "metrics.json")));
        Assert.True(File.Exists(Path.Combine(_dir, "readers", "metrics.contrast.json")));
        var unknown = await CliRunner.RunAsync("eval", "--policy", "tiny", "--prompts", _prompts, "--reward", "brightness", "--reward", "nope", "--plugins-dir", _plugins);
        Assert.NotEqual(0, unknown.ExitCode);
        Assert.Contains("nope", unknown.Stderr);
    }

    [Fact]
    public async Task EvalPairsWithTheFolderOfAnEarlierEvalOnTheSamePromptsAndSeeds()
    {
        var earlier = Path.Combine(_dir, "cfg-0");
        string[] common = ["eval", "--policy", "tiny", "--prompts", _prompts, "--reward", "brightness", "--reward", "contrast", "--plugins-dir", _plugins];
        var first = await CliRunner.RunAsync([.. common, "--images-per-prompt", "2", "--cfg", "0", "--out", earlier]);
        Assert.True(first.ExitCode == 0, first.ToString());

        // The same evaluation again, paired with the folder: every difference is exactly 0, for each reader.
        var same = await CliRunner.RunAsync([.. common, "--images-per-prompt", "2", "--cfg", "0", "--baseline", earlier, "--format", "json"]);
        Assert.True(same.ExitCode == 0, same.ToString());
        using (var doc = JsonDocument.Parse(same.Stdout))
            foreach (var name in new[] { "brightness", "contrast" })
                foreach (var key in new[] { "delta/mean_score", "delta/mean_score/ci_low", "delta/mean_score/ci_high" })
                    Assert.Equal(0, doc.RootElement.GetProperty($"{name}/{key}").GetDouble());

        // Not the same images: one clear line, exit 2.
        var other = await CliRunner.RunAsync([.. common, "--images-per-prompt", "3", "--cfg", "0", "--baseline", earlier]);
        Assert.Equal(2, other.ExitCode);
        Assert.Contains("not paired", other.Stderr, StringComparison.Ordinal);
        var reader = await CliRunner.RunAsync(["eval", "--policy", "tiny", "--prompts", _prompts, "--reward", "contrast", "--images-per-prompt", "2", "--baseline", earlier, "--plugins-dir", _plugins]);
        Assert.Equal(2, reader.ExitCode);
        Assert.Contains("was read by 'brightness', not 'contrast'", reader.Stderr, StringComparison.Ordinal);
    }
}
