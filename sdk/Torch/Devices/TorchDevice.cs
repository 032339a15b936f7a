using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using NextFlowRL.Plugins;

namespace NextFlowRL.Torch.Devices;

/// <summary>Numeric precision of a TorchSharp component's matrix products (see <see cref="Precision.Autocast"/>).</summary>
public enum TorchPrecision
{
    /// <summary>Everything in float32 (default).</summary>
    Fp32,

    /// <summary>Matrix products (linear layers, attention) in bfloat16; softmax, log-probs, losses, weights and optimizer state in float32.</summary>
    Bf16,
}

/// <summary>
/// Options of a TorchSharp component (a policy, a CLIP-family reward): where its tensors live and in which precision it
/// multiplies. Unset values take the configuration root's <c>Device</c> and <c>Precision</c> keys (one setting for every
/// component: <c>--set Device=cuda</c>), else <c>cpu</c> and <c>fp32</c>.
/// </summary>
public interface ITorchComponentOptions
{
    /// <summary><c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>; null = the root <c>Device</c>.</summary>
    string? Device { get; set; }

    /// <summary><c>fp32</c> or <c>bf16</c>; null = the root <c>Precision</c>.</summary>
    TorchPrecision? Precision { get; set; }
}

/// <summary>Parses and checks device names against what this process's TorchSharp backend can do.</summary>
public static class TorchDevice
{
    /// <summary>The configuration root key every component's <c>Device</c> defaults to.</summary>
    public const string DeviceKey = "Device";

    /// <summary>The configuration root key every component's <c>Precision</c> defaults to.</summary>
    public const string PrecisionKey = "Precision";

    /// <summary>Assembly metadata key the executables carry (<c>$(TorchBackend)</c> of the build).</summary>
    public const string BackendMetadataKey = "NextFlowRL.TorchBackend";

    /// <summary>
    /// The TorchSharp native backend the host was built with (<c>cpu</c>, <c>cuda-windows</c>, <c>cuda-linux</c>), read
    /// from the executables' assembly metadata; <c>unknown</c> when no loaded assembly carries it.
    /// </summary>
    public static string BuildBackend =>
        AppDomain.CurrentDomain.GetAssemblies()
            .SelectMany(a => a.GetCustomAttributes<AssemblyMetadataAttribute>())
            .FirstOrDefault(m => m.Key == BackendMetadataKey)?.Value ?? "unknown";

    /// <summary>
    /// Why <paramref name="text"/> cannot be used as a device here, or null when it can.
    /// </summary>
    /// <param name="text"><c>cpu</c>, <c>cuda</c> or <c>cuda:N</c> (case-insensitive).</param>
    /// <param name="key">The configuration key, for the message (e.g. <c>Policies:var:Device</c>).</param>
    /// <param name="cudaAvailable">Whether CUDA is usable (tests pass a value; default: ask TorchSharp).</param>
    /// <param name="cudaDevices">How many CUDA devices there are (default: ask TorchSharp).</param>
    public static string? Problem(string? text, string key, bool? cudaAvailable = null, int? cudaDevices = null)
    {
        var d = (text ?? "").Trim().ToLowerInvariant();
        if (d is "" or "cpu") return null;
        if (d != "cuda" && !d.StartsWith("cuda:", StringComparison.Ordinal))
            return $"{key} must be cpu, cuda or cuda:N; got '{text}'";
        int index = 0;
        if (d.Length > 4 && (!int.TryParse(d.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out index)))
            return $"{key} must be cpu, cuda or cuda:N with N a device number; got '{text}'";
        if (!(cudaAvailable ?? torch.cuda.is_available()))
        {
            var backend = BuildBackend;
            return backend.StartsWith("cuda", StringComparison.Ordinal)
                ? $"{key}={text}, but CUDA is not available to this process (built with TorchBackend={backend}: no NVIDIA GPU or driver is visible; check nvidia-smi and the CUDA version in docs/gpu-and-windows.md)"
                : $"{key}={text}, but this build has no CUDA: built with TorchBackend={backend}; rebuild with -p:TorchBackend=cuda-windows (Windows) or -p:TorchBackend=cuda-linux (Linux), see docs/gpu-and-windows.md";
        }
        int count = cudaDevices ?? torch.cuda.device_count();
        if (index >= count) return $"{key}={text}, but this machine has {count} CUDA device(s) (cuda:0 ... cuda:{count - 1})";
        return null;
    }

    /// <summary>Parses a device name (null or empty = <c>cpu</c>).</summary>
    /// <exception cref="InvalidDataException">An unknown name, or CUDA where this process has none; the message says what to do.</exception>
    public static Device Parse(string? text, string key)
    {
        if (Problem(text, key) is { } problem) throw new InvalidDataException(problem);
        var d = (text ?? "").Trim().ToLowerInvariant();
        return d is "" or "cpu" ? CPU : torch.device(d);
    }

    /// <summary>The effective device name of a component: its own setting, else the root <c>Device</c>, else <c>cpu</c>.</summary>
    public static string Effective(string? component, IConfiguration root) =>
        !string.IsNullOrWhiteSpace(component) ? component.Trim()
        : root?[DeviceKey] is { } d && !string.IsNullOrWhiteSpace(d) ? d.Trim() : "cpu";

    /// <summary>Parses a precision name (<c>fp32</c>, <c>bf16</c>; case-insensitive).</summary>
    public static bool TryParsePrecision(string? text, out TorchPrecision precision) =>
        Enum.TryParse(text?.Trim(), ignoreCase: true, out precision) && Enum.IsDefined(precision);
}

/// <summary>Registration of <see cref="ITorchComponentOptions"/> components.</summary>
public static class TorchComponentOptionsExtensions
{
    /// <summary>
    /// <see cref="NextFlowRLBuilderExtensions.AddComponentOptions{TOptions}"/> plus the root defaults of
    /// <see cref="ITorchComponentOptions"/> and a start-time check of the device (CUDA on a CPU build is reported with
    /// the other invalid settings, before any work).
    /// </summary>
    public static OptionsBuilder<TOptions> AddTorchComponentOptions<TOptions>(
        this INextFlowRLBuilder builder, ComponentKind kind, string name, Action<TOptions>? configure = null)
        where TOptions : class, ITorchComponentOptions
    {
        ArgumentNullException.ThrowIfNull(builder);
        var root = builder.Configuration;
        var section = NextFlowRLBuilderExtensions.SectionPath(kind, name);
        var options = builder.AddComponentOptions(kind, name, configure);
        options.PostConfigure(o =>
        {
            o.Device = TorchDevice.Effective(o.Device, root);
            if (o.Precision is null && TorchDevice.TryParsePrecision(root[TorchDevice.PrecisionKey], out var p)) o.Precision = p;
            o.Precision ??= TorchPrecision.Fp32;
        });
        builder.Services.AddSingleton<IValidateOptions<TOptions>>(new TorchOptionsValidator<TOptions>(name, section, root));
        return options;
    }

    private sealed class TorchOptionsValidator<TOptions>(string name, string section, IConfiguration root) : IValidateOptions<TOptions>
        where TOptions : class, ITorchComponentOptions
    {
        public ValidateOptionsResult Validate(string? optionsName, TOptions options)
        {
            if (optionsName != name) return ValidateOptionsResult.Skip;
            var problems = new List<string>();
            var key = !string.IsNullOrWhiteSpace(root[$"{section}:{TorchDevice.DeviceKey}"]) ? $"{section}:{TorchDevice.DeviceKey}" : TorchDevice.DeviceKey;
            if (TorchDevice.Problem(options.Device, key) is { } p) problems.Add(p);
            if (root[TorchDevice.PrecisionKey] is { Length: > 0 } rootPrecision && !TorchDevice.TryParsePrecision(rootPrecision, out _))
                problems.Add($"{TorchDevice.PrecisionKey} must be fp32 or bf16; got '{rootPrecision}'");
            return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
        }
    }
}
