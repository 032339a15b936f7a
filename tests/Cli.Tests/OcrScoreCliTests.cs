using System.Text.Json;
using NextFlowRL.Imaging;
using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Cli.Tests;

/// <summary><c>score --reward ocr</c> end to end on rendered text (the bundled OCR plugin and real Tesseract).</summary>
public sealed class OcrScoreCliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nextflow-ocr-cli", Guid.NewGuid().ToString("N")[..10]);

    public OcrScoreCliTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private string Render(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        ImageFile.SavePng(TextRenderer.Render(128, 64, (255, 255, 255), [new TextItem(text, 64, 32, 22, "DejaVuSans-Bold", (0, 0, 0))]), path);
        return path;
    }

    [Fact]
    public async Task CleanRenderReadsAsWordAccuracyOneAndBlankScoresAtMostZero()
    {
        Render("clean.png", "HELLO");
        ImageFile.SavePng(RgbImage.Filled(128, 64, 255, 255, 255), Path.Combine(_dir, "blank.png"));
        var manifest = Path.Combine(_dir, "set.jsonl");
        File.WriteAllLines(manifest, [
            """{"image": "clean.png", "prompt": "a sign that says 'hello'"}""",
            """{"image": "blank.png", "prompt": "a sign that says 'hello'"}""",
        ]);
        var result = await CliRunner.RunAsync(["score", "--reward", "ocr", "--manifest", manifest, "--format", "json", "--summary"], TimeSpan.FromMinutes(2));
        Assert.True(result.ExitCode == 0, result.ToString());
        using var doc = JsonDocument.Parse(result.Stdout);
        var rows = doc.RootElement.GetProperty("rows");
        Assert.Equal(1.0, rows[0].GetProperty("components").GetProperty("word_acc").GetDouble());
        Assert.Contains(rows[0].GetProperty("regions").EnumerateArray(), r => r.GetProperty("target").GetString() == "hello");
        Assert.True(rows[1].GetProperty("score").GetDouble() <= 0);
        Assert.Equal(0.5, doc.RootElement.GetProperty("summary").GetProperty("word_accuracy").GetDouble(), 6);
    }

    [Fact]
    public async Task ReferenceRendersScoreNearlyPerfectlyPerBinAndFacet()
    {
        // The VAR plugin writes clean renders of evaluation prompts with a manifest; score --summary reports them per bin
        // and per facet with the same keys as 'eval'.
        var outDir = Path.Combine(_dir, "truth");
        var written = await CliRunner.RunAsync(["data", "var-images", "--source", "truth", "--out", outDir], TimeSpan.FromMinutes(2));
        Assert.True(written.ExitCode == 0, written.ToString());
        var result = await CliRunner.RunAsync(["score", "--reward", "ocr", "--manifest", Path.Combine(outDir, "manifest.jsonl"), "--format", "json", "--summary"], TimeSpan.FromMinutes(2));
        Assert.True(result.ExitCode == 0, result.ToString());
        using var doc = JsonDocument.Parse(result.Stdout);
        var summary = doc.RootElement.GetProperty("summary");
        Assert.Equal(100, summary.GetProperty("count").GetDouble());
        var binCounts = summary.EnumerateObject().Where(p => p.Name.StartsWith("bin/", StringComparison.Ordinal) && p.Name.EndsWith("/count", StringComparison.Ordinal)).ToList();
        Assert.Equal(4, binCounts.Count);
        Assert.Equal(100, binCounts.Sum(p => p.Value.GetDouble()));
        Assert.True(summary.TryGetProperty("facet/heldout/word_accuracy", out _), summary.ToString());
        Assert.InRange(summary.GetProperty("word_accuracy").GetDouble(), 0.9, 1.0);
    }
}
