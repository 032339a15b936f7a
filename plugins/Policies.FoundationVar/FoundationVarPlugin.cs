using System.Globalization;
using NextFlowRL.Plugins;
using NextFlowRL.Policies.FoundationVar.Model;
using NextFlowRL.Torch.Checkpoints;
using NextFlowRL.Torch.Devices;

namespace NextFlowRL.Policies.FoundationVar;

/// <summary>Options of the foundation-var policy (section <c>Policies:foundation-var</c>).</summary>
public sealed class FoundationVarOptions : ITorchComponentOptions
{
    /// <summary>The transformer state dict (<c>var_d16.pth</c> ... <c>var_d36.pth</c>, or a safetensors file), or an RL checkpoint directory.</summary>
    public string? Checkpoint { get; set; }

    /// <summary>The VQ-VAE state dict (<c>vae_ch160v4096z32.pth</c>, or a safetensors file).</summary>
    public string? Vae { get; set; }

    /// <summary>Side of each scale's token grid, comma-separated (default: from the checkpoint's <c>lvl_1L</c>, else 1,2,3,4,5,6,8,10,13,16).</summary>
    public string? PatchNums { get; set; }

    /// <summary>Class names file, one class per line in index order (default: the shipped ImageNet-1k list).</summary>
    public string? ClassNames { get; set; }

    /// <summary>Intra-op threads for TorchSharp (0 = leave the process setting).</summary>
    public int Threads { get; set; }

    /// <summary><c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>; unset = the root <c>Device</c> (default <c>cpu</c>).</summary>
    public string? Device { get; set; }

    /// <summary><c>Fp32</c> or <c>Bf16</c> matrix products for sampling and the update; unset = the root <c>Precision</c> (default fp32).</summary>
    public TorchPrecision? Precision { get; set; }
}

/// <summary>Loads <see cref="FoundationVarPolicy"/> instances from the official files or from RL checkpoint directories.</summary>
public sealed class FoundationVarProvider : IPolicyProvider
{
    private readonly FoundationVarOptions _options;

    /// <summary>Creates the provider.</summary>
    public FoundationVarProvider(string name, FoundationVarOptions options)
    {
        Name = name;
        _options = options ?? new FoundationVarOptions();
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public INextScalePolicy Load(string? checkpoint, Device? device = null)
    {
        var section = $"Policies:{Name}";
        var path = !string.IsNullOrWhiteSpace(checkpoint) ? checkpoint : _options.Checkpoint;
        if (string.IsNullOrWhiteSpace(path))
            throw new InvalidDataException($"{Name} needs {section}:Checkpoint (the transformer .pth, e.g. var_d16.pth) and {section}:Vae (vae_ch160v4096z32.pth); see the plugin README for where the official files are published");
        var dev = device ?? TorchDevice.Parse(_options.Device, $"{section}:Device");
        if (_options.Threads > 0) torch.set_num_threads(_options.Threads);
        var classes = ClassNames.Load(string.IsNullOrWhiteSpace(_options.ClassNames) ? ClassNames.DefaultPath : _options.ClassNames);
        var policy = Directory.Exists(path) ? LoadDirectory(path, classes, dev) : LoadFiles(path, classes, dev, section);
        policy.Precision = _options.Precision ?? TorchPrecision.Fp32;
        return policy;
    }

    private FoundationVarPolicy LoadFiles(string path, ClassNames classes, Device dev, string section)
    {
        if (string.IsNullOrWhiteSpace(_options.Vae))
            throw new InvalidDataException($"{section}:Vae is not set: the transformer {path} decodes through the VQ-VAE state dict (vae_ch160v4096z32.pth)");
        var patchNums = ParsePatchNums(_options.PatchNums, section);
        return Build(_options.Vae, path, patchNums, classes, dev, $"{Path.GetFullPath(path)} + {Path.GetFullPath(_options.Vae)}");
    }

    /// <summary>Reads both files, builds the policy and frees the read tensors (no dispose scope: the modules must outlive this call).</summary>
    private static FoundationVarPolicy Build(string vaePath, string varPath, IReadOnlyList<int>? patchNums, ClassNames classes, Device device, string source)
    {
        var vae = StateDictFile.Read(vaePath);
        try
        {
            var var = StateDictFile.Read(varPath);
            try
            {
                return FoundationVarPolicy.Create(vae, vaePath, var, varPath, patchNums, classes, device, source);
            }
            finally
            {
                foreach (var t in var.Values) t.Dispose();
            }
        }
        finally
        {
            foreach (var t in vae.Values) t.Dispose();
        }
    }

    private static FoundationVarPolicy LoadDirectory(string dir, ClassNames classes, Device device)
    {
        var configPath = Path.Combine(dir, FoundationVarPolicy.ConfigFile);
        if (!File.Exists(configPath))
            throw new InvalidDataException($"{dir}: not a foundation-var checkpoint directory ({FoundationVarPolicy.ConfigFile} missing); pass the transformer .pth file instead");
        var config = FoundationVarConfig.FromJson(File.ReadAllText(configPath), configPath);
        return Build(Path.Combine(dir, FoundationVarPolicy.VaeFile), Path.Combine(dir, FoundationVarPolicy.TransformerFile),
            config.Transformer.PatchNums, classes, device, Path.GetFullPath(dir));
    }

    /// <summary>Parses a comma-separated schedule (null or empty = infer).</summary>
    /// <exception cref="InvalidDataException">Not a list of increasing positive integers.</exception>
    public static IReadOnlyList<int>? ParsePatchNums(string? text, string section)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var values = new List<int>();
        foreach (var p in parts)
        {
            if (!int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) || v <= 0 || (values.Count > 0 && v < values[^1]))
                throw new InvalidDataException($"{section}:PatchNums must be increasing positive integers like 1,2,3,4,5,6,8,10,13,16; got '{text}'");
            values.Add(v);
        }
        return values;
    }
}

/// <summary>Registration of the foundation-var policy.</summary>
public static class FoundationVarExtensions
{
    /// <summary>Adds the provider under <paramref name="name"/>, options from <c>Policies:&lt;name&gt;</c>.</summary>
    public static INextFlowRLBuilder AddFoundationVarPolicy(this INextFlowRLBuilder builder, string name = "foundation-var", Action<FoundationVarOptions>? configure = null)
    {
        builder.AddTorchComponentOptions(ComponentKind.Policy, name, configure);
        return builder.AddPolicy(name, "FoundationVision VAR (class-conditional ImageNet, official var_d16-d36 + vae_ch160v4096z32 .pth files)", (sp, n) =>
            new FoundationVarProvider(n, sp.GetRequiredService<IOptionsMonitor<FoundationVarOptions>>().Get(n)));
    }
}

/// <summary>Plugin entry: registers the <c>foundation-var</c> policy.</summary>
public sealed class FoundationVarPlugin : INextFlowRLPlugin
{
    /// <inheritdoc/>
    public void Register(INextFlowRLBuilder builder) => builder.AddFoundationVarPolicy();
}
