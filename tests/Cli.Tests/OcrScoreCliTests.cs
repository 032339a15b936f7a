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
}
