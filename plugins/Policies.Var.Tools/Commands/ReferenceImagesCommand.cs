using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using NextFlowRL.Imaging;
using NextFlowRL.Plugins;
using NextFlowRL.Policies.Var.Data;
using NextFlowRL.Policies.Var.Model;
using NextFlowRL.Torch.Imaging;
using NextFlowRL.Rewards;

namespace NextFlowRL.Policies.Var.Commands;

/// <summary>
/// <c>nextflow-rl data var-images</c>: the reference images of an evaluation prompt file — clean renders of the target
/// words (<c>truth</c>) or those renders passed through the model's tokenizer (<c>reconstruction</c>, the ceiling of
/// any generator on it) — as PNGs with a <c>manifest.jsonl</c> that <c>nextflow-rl score --manifest ... --summary</c>
/// scores with any reward, per bin, exactly like <c>nextflow-rl eval</c> scores a policy's samples.
/// </summary>
public sealed class ReferenceImagesCommand : CommandLineCommand
{
    /// <summary>The manifest's file name.</summary>
    public const string ManifestFile = "manifest.jsonl";

    /// <inheritdoc/>
    public override IReadOnlyList<string> Path { get; } = ["data", "var-images"];

    /// <inheritdoc/>
    public override string Description => "Write clean renders or tokenizer reconstructions of evaluation prompts, with a manifest for 'score'.";

    /// <inheritdoc/>
    public override Command CreateCommand()
    {
        var outDir = new Option<string>("--out") { Description = "Directory for 000.png..., grid.png and manifest.jsonl.", Required = true };
        var source = new Option<string>("--source") { Description = "truth: clean renders; reconstruction: the renders through the model's tokenizer.", DefaultValueFactory = _ => "truth" };
        source.AcceptOnlyFromAmong("truth", "reconstruction");
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Model directory (default: the shipped model)." };
        var prompts = new Option<string?>("--prompts") { Description = "Prompt file (default: the model's eval_prompts.jsonl)." };
        var limit = Integer("--limit", "Use only the first N prompts (0 = all).", 0, 0);
        var seed = Integer("--seed", "Style seed of the renders.", 7);
        var batch = Integer("--batch", "Images per tokenizer call.", 25, 1, 4096);
        var threads = Integer("--threads", "Torch intra-op threads (0 = leave as is).", 2, 0, 256);
        var command = new Command(Path[^1], Description) { outDir, source, checkpoint, prompts, limit, seed, batch, threads };
        command.SetAction((parse, ct) =>
        {
            var dir = parse.GetValue(outDir)!;
            var model = parse.GetValue(checkpoint) ?? VarToolsPlugin.DefaultModelDirectory;
            var promptsPath = parse.GetValue(prompts) ?? System.IO.Path.Combine(model, "eval_prompts.jsonl");
            if (!File.Exists(promptsPath)) throw new ArgumentException($"prompt file {promptsPath} not found");
            var records = TextDataset.ReadJsonl(promptsPath);
            if (parse.GetValue(limit) is > 0 and var n) records = records.Take(n).ToList();
            if (parse.GetValue(threads) is > 0 and var t) set_num_threads(t);
            var kind = parse.GetValue(source)!;
            var clock = Stopwatch.StartNew();
            var images = Render(records, parse.GetValue(seed));
            if (kind == "reconstruction") images = Reconstruct(images, model, parse.GetValue(batch), ct);
            Write(dir, records, images);
            Console.WriteLine($"wrote {images.Count} {kind} images and {ManifestFile} to {dir} in {clock.Elapsed.TotalSeconds:F1}s; " +
                $"score them with: nextflow-rl score --reward ocr --manifest {System.IO.Path.Combine(dir, ManifestFile)} --summary");
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>Clean renders of the records' target words, styles drawn in order from <paramref name="seed"/>.</summary>
    public static IReadOnlyList<RgbImage> Render(IReadOnlyList<PromptRecord> records, int seed)
    {
        var rng = new Random(seed);
        return records.Select(r => TextDataset.Render(TextDataset.Draw(rng, r.TargetWords, r.TargetWords.Count) with { Prompt = r.Prompt, Words = r.TargetWords })).ToArray();
    }

    /// <summary>The images encoded to token grids and decoded by the tokenizer of the model in <paramref name="checkpoint"/>.</summary>
    /// <exception cref="ArgumentException">The model's image size differs from the images'.</exception>
    public static IReadOnlyList<RgbImage> Reconstruct(IReadOnlyList<RgbImage> images, string checkpoint, int batch, CancellationToken ct)
    {
        using var policy = (VarPolicy)new VarPolicyProvider("var", new VarPolicyOptions()).Load(checkpoint);
        var (w, h) = (policy.Info.ImageWidth, policy.Info.ImageHeight);
        if (images.FirstOrDefault(i => i.Width != w || i.Height != h) is { } other)
            throw new ArgumentException($"the model in {checkpoint} makes {w}x{h} images, the renders are {other.Width}x{other.Height}");
        var result = new List<RgbImage>(images.Count);
        foreach (var chunk in images.Chunk(batch))
        {
            ct.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var tokenizer = policy.Model.Tokenizer;
            result.AddRange(ImageTensors.ToImages(tokenizer.DecodeTokens(tokenizer.Encode(ImageTensors.FromImages(chunk)))));
        }
        return result;
    }

    /// <summary>Writes the images (<c>000.png</c>, ...), a grid of the first 64 and the manifest (image, prompt, target words, bin).</summary>
    public static void Write(string outDir, IReadOnlyList<PromptRecord> records, IReadOnlyList<RgbImage> images)
    {
        Directory.CreateDirectory(outDir);
        var lines = new List<string>(images.Count);
        for (int i = 0; i < images.Count; i++)
        {
            var name = $"{i:D3}.png";
            ImageFile.SavePng(images[i], System.IO.Path.Combine(outDir, name));
            var metadata = new Dictionary<string, string>
            {
                [RewardMetadataKeys.TargetWords] = string.Join(' ', records[i].TargetWords),
                [RewardMetadataKeys.Bin] = records[i].Bin,
            };
            lines.Add(JsonSerializer.Serialize(new { image = name, prompt = records[i].Prompt, metadata }));
        }
        ImageFile.SavePng(ImageGrid.Compose(images.Take(64).ToArray(), 8), System.IO.Path.Combine(outDir, "grid.png"));
        AtomicFile.WriteAllText(System.IO.Path.Combine(outDir, ManifestFile), string.Join('\n', lines) + "\n");
    }
}
