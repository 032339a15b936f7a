using NextFlowRL.Plugins;
using NextFlowRL.Policies.Var.Model;
using NextFlowRL.Torch.Devices;

namespace NextFlowRL.Policies.Var;

/// <summary>Options of the VAR policy provider (section <c>Policies:&lt;name&gt;</c>).</summary>
public sealed class VarPolicyOptions : ITorchComponentOptions
{
    /// <summary>
    /// Checkpoint directory used when the caller passes none; null or empty = the shipped default model
    /// (<c>models/tiny-text</c> next to the plugin assembly).
    /// </summary>
    public string? Checkpoint { get; set; }

    /// <summary><c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>; unset = the root <c>Device</c> (default <c>cpu</c>).</summary>
    public string? Device { get; set; }

    /// <summary><c>Fp32</c> or <c>Bf16</c> matrix products for sampling and the update; unset = the root <c>Precision</c> (default fp32).</summary>
    public TorchPrecision? Precision { get; set; }
}

/// <summary>Loads <see cref="VarPolicy"/> instances from checkpoint directories.</summary>
public sealed class VarPolicyProvider : IPolicyProvider
{
    private readonly VarPolicyOptions _options;

    /// <summary>Creates the provider.</summary>
    public VarPolicyProvider(string name, VarPolicyOptions options)
    {
        Name = name;
        _options = options ?? new VarPolicyOptions();
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <summary>The shipped default model directory (<c>models/tiny-text</c> beside the plugin assembly).</summary>
    public static string DefaultModelDirectory =>
        Path.Combine(Path.GetDirectoryName(typeof(VarPolicyProvider).Assembly.Location) ?? AppContext.BaseDirectory, "models", "tiny-text");

    /// <inheritdoc/>
    public INextScalePolicy Load(string? checkpoint, Device? device = null)
    {
        var dir = !string.IsNullOrWhiteSpace(checkpoint) ? checkpoint
            : !string.IsNullOrWhiteSpace(_options.Checkpoint) ? _options.Checkpoint
            : DefaultModelDirectory;
        var dev = device ?? TorchDevice.Parse(_options.Device, $"Policies:{Name}:Device");
        var model = VarModel.Load(dir);
        try
        {
            model.Tokenizer.to(dev);
            model.Generator.to(dev);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return new VarPolicy(model, Path.GetFullPath(dir), dev) { Precision = _options.Precision ?? TorchPrecision.Fp32 };
    }
}

/// <summary>Registration of the VAR policy.</summary>
public static class VarPolicyExtensions
{
    /// <summary>Adds the VAR policy provider under <paramref name="name"/>, options from <c>Policies:&lt;name&gt;</c>.</summary>
    public static INextFlowRLBuilder AddVarPolicy(this INextFlowRLBuilder builder, string name = "var", Action<VarPolicyOptions>? configure = null)
    {
        builder.AddTorchComponentOptions(ComponentKind.Policy, name, configure);
        return builder.AddPolicy(name, "VAR next-scale generator with a character-level text encoder (default model tiny-text, 64x64)", (sp, n) =>
            new VarPolicyProvider(n, sp.GetRequiredService<IOptionsMonitor<VarPolicyOptions>>().Get(n)));
    }
}

/// <summary>
/// Plugin entry: registers the <c>var</c> policy. Its pretraining and data commands are the separate plugin
/// <c>NextFlowRL.Policies.Var.Tools</c>, so that a host that only samples and trains (a worker) carries none of them.
/// </summary>
public sealed class VarPlugin : INextFlowRLPlugin
{
    /// <inheritdoc/>
    public void Register(INextFlowRLBuilder builder)
    {
        builder.AddVarPolicy();
    }
}
