using System.CommandLine;
using System.Globalization;
using NextFlowRL.Runs;
using NextFlowRL.Training;

namespace NextFlowRL.Cli.Commands;

/// <summary>
/// <c>nextflow-rl bench train [--steps N]</c>: time per phase (and how much of the reward time the pipeline hid), the
/// update's achieved FLOP/s as a fraction of matmul FLOP/s measured in the same run, updates per sampled image, the
/// process's peak resident size and the slope of the resident size over the steps (flat memory = no growth).
/// </summary>
internal static class BenchTrainCommand
{
    public static Command Create(CliContext context)
    {
        var steps = new Option<int>("--steps") { Description = "Training steps to time (the first is not counted).", DefaultValueFactory = _ => 6 };
        var samplerBatch = new Option<int?>("--sampler-batch")
        {
            Description = "Rows of the KV-cache vs full-recompute sampler measurement (default: the rollout's prompts x G; 0 = skip).",
        };
        var command = new Command("train", "Benchmark training steps: phase times, reward overlap, update FLOP/s vs matmul FLOP/s, KV-cache speedup vs its bound, memory.") { steps, samplerBatch };
        command.SetAction(async (parse, ct) =>
        {
            int n = parse.GetValue(steps);
            if (n < 2) throw new CliUsageException($"--steps must be at least 2, got {n}");
            var options = TrainingConfig.Bind(context);
            options.Evaluate = false;
            TrainingConfig.EnsureValid(options);
            var host = context.ValidatedHost();
            var rewards = options.Rewards.Select(r => (r, host.GetReward(r.Name))).ToList();
            using var policy = host.GetPolicyProvider(options.Policy).Load(options.Checkpoint);
            var logger = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("bench");
            using var progress = new ConsoleProgress("bench train", n, "steps");
            var report = await TrainBenchmark.RunAsync(options, policy, rewards, n, logger, (_, _) => progress.Advance(), ct);
            string F(double v, string format = "0.000") => v.ToString(format, CultureInfo.InvariantCulture);
            Console.Out.WriteLine($"policy            {policy.Info.Model} ({policy.Info.Parameters:N0} parameters), {options.PromptsPerStep} prompts x G={options.GroupSize}, schedule {options.Vmr.Schedule}");
            Console.Out.WriteLine($"steps timed       {report.Steps}");
            Console.Out.WriteLine($"rollout s/step    {F(report.RolloutSeconds)}");
            Console.Out.WriteLine($"reward s/step     {F(report.RewardSeconds)}, waited for {F(report.RewardWaitSeconds)}: {F(100 * report.RewardOverlap, "0")} % hidden behind sampling and the reference's forward (Train:Rollout:PipelineRewards={options.Rollout.PipelineRewards.ToString().ToLowerInvariant()})");
            Console.Out.WriteLine($"update s/step     {F(report.UpdateSeconds)}");
            foreach (var (part, seconds) in report.UpdateParts)
                Console.Out.WriteLine($"  {part["time_update_".Length..],-15} {F(seconds)}");
            Console.Out.WriteLine($"update GFLOP/s    {F(report.UpdateFlopsPerSecond / 1e9, "0.00")} (estimated {F(report.UpdateFlops / 1e9, "0.00")} GFLOP per update)");
            Console.Out.WriteLine($"matmul GFLOP/s    {F(report.MatmulFlopsPerSecond / 1e9, "0.00")} (1024^3 float32, fastest of 5, same process: NextFlowRL.Torch.Benchmarks.MatmulPeak)");
            Console.Out.WriteLine($"update / matmul   {F(report.Fraction)} (goal >= 0.5)");
            Console.Out.WriteLine($"model shapes      {F(report.ModelShapeFlopsPerSecond / 1e9, "0.00")} GFLOP/s = {F(report.ModelShapeFraction)} of the matmul peak: the policy's own linear shapes at one micro-batch of sequences, the update's ceiling");
            Console.Out.WriteLine($"updates / image   {F(report.UpdatesPerImage, "0.0000")} (images sampled and scored per step: every one feeds an update)");
            Console.Out.WriteLine($"peak rss          {report.PeakRssBytes / 1e6:0} MB over all steps (VmHWM, every phase; main job goal <= 2500 MB)");
            Console.Out.WriteLine($"rss MB            {report.RssStartBytes / 1e6:0} -> {report.RssEndBytes / 1e6:0} at step ends, slope {F(report.RssSlopeBytesPerStep / 1e6, "+0.0;-0.0;0.0")} MB/step over the timed steps (goal: flat)");
            foreach (var (phase, mb) in report.PhasePeaks)
                Console.Out.WriteLine($"  peak {phase["rss_peak_".Length..^"_mb".Length],-10} {mb:0} MB (sampled every 10 ms)");
            Console.Out.WriteLine($"live tensors      {report.LiveTensorsStart} -> {report.LiveTensorsEnd}");
            int rows = parse.GetValue(samplerBatch) ?? options.PromptsPerStep * options.GroupSize;
            if (rows > 0 && policy is NextFlowRL.Torch.NextScale.ISamplerControl)
            {
                // The rollout's own batch and decoding, sampled with the cache and with full recomputation (one timed call each).
                var prompts = PromptSet.Load(options.TrainPrompts!).Batch(options.Seed, 0, Math.Min(rows, options.PromptsPerStep)).Select(p => p.Prompt).ToList();
                var sampling = new NextFlowRL.Policies.SamplingOptions
                {
                    Seed = options.Seed, CfgScale = options.Rollout.CfgScale, TopK = options.Rollout.TopK, TopP = options.Rollout.TopP, Temperature = options.Rollout.Temperature,
                };
                var sampler = NextFlowRL.Torch.Benchmarks.SamplerBench.Run(policy, prompts, rows, 1, sampling);
                Console.Out.WriteLine($"kv cache          {F(sampler.CachedImagesPerSecond, "0.00")} vs {F(sampler.RecomputeImagesPerSecond, "0.00")} img/s recomputing (batch {rows}): speedup {F(sampler.Speedup, "0.00")}x of the schedule's bound {F(sampler.PositionBound, "0.00")}x = {F(sampler.BoundFraction, "0.00")} (goal >= 0.8)");
                Console.Out.WriteLine($"sampler / matmul  {F(sampler.SampleFraction)} ({F(sampler.SampleFlopsPerSecond / 1e9, "0.00")} GFLOP/s with the cache)");
            }
            return Cli.Ok;
        });
        return command;
    }
}
