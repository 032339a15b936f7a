using System.Text.Json.Nodes;
using NextFlowRL.Training.Reporting;
using Xunit;

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
