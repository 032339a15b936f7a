using NextFlowRL.Imaging;
using NextFlowRL.Torch.Checkpoints;

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
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        StateDictFile.WriteSafetensors(Path.Combine(directory, WeightsFile), StateDict());
        AtomicFile.WriteAllText(Path.Combine(directory, ConfigFile), Config.ToJson());
    }

    /// <summary>Reads a model directory.</summary>
    /// <exception cref="InvalidDataException">Missing files, corrupt files or a mismatch with the configured architecture.</exception>
    public static VarModel Load(string directory)
    {
        if (!Directory.Exists(directory)) throw new InvalidDataException($"{directory}: checkpoint directory not found.");
        var configPath = Path.Combine(directory, ConfigFile);
        if (!File.Exists(configPath)) throw new InvalidDataException($"{configPath}: config file not found.");
        var config = VarModelConfig.FromJson(File.ReadAllText(configPath), configPath);
        var weights = Path.Combine(directory, WeightsFile);
        if (!File.Exists(weights)) throw new InvalidDataException($"{weights}: weights file not found.");
        var tensors = StateDictFile.Read(weights);
        var model = new VarModel(config);
        try
        {
            var source = Path.Combine(directory, WeightsFile);
            var unknown = tensors.Keys.Where(k => !k.StartsWith("tokenizer.", StringComparison.Ordinal) && !k.StartsWith("generator.", StringComparison.Ordinal)).ToList();
            if (unknown.Count > 0) throw new InvalidDataException($"{source}: checkpoint does not match the architecture: unexpected tensors: {string.Join(", ", unknown.Take(5))}.");
            StateDictFile.LoadInto(model.Tokenizer, Sub(tensors, "tokenizer."), source);
            StateDictFile.LoadInto(model.Generator, Sub(tensors, "generator."), source);
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
        return model;
    }

    private static Dictionary<string, Tensor> Sub(Dictionary<string, Tensor> all, string prefix) =>
        all.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value, StringComparer.Ordinal);

    /// <inheritdoc/>
    public void Dispose()
    {
        Tokenizer.Dispose();
        Generator.Dispose();
    }
}
