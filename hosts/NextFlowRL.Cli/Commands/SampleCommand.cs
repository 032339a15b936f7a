using System.CommandLine;
using NextFlowRL.Imaging;
using NextFlowRL.Policies;
using NextFlowRL.Training;

namespace NextFlowRL.Cli.Commands;

/// <summary>
/// <c>nextflow-rl sample --policy var [--prompt TEXT | --prompts-file FILE] [--count N] --seed S --out DIR</c>:
/// one PNG per image in prompt order (000.png, 001.png, ...) and grid.png.
/// </summary>
internal static class SampleCommand
{
    public static Command Create(CliContext context)
    {
        var policy = new PolicyOptions();
        var prompt = new Option<string[]>("--prompt") { Description = "A prompt (repeatable).", AllowMultipleArgumentsPerToken = false };
        var promptsFile = new Option<string?>("--prompts-file") { Description = "Prompts: JSONL with a \"prompt\" field per line, or plain text with one prompt per line." };
        var count = new Option<int>("--count") { Description = "Images per prompt.", DefaultValueFactory = _ => 1 };
        var outDir = new Option<string>("--out") { Description = "Output directory.", Required = true };
        var batch = new Option<int>("--batch-size") { Description = "Images sampled together.", DefaultValueFactory = _ => 16 };
        var command = new Command("sample", "Generate images from prompts with a policy.") { prompt, promptsFile, count, outDir, batch };
        policy.AddTo(command);
        command.SetAction((parse, ct) =>
        {
            var prompts = ReadPrompts(parse.GetValue(prompt) ?? [], parse.GetValue(promptsFile));
            int n = parse.GetValue(count);
            if (n < 1) throw new CliUsageException($"--count must be at least 1, got {n}");
            int batchSize = parse.GetValue(batch);
            if (batchSize < 1) throw new CliUsageException($"--batch-size must be at least 1, got {batchSize}");
            var sampling = policy.Sampling(context, parse);
            var dir = parse.GetValue(outDir)!;
            using var model = policy.Load(context, parse);
            var all = prompts.SelectMany(p => Enumerable.Repeat(p, n)).ToList();
            var images = new List<RgbImage>();
            using var progress = new ConsoleProgress("sample", all.Count, "img");
            for (int start = 0; start < all.Count; start += batchSize)
            {
                ct.ThrowIfCancellationRequested();
                var chunk = all.Skip(start).Take(batchSize).ToList();
                TokenTrajectories trajectories;
                try
                {
                    trajectories = model.Sample(chunk, sampling with { Seed = Seeds.Mix(sampling.Seed, start) }, ct);
                }
                catch (ArgumentException e)
                {
                    throw new CliUsageException(e.Message); // a prompt the policy cannot condition on
                }
                using var _ = trajectories;
                foreach (var image in model.Decode(trajectories))
                {
                    ImageFile.SavePng(image, Path.Combine(dir, $"{images.Count:D3}.png"));
                    images.Add(image);
                }
                progress.Advance(chunk.Count);
            }
            int scale = Math.Max(1, 128 / images.Max(i => i.Width));
            ImageFile.SavePng(ImageGrid.Compose(images, Math.Min(8, images.Count), all, scale), Path.Combine(dir, "grid.png"));
            Console.Error.WriteLine($"nextflow-rl: wrote {images.Count} images and grid.png to {Path.GetFullPath(dir)}");
            return Task.FromResult(Cli.Ok);
        });
        return command;
    }

    public static IReadOnlyList<string> ReadPrompts(string[] prompts, string? file)
    {
        var list = new List<string>(prompts);
        if (file is not null)
        {
            if (!File.Exists(file)) throw new CliUsageException($"prompts file '{file}' not found");
            var lines = File.ReadAllLines(file).Where(l => !string.IsNullOrWhiteSpace(l)).ToList();
            if (lines.Count > 0 && lines[0].TrimStart().StartsWith('{'))
            {
                try
                {
                    list.AddRange(PromptSet.Load(file).Records.Select(r => r.Prompt));
                }
                catch (InvalidDataException e)
                {
                    throw new CliUsageException(e.Message);
                }
            }
            else
            {
                list.AddRange(lines.Select(l => l.Trim()));
            }
        }
        if (list.Count == 0) throw new CliUsageException("no prompts: give --prompt TEXT or --prompts-file FILE");
        return list;
    }
}
