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
public sealed class ReferenceImagesCommand : INextFlowRLCommand
{
    private const string Usage = "nextflow-rl data var-images --out DIR [--source truth|reconstruction] [--checkpoint DIR] [--prompts FILE.jsonl] " +
        "[--limit N] [--seed S] [--batch N] [--threads T] (default prompts: the model's eval_prompts.jsonl; writes DIR/000.png..., grid.png, manifest.jsonl)";

    /// <summary>The manifest's file name.</summary>
    public const string ManifestFile = "manifest.jsonl";

    /// <inheritdoc/>
    public IReadOnlyList<string> Path { get; } = ["data", "var-images"];

    /// <inheritdoc/>
    public string Description => "Write clean renders or tokenizer reconstructions of evaluation prompts, with a manifest for 'score'.";

    /// <inheritdoc/>
    public Task<int> InvokeAsync(IReadOnlyList<string> args, CancellationToken cancellationToken) =>
        PretrainArgs.Run(Usage, args, ["checkpoint", "prompts", "source", "limit"], a =>
        {
            var outDir = a.String("out") ?? throw new ArgumentException("--out DIR is required");
            var checkpoint = a.String("checkpoint") ?? VarPolicyProvider.DefaultModelDirectory;
            var promptsPath = a.String("prompts") ?? System.IO.Path.Combine(checkpoint, "eval_prompts.jsonl");
            if (!File.Exists(promptsPath)) throw new ArgumentException($"prompt file {promptsPath} not found");
            var records = TextDataset.ReadJsonl(promptsPath);
            int limit = a.Int("limit", 0, 0);
            if (limit > 0) records = records.Take(limit).ToList();
            var source = a.String("source", "truth");
            if (source is not ("truth" or "reconstruction")) throw new ArgumentException($"--source must be truth or reconstruction, got '{source}'");
            int threads = a.Int("threads", 2, 0, 256);
            if (threads > 0) set_num_threads(threads);
            int seed = a.Int("seed", 7);
            int batch = a.Int("batch", 25, 1, 4096);
            var clock = Stopwatch.StartNew();
            var images = Render(records, seed);
            if (source == "reconstruction") images = Reconstruct(images, checkpoint, batch, cancellationToken);
            Write(outDir, records, images);
            Console.WriteLine($"wrote {images.Count} {source} images and {ManifestFile} to {outDir} in {clock.Elapsed.TotalSeconds:F1}s; " +
                $"score them with: nextflow-rl score --reward ocr --manifest {System.IO.Path.Combine(outDir, ManifestFile)} --summary");
            return 0;
        });

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
