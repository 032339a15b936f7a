using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using NextFlowRL.Policies;
using NextFlowRL.Torch.Benchmarks;
using NextFlowRL.Torch.Memory;

namespace NextFlowRL.Cli.Commands;

/// <summary>
/// <c>nextflow-rl bench policy [--policy NAME] [--batch N] [--repeats R] [--threads T] [--upstream PATH]</c>: load time and
/// memory, sampling throughput with the KV cache and with full recomputation (as a fraction of the schedule's bound),
/// the sampler's and a training step's FLOP/s as fractions of the matmul peak of the same run, and, with
/// <c>--upstream</c> for foundation-var, FoundationVision's own PyTorch sampler timed on the same files, threads and batch.
/// </summary>
internal static class BenchPolicyCommand
{
    public static Command Create(CliContext context)
    {
        var policyOptions = new PolicyOptions();
        var batch = new Option<int>("--batch") { Description = "Images per sampling call.", DefaultValueFactory = _ => 8 };
        var repeats = new Option<int>("--repeats") { Description = "Timed calls per measurement (after one warm-up).", DefaultValueFactory = _ => 3 };
        var threads = new Option<int>("--threads") { Description = "Intra-op threads for both implementations.", DefaultValueFactory = _ => 2 };
        var prompts = new Option<string[]>("--prompt") { Description = "Prompts cycled over the batch (default 207, 0, 999, 1; class indices for --upstream)." };
        var noRecompute = new Option<bool>("--no-recompute") { Description = "Skip the full-recompute sampler (slow on big models)." };
        var upstream = new Option<string?>("--upstream") { Description = "FoundationVision/VAR checkout: time its sampler on the same files (foundation-var only)." };
        var python = new Option<string>("--python") { Description = "Python with torch for --upstream.", DefaultValueFactory = _ => "/usr/bin/python3" };
        var script = new Option<string>("--upstream-script") { Description = "The upstream timing script.", DefaultValueFactory = _ => Path.Combine("tools", "foundation-var", "bench_upstream.py") };
        var loraRank = new Option<int>("--lora-rank") { Description = "Also compare full fine-tuning with LoRA of this rank (0 = skip): step time and peak memory.", DefaultValueFactory = _ => 0 };
        var format = Formats.Option();
        var command = new Command("policy", "Benchmark a policy: load memory, sampling with/without KV cache, FLOP/s vs matmul peak, optional upstream side by side.")
        {
            batch, repeats, threads, prompts, noRecompute, upstream, python, script, loraRank, format,
        };
        command.Options.Add(policyOptions.Policy);
        command.Options.Add(policyOptions.Checkpoint);
        command.Options.Add(policyOptions.Seed);
        command.Options.Add(policyOptions.Cfg);
        command.Options.Add(policyOptions.TopK);
        command.Options.Add(policyOptions.TopP);
        command.SetAction(async (parse, ct) =>
        {
            int b = parse.GetValue(batch), r = parse.GetValue(repeats), t = parse.GetValue(threads);
            if (b < 1 || r < 1 || t < 1) throw new CliUsageException("--batch, --repeats and --threads must be at least 1");
            TorchSharp.torch.set_num_threads(t);
            var rows = parse.GetValue(prompts) is { Length: > 0 } given ? given : ["207", "0", "999", "1"];
            var sampling = policyOptions.Sampling(context, parse) with { Temperature = 1 };
            var name = parse.GetValue(policyOptions.Policy) ?? TrainingConfig.Bind(context).Policy;

            var rssBefore = ResidentMemory.ResetPeak();
            var clock = Stopwatch.StartNew();
            using var policy = policyOptions.Load(context, parse);
            double loadSeconds = clock.Elapsed.TotalSeconds;
            long peakGrowth = ResidentMemory.Peak() - rssBefore;
            long weightBytes = WeightFiles(context, name, parse.GetValue(policyOptions.Checkpoint)).Sum(f => new FileInfo(f).Length);

            SamplerBenchResult result;
            try
            {
                result = SamplerBench.Run(policy, rows, b, r, sampling, recompute: !parse.GetValue(noRecompute));
            }
            catch (Exception e) when (e is NotSupportedException or ArgumentException)
            {
                throw new CliUsageException(e.Message);
            }
            IReadOnlyList<FineTuneBenchResult>? fineTune = null;
            if (parse.GetValue(loraRank) is > 0 and var rank)
            {
                try
                {
                    fineTune = FineTuneBench.Run(policy, rows, Math.Min(b, 2), Math.Max(2, r), rank, 2.0 * rank);
                }
                catch (NotSupportedException e)
                {
                    throw new CliUsageException(e.Message);
                }
            }
            UpstreamResult? up = null;
            if (parse.GetValue(upstream) is { } upstreamDir)
                up = await Upstream(context, name, upstreamDir, parse.GetValue(python)!, parse.GetValue(script)!, rows, b, r, t, sampling, ct);

            var report = new
            {
                policy = policy.Name,
                model = policy.Info.Model,
                parameters = policy.Info.Parameters,
                schedule = policy.Schedule.ToString(),
                threads = t,
                batch = b,
                cfg = sampling.CfgScale,
                topK = sampling.TopK,
                topP = sampling.TopP,
                loadSeconds,
                loadPeakRssGrowthBytes = peakGrowth,
                weightFileBytes = weightBytes,
                loadMemoryRatio = weightBytes > 0 ? (double)peakGrowth / weightBytes : double.NaN,
                cachedImagesPerSecond = result.CachedImagesPerSecond,
                recomputeImagesPerSecond = result.RecomputeImagesPerSecond,
                kvSpeedup = result.Speedup,
                kvBound = result.PositionBound,
                kvBoundFraction = result.BoundFraction,
                samplerFlopsPerSecond = result.SampleFlopsPerSecond,
                samplerPeakFraction = result.SampleFraction,
                trainStepSeconds = result.TrainStepSeconds,
                trainFlopsPerSecond = result.TrainFlopsPerSecond,
                trainPeakFraction = result.TrainFraction,
                matmulFlopsPerSecond = result.MatmulFlopsPerSecond,
                precision = ((policy as NextFlowRL.Torch.NextScale.ISamplerControl)?.Precision ?? NextFlowRL.Torch.Devices.TorchPrecision.Fp32).ToString().ToLowerInvariant(),
                parityMaxDev = result.ParityMaxDev,
                parityMeanDev = result.ParityMeanDev,
                upstreamImagesPerSecond = up?.ImagesPerSecond,
                upstreamTorch = up?.Torch,
                oursOverUpstream = up is null ? (double?)null : result.CachedImagesPerSecond / up.ImagesPerSecond,
                fineTune,
            };
            if (parse.GetValue(format) == "json")
            {
                Console.WriteLine(JsonSerializer.Serialize(report, Formats.Json));
                return Cli.Ok;
            }
            string F(double v, string f = "0.00") => double.IsFinite(v) ? v.ToString(f, CultureInfo.InvariantCulture) : "-";
            Console.WriteLine($"policy       {policy.Name} {policy.Info.Model} ({policy.Info.Parameters:N0} parameters), schedule {policy.Schedule}, {t} threads");
            Console.WriteLine($"load         {F(loadSeconds, "0.0")} s; peak RSS +{peakGrowth / 1e6:0} MB for {weightBytes / 1e6:0} MB of weight files ({F(report.loadMemoryRatio)}x; goal <= about 2x)");
            Console.WriteLine($"sampling     batch {b}, cfg {F(sampling.CfgScale, "0.##")}, top-k {sampling.TopK}, top-p {F(sampling.TopP, "0.##")}: KV cache {F(result.CachedImagesPerSecond, "0.000")} img/s, full recompute {F(result.RecomputeImagesPerSecond, "0.000")} img/s");
            Console.WriteLine($"kv cache     speedup {F(result.Speedup)}x of the schedule's bound {F(result.PositionBound)}x = {F(result.BoundFraction)} (goal >= 0.8)");
            Console.WriteLine($"sampler      {F(result.SampleFlopsPerSecond / 1e9)} GFLOP/s = {F(100 * result.SampleFraction, "0.0")} % of the matmul peak");
            Console.WriteLine($"train step   {F(result.TrainStepSeconds * 1000, "0")} ms, {F(result.TrainFlopsPerSecond / 1e9)} GFLOP/s = {F(100 * result.TrainFraction, "0.0")} % of the matmul peak (goal >= 50 %)");
            Console.WriteLine($"parity       sampler vs teacher-forced log-probs of the same tokens: max {result.ParityMaxDev:E2}, mean {result.ParityMeanDev:E2} nats per token (precision {report.precision})");
            Console.WriteLine($"matmul peak  {F(result.MatmulFlopsPerSecond / 1e9)} GFLOP/s ({MatmulPeak.Size}^3 float32, fastest of 5, same process)");
            foreach (var ft in fineTune ?? [])
                Console.WriteLine($"fine-tune    {ft.Mode,-4}: {ft.TrainableParameters:N0} trainable parameters, step {F(ft.StepSeconds, "0.00")} s (batch {Math.Min(b, 2)}), peak RSS +{ft.PeakGrowthBytes / 1e6:0} MB");
            if (fineTune is { Count: 2 })
                Console.WriteLine($"lora / full  step time {F(fineTune[0].StepSeconds / fineTune[1].StepSeconds)}x, peak memory growth {F((double)fineTune[0].PeakGrowthBytes / Math.Max(1, fineTune[1].PeakGrowthBytes))}x");
            if (up is not null)
                Console.WriteLine($"upstream     {F(up.ImagesPerSecond, "0.000")} img/s (FoundationVision sampler, PyTorch {up.Torch}, same files, threads, batch, cfg, top-k/top-p); ours / upstream = {F(report.oursOverUpstream!.Value)}x (goal >= 1.0)");
            return Cli.Ok;
        });
        return command;
    }

    /// <summary>The weight files behind a policy load: the checkpoint (a file, or the files of a folder) and a configured VAE.</summary>
    private static IEnumerable<string> WeightFiles(CliContext context, string policy, string? checkpoint)
    {
        var section = context.Configuration.GetSection($"Policies:{policy}");
        var main = checkpoint ?? section["Checkpoint"];
        if (main is not null && File.Exists(main)) yield return main;
        else if (main is not null && Directory.Exists(main))
            foreach (var f in Directory.EnumerateFiles(main, "*.safetensors")) yield return f;
        if (section["Vae"] is { } vae && File.Exists(vae) && !(main is not null && Directory.Exists(main))) yield return vae;
    }

    private sealed record UpstreamResult(double ImagesPerSecond, string Torch);

    private static async Task<UpstreamResult> Upstream(CliContext context, string policy, string dir, string python, string script, IReadOnlyList<string> rows,
        int batch, int repeats, int threads, SamplingOptions sampling, CancellationToken ct)
    {
        var section = context.Configuration.GetSection($"Policies:{policy}");
        string? var = section["Checkpoint"], vae = section["Vae"];
        if (var is null || vae is null || !File.Exists(var) || !File.Exists(vae))
            throw new CliUsageException($"--upstream times FoundationVision's sampler on the same files: set Policies:{policy}:Checkpoint and Policies:{policy}:Vae to the .pth files");
        if (!File.Exists(script)) throw new CliUsageException($"upstream timing script '{script}' not found (run from the repository root or pass --upstream-script)");
        if (rows.Any(p => !int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out _)))
            throw new CliUsageException("--upstream needs class indices as prompts (e.g. --prompt 207 --prompt 0)");
        var psi = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[]
        {
            script, "--upstream", dir, "--var", var, "--vae", vae, "--batch", batch.ToString(CultureInfo.InvariantCulture),
            "--threads", threads.ToString(CultureInfo.InvariantCulture), "--repeats", repeats.ToString(CultureInfo.InvariantCulture),
            "--cfg", sampling.CfgScale.ToString(CultureInfo.InvariantCulture), "--top-k", sampling.TopK.ToString(CultureInfo.InvariantCulture),
            // Upstream's top-p keeps tokens until the mass reaches p and treats 0 as off; ours treats 1 as off.
            "--top-p", (sampling.TopP >= 1 ? 0 : sampling.TopP).ToString(CultureInfo.InvariantCulture),
            "--labels", string.Join(",", rows), "--seed", sampling.Seed.ToString(CultureInfo.InvariantCulture),
        })
            psi.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new CliUsageException($"could not start {python}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new CliUsageException($"could not start {python} ({e.Message}); install Debian's python3-torch or pass --python");
        }
        using var owned = process;
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        var output = await stdout;
        if (process.ExitCode != 0)
        {
            var tail = string.Join(" | ", (await stderr).Split('\n', StringSplitOptions.RemoveEmptyEntries).TakeLast(3));
            throw new InvalidDataException($"the upstream timing script failed (exit {process.ExitCode}): {tail}");
        }
        var line = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "";
        try
        {
            using var doc = JsonDocument.Parse(line);
            return new UpstreamResult(doc.RootElement.GetProperty("images_per_s").GetDouble(), doc.RootElement.TryGetProperty("torch", out var v) ? v.GetString() ?? "?" : "?");
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new InvalidDataException($"the upstream timing script printed no result line ({e.Message}): '{line}'");
        }
    }
}
