using System.CommandLine;
using System.Globalization;
using NextFlowRL.Plugins;
using NextFlowRL.Rewards.Ocr.Engine;

namespace NextFlowRL.Rewards.Ocr.Bench;

/// <summary>
/// <c>nextflow-rl bench ocr</c>: OCR reward throughput against raw single-engine Tesseract calls. Prints raw
/// single-engine, raw parallel (one engine per worker, no plugin) and plugin throughput, and plugin / (workers x raw),
/// the figure the target (>= 0.9) is judged by.
/// </summary>
public sealed class OcrBenchCommand : CommandLineCommand
{
    private readonly Option<int> _images = Integer("--images", "Distinct rendered one-word images.", 64, 1, 100000);
    private readonly Option<int> _size = Integer("--size", "Image side in pixels.", 64, 16, 4096);
    private readonly Option<int> _workers = Integer("--workers", "Plugin workers, one Tesseract engine each (0 = one per processor).", 0, 0, 256);
    private readonly Option<int> _repeat = Integer("--repeat", "Timed passes over the images per path.", 3, 1, 1000);
    private readonly Option<bool> _noPin = new("--no-pin") { Description = "Do not bind workers to processors (Linux binds worker i to processor i by default)." };

    /// <inheritdoc/>
    public override IReadOnlyList<string> Path { get; } = ["bench", "ocr"];

    /// <inheritdoc/>
    public override string Description => "OCR reward throughput vs raw single-engine Tesseract on rendered 64x64 images";

    /// <inheritdoc/>
    public override Command CreateCommand()
    {
        var command = new Command(Path[^1], Description) { _images, _size, _workers, _repeat, _noPin };
        command.SetAction(async (parse, ct) =>
        {
            try
            {
                var r = await OcrBenchmark.RunAsync(Settings(parse), null, ct).ConfigureAwait(false);
                Console.WriteLine(Format(r));
                return 0;
            }
            catch (OcrEngineException e)
            {
                Console.Error.WriteLine($"bench ocr: {e.Message}");
                return 1;
            }
        });
        return command;
    }

    /// <summary>The benchmark settings of parsed arguments.</summary>
    public OcrBenchmarkSettings Settings(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        return new OcrBenchmarkSettings(parse.GetValue(_images), parse.GetValue(_size), parse.GetValue(_workers), parse.GetValue(_repeat), !parse.GetValue(_noPin));
    }

    /// <summary>The printed report.</summary>
    public static string Format(OcrBenchmarkResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var c = CultureInfo.InvariantCulture;
        return string.Join('\n',
            string.Format(c, "images: {0} x {1}x{1} px, workers: {2}, cores: {3}, word accuracy: {4:0.000}", r.Images, r.Size, r.Workers, r.Cores, r.WordAccuracy),
            string.Format(c, "raw single engine: {0:0.0} images/s ({1:0.00} cores busy)", r.RawImagesPerSecond, r.RawCoresUsed),
            string.Format(c, "raw parallel ({0} engines on {0} threads, no plugin): {1:0.0} images/s", r.Workers, r.RawParallelImagesPerSecond),
            string.Format(c, "plugin ({0} workers): {1:0.0} images/s ({2:0.00} cores busy)", r.Workers, r.PluginImagesPerSecond, r.PluginCoresUsed),
            string.Format(c, "ratio plugin / (workers x raw): {0:0.00} (target >= 0.90){1}", r.Ratio, r.Ratio >= 0.9 ? "" : "  BELOW TARGET"),
            string.Format(c, "ratio plugin / (cores x raw): {0:0.00}", r.RatioToCores),
            string.Format(c, "machine scaling raw parallel / (workers x raw): {0:0.00}; plugin / raw parallel: {1:0.00} (1 = no plugin overhead)", r.MachineScaling, r.PluginOverheadRatio),
            string.Format(c, "cpu efficiency (plugin vs raw images per cpu-second): {0:0.00}; load average {1:0.0} on {2} cores{3}",
                r.CpuEfficiency, r.LoadAverage, r.Cores,
                r.LoadAverage > r.Cores ? " (busy machine: the workers did not get all cores; the wall-clock ratio is capped by that)" : ""));
    }
}
