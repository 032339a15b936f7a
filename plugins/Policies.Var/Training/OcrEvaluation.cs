using System.Diagnostics;
using System.Text;
using NextFlowRL.Imaging;
using NextFlowRL.Policies.Var.Data;
using SkiaSharp;

namespace NextFlowRL.Policies.Var.Training;

/// <summary>Word Accuracy and NED (CVTG-2K definitions) of one bin of an evaluation.</summary>
/// <param name="Bin">Bin name (or <c>all</c>).</param>
/// <param name="Prompts">Number of prompts.</param>
/// <param name="Words">Number of target words.</param>
/// <param name="WordAccuracy">Target words found exactly among the recognized words / target words.</param>
/// <param name="Ned">Mean over target words of 1 - normalized edit distance to the closest recognized word.</param>
public sealed record OcrScore(string Bin, int Prompts, int Words, double WordAccuracy, double Ned);

/// <summary>Scores images against target words with the <c>tesseract</c> command line (one call for all images).</summary>
public static class OcrEvaluation
{
    /// <summary>Levenshtein distance.</summary>
    public static int EditDistance(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }

    /// <summary>Words of an OCR output: alphanumeric runs, upper-cased.</summary>
    public static IReadOnlyList<string> Words(string text) =>
        new string(text.Select(c => char.IsLetterOrDigit(c) ? char.ToUpperInvariant(c) : ' ').ToArray())
            .Split(' ', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>Per-bin and overall scores of recognized texts against records (same order).</summary>
    public static IReadOnlyList<OcrScore> Score(IReadOnlyList<PromptRecord> records, IReadOnlyList<string> recognized)
    {
        var rows = records.Zip(recognized, (r, t) => (r.Bin, Targets: r.TargetWords.Select(w => w.ToUpperInvariant()).ToArray(), Found: Words(t))).ToList();
        OcrScore Of(string bin, IEnumerable<(string Bin, string[] Targets, IReadOnlyList<string> Found)> sel)
        {
            int prompts = 0, words = 0, hits = 0;
            double ned = 0;
            foreach (var (_, targets, found) in sel)
            {
                prompts++;
                foreach (var w in targets)
                {
                    words++;
                    if (found.Contains(w)) hits++;
                    ned += found.Count == 0 ? 0 : found.Max(f => 1 - EditDistance(w, f) / (Math.Max(w.Length, f.Length) + 1e-5));
                }
            }
            return new OcrScore(bin, prompts, words, words == 0 ? 0 : (double)hits / words, words == 0 ? 0 : ned / words);
        }
        var result = rows.GroupBy(r => r.Bin).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => Of(g.Key, g)).ToList();
        result.Add(Of("seen", rows.Where(r => r.Bin.EndsWith("-seen", StringComparison.Ordinal))));
        result.Add(Of("heldout", rows.Where(r => r.Bin.EndsWith("-heldout", StringComparison.Ordinal))));
        result.Add(Of("all", rows));
        return result;
    }

    /// <summary>
    /// Runs <c>tesseract</c> once over all images (each upscaled 4x with a cubic filter and padded) and returns the
    /// recognized text per image.
    /// </summary>
    /// <exception cref="InvalidOperationException">tesseract is not installed or failed.</exception>
    public static IReadOnlyList<string> Recognize(IReadOnlyList<RgbImage> images, string workDir, int psm = 6)
    {
        Directory.CreateDirectory(workDir);
        var list = new StringBuilder();
        for (int i = 0; i < images.Count; i++)
        {
            var path = Path.Combine(workDir, $"ocr_{i:D4}.png");
            using var bmp = ImageFile.ToBitmap(images[i]);
            int w = bmp.Width * 4, h = bmp.Height * 4, pad = 16;
            using var big = bmp.Resize(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Opaque), new SKSamplingOptions(SKCubicResampler.Mitchell));
            using var padded = new SKBitmap(new SKImageInfo(w + 2 * pad, h + 2 * pad, SKColorType.Rgba8888, SKAlphaType.Opaque));
            using (var canvas = new SKCanvas(padded))
            {
                var corner = images[i][0, 0];
                canvas.Clear(new SKColor(corner.R, corner.G, corner.B));
                canvas.DrawBitmap(big, pad, pad);
            }
            ImageFile.SavePng(ImageFile.FromBitmap(padded), path);
            list.Append(path).Append('\n');
        }
        var listPath = Path.Combine(workDir, "ocr_list.txt");
        File.WriteAllText(listPath, list.ToString());
        var outBase = Path.Combine(workDir, "ocr_out");
        var psi = new ProcessStartInfo("tesseract", [listPath, outBase, "--psm", psm.ToString(System.Globalization.CultureInfo.InvariantCulture), "-l", "eng"])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        Process proc;
        try { proc = Process.Start(psi) ?? throw new InvalidOperationException("tesseract did not start."); }
        catch (System.ComponentModel.Win32Exception e) { throw new InvalidOperationException($"tesseract is not installed ({e.Message}); apt-get install tesseract-ocr tesseract-ocr-eng."); }
        using (proc)
        {
            proc.StandardOutput.ReadToEnd();
            var err = proc.StandardError.ReadToEnd();
            proc.WaitForExit();
            if (proc.ExitCode != 0) throw new InvalidOperationException($"tesseract failed ({proc.ExitCode}): {err.Trim()}");
        }
        var text = File.ReadAllText(outBase + ".txt");
        var pages = text.Split('\f');
        return Enumerable.Range(0, images.Count).Select(i => i < pages.Length ? pages[i] : "").ToArray();
    }
}
