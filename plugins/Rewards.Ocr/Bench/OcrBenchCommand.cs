using System.Globalization;
using NextFlowRL.Plugins;
using NextFlowRL.Rewards.Ocr.Engine;

namespace NextFlowRL.Rewards.Ocr.Bench;

/// <summary><c>nextflow-rl bench ocr</c>: OCR reward throughput against raw single-engine Tesseract calls.</summary>
public sealed class OcrBenchCommand : INextFlowRLCommand
{
    private const string Usage =
        "usage: nextflow-rl bench ocr [--images N] [--size PX] [--workers N] [--repeat N] [--no-pin]\n" +
        "  --images N    distinct rendered one-word images (default 64)\n" +
        "  --size PX     image side in pixels (default 64)\n" +
        "  --workers N   plugin workers, one Tesseract engine each (default: one per processor)\n" +
        "  --repeat N    timed passes over the images per path (default 3)\n" +
        "  --no-pin      do not bind workers to processors (Linux binds worker i to processor i by default)\n" +
        "Prints raw single-engine, raw parallel (one engine per worker, no plugin) and plugin throughput, and\n" +
        "plugin / (workers x raw), the figure the target (>= 0.9) is judged by.";

    /// <inheritdoc/>
    public IReadOnlyList<string> Path { get; } = ["bench", "ocr"];

    /// <inheritdoc/>
    public string Description => "OCR reward throughput vs raw single-engine Tesseract on rendered 64x64 images";

    /// <inheritdoc/>
    public async Task<int> InvokeAsync(IReadOnlyList<string> args, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Any(a => a is "--help" or "-h"))
        {
            Console.WriteLine(Usage);
            return 0;
        }
        if (!TryParse(args, out var settings, out var error))
        {
            Console.Error.WriteLine($"bench ocr: {error} (see --help)");
            return 2;
        }
        try
        {
            var r = await OcrBenchmark.RunAsync(settings, null, cancellationToken).ConfigureAwait(false);
            Console.WriteLine(Format(r));
            return 0;
        }
        catch (OcrEngineException e)
        {
            Console.Error.WriteLine($"bench ocr: {e.Message}");
            return 1;
        }
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

    /// <summary>Parses the command's arguments.</summary>
    public static bool TryParse(IReadOnlyList<string> args, out OcrBenchmarkSettings settings, out string? error)
    {
        ArgumentNullException.ThrowIfNull(args);
        settings = new OcrBenchmarkSettings();
        error = null;
        for (int i = 0; i < args.Count; i++)
        {
            var name = args[i];
            if (name == "--no-pin")
            {
                settings = settings with { Pin = false };
                continue;
            }
            if (name is not ("--images" or "--size" or "--workers" or "--repeat"))
            {
                error = $"unknown argument '{name}'";
                return false;
            }
            if (i + 1 >= args.Count || !int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out int value))
            {
                error = $"{name} needs a non-negative integer";
                return false;
            }
            i++;
            (int min, int max) = name switch { "--size" => (16, 4096), "--workers" => (0, 256), "--images" => (1, 100000), _ => (1, 1000) };
            if (value < min || value > max)
            {
                error = $"{name} must be between {min} and {max}, got {value}";
                return false;
            }
            settings = name switch
            {
                "--images" => settings with { Images = value },
                "--size" => settings with { Size = value },
                "--workers" => settings with { Workers = value },
                _ => settings with { Repeat = value },
            };
        }
        return true;
    }
}
