using System.Diagnostics;
using NextFlowRL.Imaging;
using NextFlowRL.Rewards.Ocr.Engine;

namespace NextFlowRL.Rewards.Ocr.Bench;

/// <summary>Settings of <see cref="OcrBenchmark"/>.</summary>
/// <param name="Images">Number of distinct rendered images.</param>
/// <param name="Size">Side of the square images in pixels.</param>
/// <param name="Workers">Plugin workers; 0 = one per processor.</param>
/// <param name="Repeat">Timed passes over the images (each path).</param>
/// <param name="Pin">Bind each worker to its own processor (Linux), in the plugin and the raw parallel path alike.</param>
public sealed record OcrBenchmarkSettings(int Images = 64, int Size = 64, int Workers = 0, int Repeat = 3, bool Pin = true);

/// <summary>What <see cref="OcrBenchmark"/> measured.</summary>
/// <param name="Images">Images per pass.</param>
/// <param name="Size">Image side.</param>
/// <param name="Workers">Plugin workers.</param>
/// <param name="Cores">Processors of the machine.</param>
/// <param name="RawImagesPerSecond">One engine, one thread, direct <see cref="TesseractEngine.Recognize"/> calls.</param>
/// <param name="PluginImagesPerSecond">The <c>ocr</c> reward's <c>ScoreAsync</c> (all workers, formulas included).</param>
/// <param name="WordAccuracy">Word Accuracy of the plugin on the rendered images (a sanity check that it reads them).</param>
/// <param name="RawImagesPerCpuSecond">Raw path: images per second of process CPU time.</param>
/// <param name="PluginImagesPerCpuSecond">Plugin path: images per second of process CPU time (all threads).</param>
/// <param name="LoadAverage">The machine's 1-minute load average when the run ended (Linux), or NaN.</param>
/// <param name="RawParallelImagesPerSecond">
/// <see cref="Workers"/> engines on as many threads, each reading its share of the images with direct
/// <see cref="TesseractEngine.Recognize"/> calls: how well Tesseract itself scales on this machine, without the plugin.
/// </param>
public sealed record OcrBenchmarkResult(
    int Images, int Size, int Workers, int Cores, double RawImagesPerSecond, double PluginImagesPerSecond, double WordAccuracy,
    double RawImagesPerCpuSecond = double.NaN, double PluginImagesPerCpuSecond = double.NaN, double LoadAverage = double.NaN,
    double RawParallelImagesPerSecond = double.NaN)
{
    /// <summary>Raw parallel throughput / (workers x raw single-engine throughput): the machine's parallel scaling of Tesseract.</summary>
    public double MachineScaling => RawParallelImagesPerSecond / (Workers * RawImagesPerSecond);

    /// <summary>Plugin throughput / raw parallel throughput: 1 means the plugin adds nothing to Tesseract's own cost.</summary>
    public double PluginOverheadRatio => PluginImagesPerSecond / RawParallelImagesPerSecond;

    /// <summary>
    /// Plugin images per CPU second / raw images per CPU second: 1 means the parallel path spends no extra CPU per image
    /// (no spinning, locking or copying), so its wall-clock throughput is limited only by the cores it gets.
    /// </summary>
    public double CpuEfficiency => PluginImagesPerCpuSecond / RawImagesPerCpuSecond;

    /// <summary>Average number of cores the raw path kept busy (CPU time / wall time).</summary>
    public double RawCoresUsed => RawImagesPerSecond / RawImagesPerCpuSecond;

    /// <summary>Average number of cores the plugin path kept busy; below <see cref="Workers"/> when other processes took the rest.</summary>
    public double PluginCoresUsed => PluginImagesPerSecond / PluginImagesPerCpuSecond;

    /// <summary>Plugin throughput / (workers x raw single-engine throughput); the target is at least 0.9.</summary>
    public double Ratio => PluginImagesPerSecond / (Workers * RawImagesPerSecond);

    /// <summary>Plugin throughput / (cores x raw single-engine throughput).</summary>
    public double RatioToCores => PluginImagesPerSecond / (Cores * RawImagesPerSecond);
}

/// <summary>
/// Throughput of the OCR reward against raw single-engine Tesseract calls on the same rendered images (one word each,
/// DejaVu Sans Bold, black on white), after a warm-up pass on each path (engine creation is not timed), timed in
/// alternating passes.
/// </summary>
public static class OcrBenchmark
{
    private static readonly string[] Words =
    [
        "cat", "open", "sale", "stop", "hello", "coffee", "north", "bread", "green", "star",
        "river", "piano", "lemon", "train", "cloud", "pizza", "tiger", "smile", "house", "light",
    ];

    /// <summary>Renders the benchmark images: word <c>i mod 20</c> fitted into a <paramref name="size"/> square.</summary>
    public static IReadOnlyList<(RgbImage Image, string Word)> RenderImages(int count, int size)
    {
        var list = new List<(RgbImage, string)>(count);
        for (int i = 0; i < count; i++)
        {
            var word = Words[i % Words.Length];
            float fontSize = size * 0.3f;
            var (w, _) = TextRenderer.Measure(word, "DejaVuSans-Bold", fontSize);
            if (w > size * 0.9f) fontSize *= size * 0.9f / w;
            list.Add((TextRenderer.Render(size, size, (255, 255, 255),
                [new TextItem(word, size / 2f, size / 2f, fontSize, "DejaVuSans-Bold", (0, 0, 0))]), word));
        }
        return list;
    }

    private static double LoadAverage()
    {
        try
        {
            var text = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg") : "";
            return double.TryParse(text.Split(' ')[0], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v) ? v : double.NaN;
        }
        catch (IOException)
        {
            return double.NaN;
        }
    }

    /// <summary>Runs the benchmark.</summary>
    public static async Task<OcrBenchmarkResult> RunAsync(OcrBenchmarkSettings settings, OcrRewardOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        options ??= new OcrRewardOptions();
        if (settings.Workers > 0) options.Workers = settings.Workers;
        options.PinWorkers = settings.Pin;
        var images = RenderImages(settings.Images, settings.Size);
        var samples = images.Select(i => new RewardSample(i.Image, $"a sign that says '{i.Word}'")).ToList();

        // Both paths are warmed up (engines created, data loaded) and then timed in alternating passes, so a change in
        // the machine's load during the run affects both alike.
        using var engine = new TesseractEngine(options.ToSettings());
        using var reward = new OcrReward("ocr", options);
        engine.Recognize(images[0].Image);
        var warm = await reward.ScoreAsync(samples, cancellationToken).ConfigureAwait(false);
        var parallelEngines = Enumerable.Range(0, reward.Workers).Select(_ => new TesseractEngine(options.ToSettings())).ToArray();
        try
        {
            foreach (var e in parallelEngines) e.Recognize(images[0].Image);
            return await TimeAsync(settings, images, samples, engine, parallelEngines, reward, options.PinWorkers, warm, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            foreach (var e in parallelEngines) e.Dispose();
        }
    }

    private static async Task<OcrBenchmarkResult> TimeAsync(
        OcrBenchmarkSettings settings, IReadOnlyList<(RgbImage Image, string Word)> images, List<RewardSample> samples,
        TesseractEngine engine, TesseractEngine[] parallelEngines, OcrReward reward, bool pin, IReadOnlyList<RewardResult> warm,
        CancellationToken cancellationToken)
    {
        var rawTime = new Stopwatch();
        var parallelTime = new Stopwatch();
        var pluginTime = new Stopwatch();
        using var process = Process.GetCurrentProcess();
        TimeSpan rawCpu = TimeSpan.Zero, pluginCpu = TimeSpan.Zero;
        for (int r = 0; r < settings.Repeat; r++)
        {
            process.Refresh();
            var cpu0 = process.TotalProcessorTime;
            rawTime.Start();
            foreach (var (image, _) in images)
            {
                cancellationToken.ThrowIfCancellationRequested();
                engine.Recognize(image);
            }
            rawTime.Stop();
            process.Refresh();
            var cpuRaw = process.TotalProcessorTime;
            parallelTime.Start();
            RawParallel(images, parallelEngines, pin && parallelEngines.Length <= Environment.ProcessorCount, cancellationToken);
            parallelTime.Stop();
            process.Refresh();
            var cpu1 = process.TotalProcessorTime;
            pluginTime.Start();
            await reward.ScoreAsync(samples, cancellationToken).ConfigureAwait(false);
            pluginTime.Stop();
            process.Refresh();
            rawCpu += cpuRaw - cpu0;
            pluginCpu += process.TotalProcessorTime - cpu1;
        }
        int total = settings.Repeat * images.Count;
        double raw = total / rawTime.Elapsed.TotalSeconds;
        double plugin = total / pluginTime.Elapsed.TotalSeconds;
        return new OcrBenchmarkResult(settings.Images, settings.Size, reward.Workers, Environment.ProcessorCount, raw, plugin,
            reward.Summarize(warm)["word_accuracy"], total / rawCpu.TotalSeconds, total / pluginCpu.TotalSeconds, LoadAverage(),
            total / parallelTime.Elapsed.TotalSeconds);
    }

    /// <summary>Each engine on its own thread reads every n-th image directly (no plugin code in between).</summary>
    private static void RawParallel(IReadOnlyList<(RgbImage Image, string Word)> images, TesseractEngine[] engines, bool pin, CancellationToken cancellationToken)
    {
        var threads = engines.Select((engine, w) => new Thread(() =>
        {
            using var pinned = pin ? TesseractLibrary.PinCurrentThread(w) : null;
            for (int i = w; i < images.Count && !cancellationToken.IsCancellationRequested; i += engines.Length)
                engine.Recognize(images[i].Image);
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        cancellationToken.ThrowIfCancellationRequested();
    }
}
