using NextFlowRL.Imaging;

namespace NextFlowRL.Policies.Var.Model;

/// <summary>
/// A tokenizer + generator pair with its configuration. On disk: a directory with <c>config.json</c> and
/// <c>model.safetensors</c> (tensors prefixed <c>tokenizer.</c> and <c>generator.</c>).
/// </summary>
public sealed class VarModel : IDisposable
{
    /// <summary>Weights file name.</summary>
    public const string WeightsFile = "model.safetensors";

    /// <summary>Configuration file name.</summary>
    public const string ConfigFile = "config.json";

    /// <summary>Creates a randomly initialized model (seeded by the caller through <c>torch.manual_seed</c>).</summary>
    public VarModel(VarModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        Config = config;
        Tokenizer = new MultiScaleVqVae(config.Tokenizer);
        Generator = new NextScaleTransformer(config.Generator, config.Tokenizer);
    }

    /// <summary>The configuration.</summary>
    public VarModelConfig Config { get; }

    /// <summary>The tokenizer.</summary>
    public MultiScaleVqVae Tokenizer { get; }

    /// <summary>The generator.</summary>
    public NextScaleTransformer Generator { get; }

    /// <summary>All tensors with their prefixed names.</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> StateDict() =>
        Tokenizer.state_dict().Select(kv => KeyValuePair.Create("tokenizer." + kv.Key, kv.Value))
            .Concat(Generator.state_dict().Select(kv => KeyValuePair.Create("generator." + kv.Key, kv.Value)));

    /// <summary>Writes config and weights into <paramref name="directory"/> (each file atomically).</summary>
    public void Save(string directory, IReadOnlyDictionary<string, string>? metadata = null)
    {
        Directory.CreateDirectory(directory);
        SafeTensors.Write(Path.Combine(directory, WeightsFile), StateDict(), metadata);
        AtomicFile.WriteAllText(Path.Combine(directory, ConfigFile), Config.ToJson());
    }

    /// <summary>Reads a model directory.</summary>
    /// <exception cref="InvalidDataException">Missing files, corrupt files or a mismatch with the configured architecture.</exception>
    public static VarModel Load(string directory, out IReadOnlyDictionary<string, string> metadata)
    {
        if (!Directory.Exists(directory)) throw new InvalidDataException($"{directory}: checkpoint directory not found.");
        var configPath = Path.Combine(directory, ConfigFile);
        if (!File.Exists(configPath)) throw new InvalidDataException($"{configPath}: config file not found.");
        var config = VarModelConfig.FromJson(File.ReadAllText(configPath), configPath);
        var (tensors, meta) = SafeTensors.Read(Path.Combine(directory, WeightsFile));
        var model = new VarModel(config);
        try
        {
            var source = Path.Combine(directory, WeightsFile);
            var unknown = tensors.Keys.Where(k => !k.StartsWith("tokenizer.", StringComparison.Ordinal) && !k.StartsWith("generator.", StringComparison.Ordinal)).ToList();
            if (unknown.Count > 0) throw new InvalidDataException($"{source}: checkpoint does not match the architecture: unexpected tensors: {string.Join(", ", unknown.Take(5))}.");
            SafeTensors.LoadInto(model.Tokenizer, Sub(tensors, "tokenizer."), source);
            SafeTensors.LoadInto(model.Generator, Sub(tensors, "generator."), source);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
        metadata = meta;
        return model;
    }

    private static Dictionary<string, Tensor> Sub(Dictionary<string, Tensor> all, string prefix) =>
        all.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value, StringComparer.Ordinal);

    /// <summary>Converts images to a float tensor <c>[B, 3, H, W]</c> in [-1, 1].</summary>
    public static Tensor ImagesToTensor(IReadOnlyList<RgbImage> images, Device? device = null)
    {
        int h = images[0].Height, w = images[0].Width;
        var data = new float[images.Count * 3 * h * w];
        for (int b = 0; b < images.Count; b++)
        {
            var p = images[b].Pixels;
            if (images[b].Width != w || images[b].Height != h) throw new ArgumentException("All images must have the same size.");
            int plane = h * w, baseAt = b * 3 * plane;
            for (int i = 0; i < plane; i++)
            {
                data[baseAt + i] = p[3 * i] / 127.5f - 1f;
                data[baseAt + plane + i] = p[3 * i + 1] / 127.5f - 1f;
                data[baseAt + 2 * plane + i] = p[3 * i + 2] / 127.5f - 1f;
            }
        }
        return tensor(data, [images.Count, 3, h, w], device: device);
    }

    /// <summary>Converts a tensor <c>[B, 3, H, W]</c> in [-1, 1] to images.</summary>
    public static IReadOnlyList<RgbImage> TensorToImages(Tensor x)
    {
        using var c = ((x.detach().clamp(-1, 1) + 1) * 127.5).round().to(ScalarType.Byte).permute(0, 2, 3, 1).contiguous().cpu();
        var bytes = c.data<byte>().ToArray();
        int b = (int)c.shape[0], h = (int)c.shape[1], w = (int)c.shape[2], n = h * w * 3;
        return Enumerable.Range(0, b).Select(i => new RgbImage(w, h, bytes.AsSpan(i * n, n))).ToArray();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Tokenizer.Dispose();
        Generator.Dispose();
    }
}
