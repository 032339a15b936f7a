using Xunit;
using NextFlowRL.Runs;

namespace NextFlowRL.Training.Tests;

/// <summary>The one reader of a run's evaluation files.</summary>
public sealed class EvalFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nf-eval-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string json)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public void MetricsAndTheirIntervalsAreRead()
    {
        var path = Write("eval_after.json", """{"reward":"ocr","metrics":{"word_accuracy":0.25,"ned":0.5,"note":"x"},"ci":{"word_accuracy":[0.1,0.4],"ned":[null,0.7]}}""");
        var eval = EvalFile.Read(path)!;
        Assert.Equal(new Dictionary<string, double> { ["word_accuracy"] = 0.25, ["ned"] = 0.5 }, eval.Metrics);
        Assert.Equal((0.1, 0.4), eval.Intervals["word_accuracy"]);
        Assert.False(eval.Intervals.ContainsKey("ned")); // a half interval is none
        Assert.Null(eval.Set);
        Assert.Equal(0.25, TrainingRun.ReadEvalFile(path).Metrics!["word_accuracy"]);
    }

    [Fact]
    public void MissingIsNullAndCorruptIsOneClearError()
    {
        Assert.Null(EvalFile.Read(Path.Combine(_dir, "eval_before.json")));
        var cut = Write("cut.json", """{"metrics":{"ned":0.""");
        Assert.Contains("is not valid JSON", Assert.Throws<InvalidDataException>(() => EvalFile.Read(cut)).Message);
        var other = Write("other.json", """{"steps":3}""");
        Assert.Contains("is not an evaluation file", Assert.Throws<InvalidDataException>(() => EvalFile.Read(other)).Message);
        // Resume treats an unreadable evaluation as one to run again.
        Assert.Equal((null, null), TrainingRun.ReadEvalFile(cut));
    }
}
