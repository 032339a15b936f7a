using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using NextFlowRL.Imaging;
using NextFlowRL.Rewards;
using NextFlowRL.Training;
using Spectre.Console;

namespace NextFlowRL.Cli.Commands;

/// <summary>
/// <c>nextflow-rl score --reward NAME [--prompt TEXT IMAGE...] [--manifest FILE.jsonl] [--format table|json] [--summary]</c>
/// </summary>
internal static class ScoreCommand
{
    /// <summary>One input: an image path, its prompt and metadata.</summary>
    public sealed record Input(string Image, string Prompt, IReadOnlyDictionary<string, string> Metadata);

    /// <summary>One output row, in input order.</summary>
    public sealed record Row(string Image, string Prompt, double? Score, IReadOnlyDictionary<string, double?> Components, IReadOnlyList<RewardRegion> Regions, string? Error);

    public static Command Create(CliContext context)
    {
        var reward = new Option<string>("--reward") { Description = "Name of the reward to score with (see 'nextflow-rl plugins').", Required = true };
        var prompt = new Option<string?>("--prompt") { Description = "Prompt of the IMAGE arguments." };
        var manifest = new Option<string?>("--manifest") { Description = "JSONL file, one {\"image\": path, \"prompt\": text, \"metadata\": {...}} per line; paths relative to the file." };
        var format = Formats.Option();
        var summary = new Option<bool>("--summary") { Description = "Also print set-level metrics (means, and the reward's own summary such as Word Accuracy)." };
        var batchSize = new Option<int>("--batch-size") { Description = "Images per reward call.", DefaultValueFactory = _ => 16 };
        var images = new Argument<string[]>("images") { Description = "Image files scored with --prompt.", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("score", "Score image files with a reward.") { reward, prompt, manifest, format, summary, batchSize, images };
        command.SetAction(async (parse, ct) =>
        {
            var inputs = ReadInputs(parse.GetValue(prompt), parse.GetValue(images) ?? [], parse.GetValue(manifest));
            int batch = parse.GetValue(batchSize);
            if (batch < 1) throw new CliUsageException($"--batch-size must be at least 1, got {batch}");
            var host = context.ValidatedHost();
            var model = host.GetReward(parse.GetValue(reward)!);
            var rows = await ScoreAsync(model, inputs, batch, ct);
            var results = rows.Select(r => r.Result).ToList();
            var outRows = rows.Select(r => r.Row).ToList();
            var metrics = parse.GetValue(summary) ? Training.RewardMetrics.Summarize(model, results, inputs.Select(i => i.Metadata.GetValueOrDefault(RewardMetadataKeys.Bin)).ToList()) : null;
            Write(outRows, metrics, parse.GetValue(format) == "json");
            foreach (var failed in outRows.Where(r => r.Error is not null))
                Console.Error.WriteLine($"nextflow-rl: error: {failed.Error}");
            return outRows.Any(r => r.Error is not null) ? Cli.RuntimeError : Cli.Ok;
        });
        return command;
    }

    public static IReadOnlyList<Input> ReadInputs(string? prompt, string[] images, string? manifest)
    {
        var inputs = new List<Input>();
        if (images.FirstOrDefault(i => i.StartsWith("--", StringComparison.Ordinal)) is { } unknown)
            throw new CliUsageException($"unknown option '{unknown}' (see 'nextflow-rl score --help')");
        if (images.Length > 0 && prompt is null)
            throw new CliUsageException("images given without --prompt");
        if (prompt is not null && images.Length == 0)
            throw new CliUsageException("--prompt given without image files");
        inputs.AddRange(images.Select(i => new Input(i, prompt!, RewardSample.EmptyMetadata)));
        if (manifest is not null)
            inputs.AddRange(ReadManifest(manifest));
        if (inputs.Count == 0)
            throw new CliUsageException("nothing to score: give --prompt TEXT IMAGE... or --manifest FILE.jsonl");
        return inputs;
    }

    /// <summary>Reads a JSONL manifest; every malformed line is an error naming the line.</summary>
    public static IReadOnlyList<Input> ReadManifest(string path)
    {
        if (!File.Exists(path)) throw new CliUsageException($"manifest '{path}' not found");
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var inputs = new List<Input>();
        try
        {
            ReadManifestLines(path, dir, inputs);
        }
        catch (InvalidDataException e)
        {
            throw new CliUsageException($"manifest {e.Message}");
        }
        return inputs;
    }

    private static void ReadManifestLines(string path, string dir, List<Input> inputs)
    {
        foreach (var (n, obj) in JsonLines.ReadObjects(path))
        {
            string Str(string key) => JsonLines.OptionalString(obj, key, path, n) ?? throw new InvalidDataException($"{path}:{n}: missing \"{key}\"");
            var image = Str("image");
            var prompt = Str("prompt");
            var metadata = new Dictionary<string, string>();
            if (obj["metadata"] is JsonObject meta)
            {
                foreach (var (k, v) in meta)
                    metadata[k] = v is JsonValue jv && jv.TryGetValue<string>(out var s) ? s : v?.ToJsonString() ?? "";
            }
            else if (obj["metadata"] is not null)
            {
                throw new InvalidDataException($"{path}:{n}: \"metadata\" must be an object");
            }
            inputs.Add(new Input(Path.IsPathRooted(image) ? image : Path.Combine(dir, image), prompt, metadata));
        }
    }

    /// <summary>Loads and scores every input in batches. Unreadable images become rows with an error.</summary>
    public static async Task<IReadOnlyList<(Row Row, RewardResult Result)>> ScoreAsync(IRewardModel model, IReadOnlyList<Input> inputs, int batchSize, CancellationToken ct)
    {
        var results = new RewardResult?[inputs.Count];
        var samples = new List<(int Index, RewardSample Sample)>();
        for (int i = 0; i < inputs.Count; i++)
        {
            try
            {
                samples.Add((i, new RewardSample(ImageFile.Load(inputs[i].Image), inputs[i].Prompt, inputs[i].Metadata)));
            }
            catch (ImageFormatException e)
            {
                results[i] = RewardResult.Failed(e.Message);
            }
        }
        using var progress = samples.Count > batchSize ? new ConsoleProgress($"score {model.Name}", samples.Count, "img") : null;
        foreach (var chunk in samples.Chunk(batchSize))
        {
            ct.ThrowIfCancellationRequested();
            var scored = await model.ScoreAsync(chunk.Select(c => c.Sample).ToList(), ct);
            if (scored.Count != chunk.Length)
                throw new InvalidDataException($"reward '{model.Name}' returned {scored.Count} results for {chunk.Length} images");
            for (int j = 0; j < chunk.Length; j++)
            {
                var r = scored[j];
                results[chunk[j].Index] = r.Error is null && !double.IsFinite(r.Score)
                    ? RewardResult.Failed($"reward '{model.Name}' returned a non-finite score ({r.Score}) for '{inputs[chunk[j].Index].Image}'")
                    : r.Error is null ? r : r with { Error = $"{inputs[chunk[j].Index].Image}: {r.Error}" };
            }
            progress?.Advance(chunk.Length);
        }
        return inputs.Select((input, i) =>
        {
            var r = results[i]!;
            var row = new Row(input.Image, input.Prompt, double.IsFinite(r.Score) ? r.Score : null,
                r.Components.ToDictionary(kv => kv.Key, kv => double.IsFinite(kv.Value) ? kv.Value : (double?)null),
                r.Regions, r.Error);
            return (row, r);
        }).ToList();
    }

    private static void Write(IReadOnlyList<Row> rows, IReadOnlyDictionary<string, double>? summary, bool json)
    {
        if (json)
        {
            object document = summary is null
                ? rows
                : new { rows, summary = summary.ToDictionary(kv => kv.Key, kv => double.IsFinite(kv.Value) ? kv.Value : (double?)null) };
            Console.Out.WriteLine(JsonSerializer.Serialize(document, Formats.Json));
            return;
        }
        var table = new Table().AddColumns("#", "image", "prompt", "score", "components", "regions", "error");
        for (int i = 0; i < rows.Count; i++)
        {
            var r = rows[i];
            table.AddRow(
                i.ToString(System.Globalization.CultureInfo.InvariantCulture),
                Markup.Escape(Path.GetFileName(r.Image)),
                Markup.Escape(r.Prompt.Length > 48 ? r.Prompt[..45] + "..." : r.Prompt),
                r.Score is { } s ? s.ToString("0.0000", System.Globalization.CultureInfo.InvariantCulture) : "-",
                Markup.Escape(string.Join(" ", r.Components.Select(kv => $"{kv.Key}={kv.Value?.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) ?? "-"}"))),
                r.Regions.Count.ToString(System.Globalization.CultureInfo.InvariantCulture),
                Markup.Escape(r.Error ?? ""));
        }
        AnsiConsole.Write(table);
        if (summary is not null)
        {
            var st = new Table().AddColumns("metric", "value");
            foreach (var (k, v) in summary)
                st.AddRow(Markup.Escape(k), v.ToString("0.####", System.Globalization.CultureInfo.InvariantCulture));
            AnsiConsole.Write(st);
        }
    }
}
