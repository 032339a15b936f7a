using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using NextFlowRL.Imaging;
using NextFlowRL.Policies;
using NextFlowRL.Torch.NextScale;
using static TorchSharp.torch;

namespace NextFlowRL.Cli.Commands;

/// <summary>
/// <c>nextflow-rl policy encode|decode|logprobs|convert|merge</c>: the tools of a person porting or checking a backbone, for
/// every policy. Token files: <c>{"schedule": [[h, w], ...], "rows": [{"prompt": "...", "scales": [[ints], ...]}]}</c>.
/// </summary>
internal static class PolicyCommand
{
    public static Command Create(CliContext context)
    {
        var command = new Command("policy", "Inspect a policy: encode images to tokens, decode tokens, score tokens, convert to a checkpoint.");
        command.Subcommands.Add(Encode(context));
        command.Subcommands.Add(Decode(context));
        command.Subcommands.Add(LogProbs(context));
        command.Subcommands.Add(Convert(context));
        command.Subcommands.Add(Merge(context));
        return command;
    }

    private static (Option<string?> Policy, Option<string?> Checkpoint) PolicyArgs(Command command)
    {
        var options = new PolicyOptions();
        command.Options.Add(options.Policy);
        command.Options.Add(options.Checkpoint);
        return (options.Policy, options.Checkpoint);
    }

    private static INextScalePolicy Load(CliContext context, ParseResult parse, (Option<string?> Policy, Option<string?> Checkpoint) o)
    {
        var host = context.ValidatedHost();
        var defaults = TrainingConfig.Bind(context);
        return host.GetPolicyProvider(parse.GetValue(o.Policy) ?? defaults.Policy).Load(PolicyOptions.ResolveCheckpoint(parse.GetValue(o.Checkpoint)));
    }

    private static (ScaleSchedule Schedule, TokenTrajectories Tokens) ReadTokens(string path, INextScalePolicy policy)
    {
        var (schedule, tokens) = TokenFile.Read(path);
        if (schedule.Count != policy.Schedule.Count || Enumerable.Range(0, schedule.Count).Any(k => schedule[k] != policy.Schedule[k]))
        {
            tokens.Dispose();
            throw new CliUsageException($"{path}: schedule {schedule} does not match policy '{policy.Name}' ({policy.Schedule})");
        }
        return (schedule, tokens);
    }

    private static Command Encode(CliContext context)
    {
        var images = new Argument<string[]>("images") { Description = "Image files (PNG/JPEG) of the policy's size.", Arity = ArgumentArity.OneOrMore };
        var outFile = new Option<string>("--out") { Description = "Token file to write.", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "Prompt stored with every row.", DefaultValueFactory = _ => "" };
        var command = new Command("encode", "Encode images to token grids with the policy's tokenizer.") { images, outFile, prompt };
        var o = PolicyArgs(command);
        command.SetAction((parse, ct) =>
        {
            var files = parse.GetValue(images)!;
            var loaded = files.Select(ImageFile.Load).ToList();
            using var policy = Load(context, parse, o);
            TokenTrajectories tokens;
            try
            {
                tokens = policy.Encode(loaded, Enumerable.Repeat(parse.GetValue(prompt) ?? "", loaded.Count).ToList());
            }
            catch (Exception e) when (e is NotSupportedException or ArgumentException)
            {
                throw new CliUsageException(e.Message);
            }
            using var _ = tokens;
            var path = parse.GetValue(outFile)!;
            TokenFile.Write(path, policy.Schedule, tokens);
            Console.Error.WriteLine($"nextflow-rl: wrote {tokens.Count} rows of {policy.Schedule.Count} scales to {Path.GetFullPath(path)}");
            return Task.FromResult(Cli.Ok);
        });
        return command;
    }

    private static Command Decode(CliContext context)
    {
        var tokens = new Option<string>("--tokens") { Description = "Token file (complete trajectories).", Required = true };
        var outDir = new Option<string>("--out") { Description = "Output directory: one PNG per row (000.png, 001.png, ...).", Required = true };
        var command = new Command("decode", "Decode token grids to images.") { tokens, outDir };
        var o = PolicyArgs(command);
        command.SetAction((parse, ct) =>
        {
            using var policy = Load(context, parse, o);
            var (_, trajectories) = ReadTokens(parse.GetValue(tokens)!, policy);
            using var _t = trajectories;
            if (trajectories.Length != policy.Schedule.Count)
                throw new CliUsageException($"decoding needs complete trajectories ({policy.Schedule.Count} scales); the file has {trajectories.Length}");
            var dir = parse.GetValue(outDir)!;
            Directory.CreateDirectory(dir);
            IReadOnlyList<RgbImage> images;
            try
            {
                images = policy.Decode(trajectories);
            }
            catch (ArgumentException e)
            {
                throw new CliUsageException(e.Message);
            }
            for (int i = 0; i < images.Count; i++) ImageFile.SavePng(images[i], Path.Combine(dir, $"{i:D3}.png"));
            Console.Error.WriteLine($"nextflow-rl: wrote {images.Count} images to {Path.GetFullPath(dir)}");
            return Task.FromResult(Cli.Ok);
        });
        return command;
    }

    /// <summary>One row of <c>policy logprobs</c> output.</summary>
    internal sealed record RowLogProbs(int Row, string Prompt, double[] Scales);

    private static Command LogProbs(CliContext context)
    {
        var tokens = new Option<string>("--tokens") { Description = "Token file.", Required = true };
        var cfg = new Option<double?>("--cfg") { Description = "Score under the guided distribution at this guidance scale (the backbone's ramp, temperature 1); default: the plain conditional distribution." };
        var format = Formats.Option();
        var command = new Command("logprobs", "Per-scale sums of the teacher-forced log-probabilities of given tokens.") { tokens, cfg, format };
        var o = PolicyArgs(command);
        command.SetAction((parse, ct) =>
        {
            using var policy = Load(context, parse, o);
            var (_, trajectories) = ReadTokens(parse.GetValue(tokens)!, policy);
            using var _t = trajectories;
            var guidance = parse.GetValue(cfg) is { } c ? new SamplingOptions { CfgScale = c } : null;
            IReadOnlyList<Tensor> lps;
            try
            {
                guidance?.Validate();
                using (no_grad())
                    lps = guidance is null ? policy.LogProbs(trajectories, 0, trajectories.Length) : policy.GuidedLogProbs(trajectories, 0, trajectories.Length, guidance);
            }
            catch (Exception e) when (e is NotSupportedException or ArgumentException)
            {
                throw new CliUsageException(e.Message);
            }
            var sums = lps.Select(t => t.to(ScalarType.Float64).sum([1, 2]).cpu().data<double>().ToArray()).ToArray();
            foreach (var t in lps) t.Dispose();
            var rows = Enumerable.Range(0, trajectories.Count)
                .Select(r => new RowLogProbs(r, trajectories.Prompts[r], sums.Select(s => s[r]).ToArray())).ToList();
            if (parse.GetValue(format) == "json")
            {
                Console.WriteLine(JsonSerializer.Serialize(rows, Formats.Json));
            }
            else
            {
                Console.WriteLine("row\tprompt\t" + string.Join("\t", policy.Schedule.Take(trajectories.Length).Select(s => s.ToString())) + "\ttotal");
                foreach (var r in rows)
                    Console.WriteLine($"{r.Row}\t{r.Prompt}\t{string.Join("\t", r.Scales.Select(v => v.ToString("0.0000", CultureInfo.InvariantCulture)))}\t{r.Scales.Sum().ToString("0.0000", CultureInfo.InvariantCulture)}");
            }
            return Task.FromResult(Cli.Ok);
        });
        return command;
    }

    private static Command Convert(CliContext context)
    {
        var outDir = new Option<string>("--out") { Description = "Checkpoint directory to write (loadable with --checkpoint DIR).", Required = true };
        var command = new Command("convert", "Write the loaded policy as this project's checkpoint (safetensors + config).") { outDir };
        var o = PolicyArgs(command);
        command.SetAction((parse, ct) =>
        {
            using var policy = Load(context, parse, o);
            var dir = parse.GetValue(outDir)!;
            policy.Save(dir);
            Console.Error.WriteLine($"nextflow-rl: wrote {policy.Name} ({policy.Info.Model}, {policy.Info.Parameters:N0} parameters) to {Path.GetFullPath(dir)}");
            return Task.FromResult(Cli.Ok);
        });
        return command;
    }

    private static Command Merge(CliContext context)
    {
        var adapters = new Option<string>("--adapters") { Description = "A LoRA run folder (its latest checkpoint) or checkpoint directory (checkpoints/step-N with adapters.safetensors and adapters.json).", Required = true };
        var outDir = new Option<string>("--out") { Description = "Checkpoint directory to write: the base with the adapters folded into its weights.", Required = true };
        var command = new Command("merge", "Fold a LoRA run's adapters into the base policy and write a full checkpoint (--checkpoint: the run's base, default the policy's default).") { adapters, outDir };
        var o = PolicyArgs(command);
        command.SetAction((parse, ct) =>
        {
            var dir = parse.GetValue(adapters)!;
            // A run folder stands for its latest checkpoint.
            if (!File.Exists(Path.Combine(dir, NextFlowRL.Training.LoraFiles.Description))
                && new NextFlowRL.Runs.CheckpointStore(Path.Combine(dir, "checkpoints"), 1).Latest() is { } latest)
                dir = latest;
            NextFlowRL.Training.LoraFiles.Info info;
            try
            {
                info = NextFlowRL.Training.LoraFiles.Read(dir);
            }
            catch (InvalidDataException e)
            {
                throw new CliUsageException(e.Message);
            }
            using var policy = Load(context, parse, o);
            if (policy is not NextFlowRL.Torch.Adapters.IAdaptablePolicy adaptable)
                throw new CliUsageException($"policy '{policy.Name}' takes no LoRA adapters");
            try
            {
                var lora = NextFlowRL.Torch.Adapters.LoraSet.Attach(adaptable.AdaptableModule, info.Rank, info.Alpha, info.Layers);
                lora.Load(Path.Combine(dir, NextFlowRL.Training.LoraFiles.Adapters));
                lora.Merge();
            }
            catch (Exception e) when (e is ArgumentException or InvalidDataException or FileNotFoundException)
            {
                throw new CliUsageException($"{dir}: {e.Message}");
            }
            var target = parse.GetValue(outDir)!;
            policy.Save(target);
            Console.Error.WriteLine($"nextflow-rl: merged {info.Layers.Count} adapters (rank {info.Rank}, alpha {info.Alpha}) into {policy.Name}; wrote {Path.GetFullPath(target)}");
            return Task.FromResult(Cli.Ok);
        });
        return command;
    }
}
