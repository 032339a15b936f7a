using System.Text.Json;
using System.Text.Json.Nodes;

namespace NextFlowRL.Rewards.Clip;

/// <summary>Activation of the transformer MLPs.</summary>
public enum ClipActivation
{
    /// <summary><c>x * sigmoid(1.702 x)</c> (OpenAI CLIP).</summary>
    QuickGelu,

    /// <summary>Exact GELU (OpenCLIP LAION models, ViT-H/14).</summary>
    Gelu,
}

/// <summary>Shape of one CLIP tower (text or vision transformer).</summary>
/// <param name="Width">Hidden size.</param>
/// <param name="Layers">Number of residual blocks.</param>
/// <param name="Heads">Attention heads.</param>
/// <param name="MlpWidth">Hidden size of the MLP.</param>
/// <param name="Activation">MLP activation.</param>
/// <param name="LayerNormEps">Layer norm epsilon.</param>
public sealed record ClipTowerConfig(int Width, int Layers, int Heads, int MlpWidth, ClipActivation Activation, double LayerNormEps);

/// <summary>
/// The architecture of a CLIP model: text tower (with vocabulary size and context length), vision tower (with image
/// and patch size) and the shared embedding dimension.
/// </summary>
/// <param name="Text">Text tower.</param>
/// <param name="Vision">Vision tower.</param>
/// <param name="VocabSize">Rows of the token embedding.</param>
/// <param name="ContextLength">Text positions (77 for CLIP).</param>
/// <param name="ImageSize">Square input size of the vision tower.</param>
/// <param name="PatchSize">Patch size of the vision tower.</param>
/// <param name="EmbedDim">Dimension of the joint image-text embedding.</param>
public sealed record ClipArchitecture(ClipTowerConfig Text, ClipTowerConfig Vision, int VocabSize, int ContextLength, int ImageSize, int PatchSize, int EmbedDim)
{
    /// <summary>Checks the shapes are consistent (heads divide widths, patch divides image).</summary>
    /// <exception cref="InvalidDataException">Inconsistent shapes.</exception>
    public void Validate(string source)
    {
        if (Text.Width <= 0 || Vision.Width <= 0 || Text.Layers < 0 || Vision.Layers < 0 || EmbedDim <= 0 || VocabSize <= 0 || ContextLength < 2)
            throw new InvalidDataException($"{source}: sizes must be positive");
        if (Text.Heads <= 0 || Text.Width % Text.Heads != 0)
            throw new InvalidDataException($"{source}: text width {Text.Width} is not divisible by {Text.Heads} heads");
        if (Vision.Heads <= 0 || Vision.Width % Vision.Heads != 0)
            throw new InvalidDataException($"{source}: vision width {Vision.Width} is not divisible by {Vision.Heads} heads");
        if (PatchSize <= 0 || ImageSize % PatchSize != 0)
            throw new InvalidDataException($"{source}: image size {ImageSize} is not a multiple of patch size {PatchSize}");
    }
}

/// <summary>Reads model configurations in the Hugging Face and OpenCLIP formats.</summary>
public static class ClipConfigReader
{
    /// <summary>
    /// Reads a Hugging Face <c>CLIPModel</c> <c>config.json</c> (<c>text_config</c>, <c>vision_config</c>,
    /// <c>projection_dim</c>; missing fields take the transformers defaults).
    /// </summary>
    public static ClipArchitecture ReadHuggingFace(string configPath)
    {
        var root = ReadObject(configPath);
        var name = Path.GetFileName(configPath);
        var text = root["text_config"] as JsonObject ?? root["text_config_dict"] as JsonObject ?? new JsonObject();
        var vision = root["vision_config"] as JsonObject ?? root["vision_config_dict"] as JsonObject ?? new JsonObject();
        var arch = new ClipArchitecture(
            new ClipTowerConfig(Int(text, "hidden_size", 512), Int(text, "num_hidden_layers", 12), Int(text, "num_attention_heads", 8),
                Int(text, "intermediate_size", 2048), Act(text, name), Double(text, "layer_norm_eps", 1e-5)),
            new ClipTowerConfig(Int(vision, "hidden_size", 768), Int(vision, "num_hidden_layers", 12), Int(vision, "num_attention_heads", 12),
                Int(vision, "intermediate_size", 3072), Act(vision, name), Double(vision, "layer_norm_eps", 1e-5)),
            Int(text, "vocab_size", 49408),
            Int(text, "max_position_embeddings", 77),
            Int(vision, "image_size", 224),
            Int(vision, "patch_size", 32),
            Int(root, "projection_dim", 512));
        arch.Validate(name);
        return arch;
    }

    /// <summary>
    /// Reads an OpenCLIP model configuration: <c>open_clip_config.json</c> (<c>{"model_cfg": {...}, "preprocess_cfg": {...}}</c>)
    /// or a bare model config such as open_clip's <c>ViT-H-14.json</c> (<c>embed_dim</c>, <c>vision_cfg</c>, <c>text_cfg</c>).
    /// </summary>
    /// <returns>The architecture and the preprocessing mean/std when the file has them.</returns>
    public static (ClipArchitecture Architecture, double[]? Mean, double[]? Std) ReadOpenClip(string configPath)
    {
        var root = ReadObject(configPath);
        var name = Path.GetFileName(configPath);
        var model = root["model_cfg"] as JsonObject ?? root;
        if (model["embed_dim"] is null)
            throw new InvalidDataException($"{name} has no embed_dim (expected an OpenCLIP model config)");
        var vision = model["vision_cfg"] as JsonObject ?? throw new InvalidDataException($"{name} has no vision_cfg");
        var text = model["text_cfg"] as JsonObject ?? throw new InvalidDataException($"{name} has no text_cfg");
        foreach (var (cfg, key) in new[] { (vision, "timm_model_name"), (text, "hf_model_name"), (vision, "ls_init_value"), (text, "ls_init_value") })
        {
            if (cfg[key] is JsonValue v && v.GetValueKind() != JsonValueKind.Null)
                throw new InvalidDataException($"{name}: '{key}' towers are not supported (only plain OpenCLIP ViT text/vision transformers, e.g. ViT-H-14)");
        }
        var act = model["quick_gelu"] is JsonValue q && q.GetValueKind() == JsonValueKind.True ? ClipActivation.QuickGelu : ClipActivation.Gelu;
        int vWidth = Int(vision, "width", 768), tWidth = Int(text, "width", 512);
        int headWidth = Int(vision, "head_width", 64);
        if (headWidth <= 0 || vWidth % headWidth != 0)
            throw new InvalidDataException($"{name}: vision width {vWidth} is not divisible by head_width {headWidth}");
        var arch = new ClipArchitecture(
            new ClipTowerConfig(tWidth, Int(text, "layers", 12), Int(text, "heads", 8), (int)(tWidth * Double(text, "mlp_ratio", 4.0)), act, 1e-5),
            new ClipTowerConfig(vWidth, Int(vision, "layers", 12), vWidth / headWidth, (int)(vWidth * Double(vision, "mlp_ratio", 4.0)), act, 1e-5),
            Int(text, "vocab_size", 49408),
            Int(text, "context_length", 77),
            Int(vision, "image_size", 224),
            Int(vision, "patch_size", 16),
            Int(model, "embed_dim", 512));
        arch.Validate(name);
        var pre = root["preprocess_cfg"] as JsonObject;
        return (arch, Doubles(pre?["mean"], name), Doubles(pre?["std"], name));
    }

    /// <summary>
    /// Reads a Hugging Face <c>preprocessor_config.json</c>: <c>size</c> (number, <c>{"shortest_edge"}</c> or
    /// <c>{"height","width"}</c>), <c>crop_size</c> (number or <c>{"height","width"}</c>), <c>image_mean</c>, <c>image_std</c>.
    /// Missing values fall back to <paramref name="imageSize"/> and the OpenAI mean/std.
    /// </summary>
    public static ClipImageProcessor ReadPreprocessor(string? path, int imageSize)
    {
        if (path is null || !File.Exists(path))
            return new ClipImageProcessor(imageSize, imageSize, imageSize);
        var root = ReadObject(path);
        var name = Path.GetFileName(path);
        int resize = root["size"] switch
        {
            JsonValue v => v.GetValue<int>(),
            JsonObject o when o["shortest_edge"] is not null => Int(o, "shortest_edge", imageSize),
            JsonObject o => Math.Min(Int(o, "height", imageSize), Int(o, "width", imageSize)),
            _ => imageSize,
        };
        (int ch, int cw) = root["crop_size"] switch
        {
            JsonValue v => (v.GetValue<int>(), v.GetValue<int>()),
            JsonObject o => (Int(o, "height", imageSize), Int(o, "width", imageSize)),
            _ => (imageSize, imageSize),
        };
        if (root["do_center_crop"] is JsonValue dc && dc.GetValueKind() == JsonValueKind.False)
            (ch, cw) = (resize, resize);
        if (ch != imageSize || cw != imageSize)
            throw new InvalidDataException($"{name}: crop size {ch}x{cw} does not match the model's image size {imageSize}");
        return new ClipImageProcessor(resize, ch, cw, Doubles(root["image_mean"], name), Doubles(root["image_std"], name));
    }

    private static JsonObject ReadObject(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new InvalidDataException($"{Path.GetFileName(path)} is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{Path.GetFileName(path)} is not valid JSON: {e.Message}");
        }
    }

    private static int Int(JsonObject o, string key, int fallback)
    {
        try
        {
            return o[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? (int)v.GetValue<double>() : fallback;
        }
        catch (FormatException)
        {
            return fallback;
        }
    }

    private static double Double(JsonObject o, string key, double fallback) =>
        o[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? v.GetValue<double>() : fallback;

    private static ClipActivation Act(JsonObject o, string file) => (o["hidden_act"] as JsonValue)?.GetValue<string>() switch
    {
        null or "quick_gelu" => ClipActivation.QuickGelu,
        "gelu" => ClipActivation.Gelu,
        var other => throw new InvalidDataException($"{file}: hidden_act '{other}' is not supported (quick_gelu or gelu)"),
    };

    private static double[]? Doubles(JsonNode? node, string file)
    {
        if (node is null) return null;
        if (node is not JsonArray a || a.Count != 3)
            throw new InvalidDataException($"{file}: image mean/std must be arrays of 3 numbers");
        return a.Select(x => x!.GetValue<double>()).ToArray();
    }
}
