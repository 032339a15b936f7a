using System.Text.Json.Nodes;
using NextFlowRL.Runs.Reporting;
using Xunit;
using NextFlowRL.Runs;

namespace NextFlowRL.Training.Tests;

/// <summary>The HTML run report's parts (the browser check of a real run's report is in Cli.Tests).</summary>
public sealed class RunReportTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nf-report-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Run(string name, params string[] metricLines)
    {
        var dir = Path.Combine(_dir, name);
        Directory.CreateDirectory(dir);
        File.WriteAllLines(Path.Combine(dir, "metrics.jsonl"), metricLines);
        return dir;
    }

    [Fact]
    public void TicksAreRoundAndCoverTheRange()
    {
        Assert.Equal([0, 0.2, 0.4, 0.6, 0.8, 1.0], SvgChart.Ticks(0, 1).Select(t => Math.Round(t, 9)));
        Assert.Equal([10, 20, 30, 40], SvgChart.Ticks(1, 40));
        Assert.Equal([5.0], SvgChart.Ticks(5, 5));
        // A span far below the values' precision (one step of a LoRA run: a metric padded by 5 % of 1e-320) ends.
        Assert.InRange(SvgChart.Ticks(1e-320, 1.05e-320).Count, 1, 11);
        Assert.InRange(SvgChart.Ticks(1e17, 1e17 + 64).Count, 1, 11);
    }

    /// <summary>The metrics of a real one-step LoRA run, whose report once never finished (an additive tick loop).</summary>
    [Fact(Timeout = 30_000)]
    public async Task AOneStepRunRenders()
    {
        var a = Run("lora", """{"active_tokens":28,"advantage_abs_mean":0.9997168758118842,"clip_frac":0,"dropped":0,"grad_norm":3.0730857849121094,"images_per_s":1.7363868680360306,"kl":0,"loss":-5.076747910948143E-09,"mask_fallback_group_ratio":0,"mask_fallback_ones_ratio":0,"mask_fallback_ratio":0,"middle_value_mean":0.6957805048721771,"nan_skipped":0,"ocr/comp":0.30766714096069336,"ocr/matched":1.25,"ocr/ned":0.8750003124992187,"ocr/ned_sum":1.7500006249984374,"ocr/pen":0.048749999999999995,"ocr/recognized":2,"ocr/score":0.6577957198587543,"ocr/sim":0.3988785788980609,"ocr/targets":2,"ocr/word_acc":0.625,"parity_max_dev":3.3736228942871094E-05,"parity_mean_dev":1.936156263153227E-06,"phase":1,"ratio_first_epoch_max_dev":0,"ratio_mean":1,"ratio_std":0,"reward_mean":0.6577957198587543,"reward_retries":0,"reward_std":0.46376136013828834,"rss_peak_reward_mb":325.40672,"rss_peak_rollout_mb":393.457664,"rss_peak_update_mb":330.498048,"step":1,"time_reward":0.3977545,"time_rollout":1.5628581,"time_step":2.3036332,"time_update":0.2031683,"time_update_backward":0.0177897,"time_update_forward":0.0054806,"time_update_loss":0.0039253,"time_update_old":0.000156,"time_update_optimizer":0.0029174,"time_update_reference":0.0736352,"token_prob":0.2683594314647572,"updates":1,"updates_per_image":0.25,"zero_std_ratio":0}""");
        var html = await Task.Run(() => RunReport.Render([RunData.Read(a)]));
        Assert.Contains(">loss</text>", html);
    }

    [Fact]
    public void SmoothingIsDebiasedAndKeepsConstantsConstant()
    {
        var points = new[] { (1.0, 4.0), (2.0, 4.0), (3.0, 4.0) };
        Assert.All(SvgChart.Smooth(points, 0.6), p => Assert.Equal(4.0, p.Y, 12));
        var steps = SvgChart.Smooth([(1.0, 0.0), (2.0, 10.0)], 0.5);
        Assert.Equal(0.0, steps[0].Y, 12);
        Assert.Equal(10.0 * 0.5 / 0.75, steps[1].Y, 12);
        Assert.Throws<ArgumentOutOfRangeException>(() => SvgChart.Smooth(points, 1.0));
    }

    [Fact]
    public void AChartWithoutFiniteValuesSaysSo()
    {
        var svg = SvgChart.Line("kl", [new ChartSeries("kl", [(1, double.NaN), (2, double.PositiveInfinity)], "#000")]);
        Assert.Contains("no finite values", svg);
        Assert.DoesNotContain("polyline", svg);
        Assert.Contains("polyline", SvgChart.Line("kl", [new ChartSeries("kl", [(1, 0.5), (2, double.NaN), (3, 0.7)], "#000")]));
    }

    [Fact]
    public void TheReportEscapesWhatItShowsAndComparesConfigurations()
    {
        var a = Run("a", """{"step":1,"reward_mean":0.5,"kl":0.01,"time_rollout":2.0}""", """{"step":2,"reward_mean":0.7,"kl":0.02,"time_rollout":2.5}""");
        var b = Run("b", """{"step":1,"reward_mean":0.4}""");
        File.WriteAllText(Path.Combine(a, "config.json"), """{"Policy":"<var>","Seed":1,"Rewards":[{"Name":"ocr"}]}""");
        File.WriteAllText(Path.Combine(b, "config.json"), """{"Policy":"<var>","Seed":2,"Rewards":[{"Name":"ocr"}]}""");
        var single = RunReport.Render([RunData.Read(a)]);
        Assert.Contains("&lt;var&gt;", single);
        Assert.DoesNotContain("<var>", single);
        Assert.Contains("No evaluation in these runs", single);
        Assert.Contains(">reward_mean</text>", single);
        Assert.Contains(">rollout</text>", single); // time per phase
        Assert.Contains("(raw)", single);

        var both = RunReport.Render([RunData.Read(a), RunData.Read(b)]);
        Assert.Contains("2 runs compared", both);
        Assert.Contains("<td>Seed</td><td>1</td><td>2</td>", both); // the setting that differs, and only it
        Assert.DoesNotContain("<td>Policy</td>", both);
    }

    [Fact]
    public void EvaluationTablesShowIntervalsAndThePairedDifference()
    {
        var a = Run("a", """{"step":1,"reward_mean":0.5}""");
        var eval = new JsonObject { ["metrics"] = new JsonObject { ["word_accuracy"] = 0.4, ["facet/heldout/word_accuracy"] = 0.3, ["bin/x/count"] = 3 },
                                    ["ci"] = new JsonObject { ["word_accuracy"] = new JsonArray(0.35, 0.45) } };
        File.WriteAllText(Path.Combine(a, "eval_after.json"), eval.ToJsonString());
        File.WriteAllText(Path.Combine(a, "summary.json"), """{"delta":{"word_accuracy":[0.1,0.02,0.18]},"elapsed_seconds":61}""");
        var html = RunReport.Render([RunData.Read(a)]);
        Assert.Contains("0.4 [0.35, 0.45]", html);
        Assert.Contains("+0.1 [+0.02, +0.18]", html);
        Assert.Contains("facet/heldout (1 metrics)", html);
        Assert.DoesNotContain("bin/x/count", html);
        Assert.Contains("0:01:01", html);
    }

    [Fact]
    public void BadFoldersGiveClearErrors()
    {
        Assert.Contains("not a run folder", Assert.Throws<InvalidDataException>(() => RunData.Read(_dir)).Message);
        Assert.Throws<DirectoryNotFoundException>(() => RunData.Read(Path.Combine(_dir, "missing")));
        var a = Run("a", """{"step":1}""");
        File.WriteAllText(Path.Combine(a, "config.json"), "{ not json");
        Assert.Contains("config.json", Assert.Throws<InvalidDataException>(() => RunData.Read(a)).Message);
    }

    [Fact]
    public void AKilledRunsCutLastLineEndsTheRowsInsteadOfFailingTheReport()
    {
        var a = Run("killed", """{"step":1,"reward_mean":0.5}""", """{"step":2,"reward_mean":0.6}""", """{"step":3,"rew""");
        var run = RunData.Read(a);
        Assert.Equal([1.0, 2.0], run.Rows.Select(r => r["step"]));
        Assert.Contains(">reward_mean</text>", RunReport.Render([run]));
    }

    [Fact]
    public void AFolderOfRunsStandsForEveryRunInIt()
    {
        var x = Run(Path.Combine("ablation", "vanilla", "seed-1"), "{}");
        var y = Run(Path.Combine("ablation", "full", "seed-1"), "{}");
        Assert.Equal([y, x], RunReport.FindRuns(Path.Combine(_dir, "ablation")));
        Assert.Equal([x], RunReport.FindRuns(x));
    }

    [Fact]
    public void WriteIsAtomicAndLandsInTheRunFolder()
    {
        var a = Run("a", """{"step":1,"reward_mean":0.5}""");
        var path = RunReport.Write(a);
        Assert.Equal(Path.Combine(a, "report.html"), path);
        Assert.StartsWith("<!DOCTYPE html>", File.ReadAllText(path));
        Assert.Empty(Directory.GetFiles(a, "*.tmp*"));
    }
}
