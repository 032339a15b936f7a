using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using McMaster.NETCore.Plugins;
using NextFlowRL.Imaging;
using NextFlowRL.Plugins;
using NextFlowRL.Policies;
using NextFlowRL.Rewards;

namespace NextFlowRL.Hosting;

/// <summary>
/// Discovers plugin folders, checks each plugin against the host's contracts and loads it in its own load context
/// (McMaster.NETCore.Plugins) that shares the contract assemblies, TorchSharp, SkiaSharp and the
/// Microsoft.Extensions abstractions with the host. A plugin that fails never stops the others.
/// </summary>
public sealed class PluginLoader
{
    /// <summary>Assemblies whose types must be the host's own inside every plugin.</summary>
    public static IReadOnlyList<Type> SharedTypes { get; } =
    [
        typeof(INextFlowRLPlugin),
        typeof(IRewardModel),
        typeof(INextScalePolicy),
        typeof(ImageFile),
        typeof(NextFlowRL.Torch.Checkpoints.StateDictFile),
        typeof(TorchSharp.torch),
        typeof(SkiaSharp.SKBitmap),
        typeof(IServiceCollection),
        typeof(ServiceProvider),
        typeof(IConfiguration),
        typeof(ConfigurationBinder),
        typeof(IOptions<>),
        typeof(OptionsConfigurationServiceCollectionExtensions),
        typeof(OptionsBuilderDataAnnotationsExtensions),
        typeof(ILogger),
    ];

    /// <summary>The contract assemblies whose version is checked (major must match; plugin minor must not be newer).</summary>
    public static IReadOnlyList<AssemblyName> ContractAssemblies { get; } =
    [
        typeof(INextFlowRLPlugin).Assembly.GetName(),
        typeof(INextScalePolicy).Assembly.GetName(),
        typeof(NextFlowRL.Imaging.ImageFile).Assembly.GetName(),
    ];

    private readonly ILogger _logger;

    /// <summary>Creates a loader.</summary>
    public PluginLoader(ILogger logger) => _logger = logger;

    /// <summary>Folders that look like plugin folders under the given directories, in a stable order.</summary>
    public static IReadOnlyList<string> Discover(IEnumerable<string> directories, IEnumerable<string>? disabled = null)
    {
        var skip = new HashSet<string>(disabled ?? [], StringComparer.OrdinalIgnoreCase);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var folders = new List<string>();
        foreach (var dir in directories)
        {
            if (!Directory.Exists(dir)) continue;
            foreach (var folder in Directory.GetDirectories(dir).OrderBy(d => d, StringComparer.Ordinal))
            {
                var full = Path.GetFullPath(folder);
                if (skip.Contains(Path.GetFileName(full)) || !seen.Add(full)) continue;
                folders.Add(full);
            }
        }
        return folders;
    }

    /// <summary>
    /// Loads one plugin folder and, when it is compatible, lets its entry type register into a staging area.
    /// Returns the report and, when loaded, the staged registrations.
    /// </summary>
    public (PluginReport Report, StagedRegistration? Staged) Load(string folder, IConfiguration configuration)
    {
        var name = Path.GetFileName(folder);
        string? version = null;
        PluginReport Report(PluginStatus status, string? reason) =>
            new(name, folder, status, version, reason, []);

        var dll = FindAssembly(folder);
        if (dll is null)
            return (Report(PluginStatus.Failed, $"folder without a plugin: no {name}.dll (or single *.deps.json) in {folder}"), null);

        // 1. Contract version, read from metadata without loading anything.
        string? incompatibility;
        try
        {
            (version, incompatibility) = CheckContracts(dll);
        }
        catch (BadImageFormatException e)
        {
            return (Report(PluginStatus.Failed, $"{Path.GetFileName(dll)} is not a .NET assembly: {e.Message}"), null);
        }
        if (incompatibility is not null)
            return (Report(PluginStatus.Incompatible, incompatibility), null);

        // 2. Load in its own context, sharing the host's contracts.
        Assembly assembly;
        McMaster.NETCore.Plugins.PluginLoader loader;
        try
        {
            loader = McMaster.NETCore.Plugins.PluginLoader.CreateFromAssemblyFile(
                dll, SharedTypes.ToArray(), config => config.PreferSharedTypes = true);
            assembly = loader.LoadDefaultAssembly();
        }
        catch (Exception e)
        {
            return (Report(PluginStatus.Failed, $"cannot load {Path.GetFileName(dll)}: {OneLine(e)}"), null);
        }

        // 3. Shared types must really be shared (a private copy of a contract assembly would split the types).
        foreach (var reference in assembly.GetReferencedAssemblies())
        {
            var shared = SharedTypes.Select(t => t.Assembly).FirstOrDefault(a => a.GetName().Name == reference.Name);
            if (shared is null) continue;
            Assembly resolved;
            try
            {
                resolved = loader.LoadAssembly(reference);
            }
            catch (Exception e)
            {
                return (Report(PluginStatus.Failed, $"cannot resolve {reference.Name}: {OneLine(e)}"), null);
            }
            if (!ReferenceEquals(resolved, shared))
                return (Report(PluginStatus.Incompatible, $"{reference.Name} is not shared with the host (the plugin's load context resolved its own copy from {resolved.Location})"), null);
        }

        // 4. Exactly one entry type.
        Type[] types;
        try
        {
            types = assembly.GetExportedTypes();
        }
        catch (Exception e)
        {
            return (Report(PluginStatus.Failed, $"missing dependency: {OneLine(e)}"), null);
        }
        var entries = types.Where(t => typeof(INextFlowRLPlugin).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false }).ToList();
        if (entries.Count != 1)
        {
            return (Report(PluginStatus.Failed, entries.Count == 0
                ? $"{assembly.GetName().Name} has no public {nameof(INextFlowRLPlugin)} entry type"
                : $"{assembly.GetName().Name} has {entries.Count} entry types ({string.Join(", ", entries.Select(e => e.Name))}); exactly one is allowed"), null);
        }

        // 5. Register into a staging area; nothing is kept when registration throws.
        var staged = new StagedRegistration(configuration);
        try
        {
            var entry = (INextFlowRLPlugin)Activator.CreateInstance(entries[0])!;
            entry.Register(staged);
        }
        catch (Exception e)
        {
            var inner = e is TargetInvocationException { InnerException: { } ie } ? ie : e;
            return (Report(PluginStatus.Failed, $"{entries[0].Name}.Register threw {inner.GetType().Name}: {OneLine(inner)}"), null);
        }
        _logger.LogDebug("Loaded plugin {Name} from {Path} ({Count} components)", name, folder, staged.Components.Count);
        return (new PluginReport(name, folder, PluginStatus.Loaded, version, null, staged.Components), staged);
    }

    private static string? FindAssembly(string folder)
    {
        var byName = Path.Combine(folder, Path.GetFileName(folder) + ".dll");
        if (File.Exists(byName)) return byName;
        var deps = Directory.GetFiles(folder, "*.deps.json");
        if (deps.Length == 1)
        {
            var candidate = Path.Combine(folder, Path.GetFileName(deps[0])[..^".deps.json".Length] + ".dll");
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    /// <summary>Reads the plugin's informational version and checks its contract references. Returns (version, reason or null).</summary>
    private static (string? Version, string? Incompatibility) CheckContracts(string dll)
    {
        using var stream = File.OpenRead(dll);
        using var pe = new PEReader(stream);
        if (!pe.HasMetadata) throw new BadImageFormatException("no metadata");
        var md = pe.GetMetadataReader();
        var def = md.GetAssemblyDefinition();
        string? version = def.Version.ToString(3);
        foreach (var handle in def.GetCustomAttributes())
        {
            var attr = md.GetCustomAttribute(handle);
            if (attr.Constructor.Kind != HandleKind.MemberReference) continue;
            var ctor = md.GetMemberReference((MemberReferenceHandle)attr.Constructor);
            if (ctor.Parent.Kind != HandleKind.TypeReference) continue;
            var type = md.GetTypeReference((TypeReferenceHandle)ctor.Parent);
            if (md.GetString(type.Name) != nameof(AssemblyInformationalVersionAttribute)) continue;
            var blob = md.GetBlobReader(attr.Value);
            blob.ReadUInt16(); // prolog
            version = blob.ReadSerializedString() ?? version;
            int plus = version?.IndexOf('+', StringComparison.Ordinal) ?? -1;
            if (plus > 0) version = version![..plus];
        }

        bool referencesContracts = false;
        foreach (var handle in md.AssemblyReferences)
        {
            var reference = md.GetAssemblyReference(handle);
            var refName = md.GetString(reference.Name);
            var host = ContractAssemblies.FirstOrDefault(c => c.Name == refName);
            if (host is null) continue;
            referencesContracts = true;
            var built = reference.Version;
            var have = host.Version!;
            if (built.Major != have.Major || built.Minor > have.Minor)
            {
                return (version, $"built against {refName} {built.ToString(2)}, this host provides {have.ToString(2)} " +
                    $"(plugins need the same major version and a minor version no newer than the host's)");
            }
        }
        if (!referencesContracts)
            return (version, $"{Path.GetFileName(dll)} does not reference {ContractAssemblies[0].Name}: not a NextFlowRL plugin");
        return (version, null);
    }

    internal static string OneLine(Exception e)
    {
        var message = e switch
        {
            ReflectionTypeLoadException rtle => string.Join("; ", rtle.LoaderExceptions.Where(x => x is not null).Select(x => x!.Message).Distinct()),
            _ => e.Message,
        };
        return message.ReplaceLineEndings(" ").Trim();
    }
}

/// <summary>Registrations a plugin made, held apart until the plugin registered without error.</summary>
public sealed class StagedRegistration : INextFlowRLBuilder
{
    private readonly List<ComponentDescriptor> _components = [];

    internal StagedRegistration(IConfiguration configuration) => Configuration = configuration;

    /// <inheritdoc/>
    public IServiceCollection Services { get; } = new ServiceCollection();

    /// <inheritdoc/>
    public IConfiguration Configuration { get; }

    /// <summary>Components declared so far.</summary>
    public IReadOnlyList<ComponentDescriptor> Components => _components;

    /// <inheritdoc/>
    public void AddComponent(ComponentDescriptor component)
    {
        ArgumentNullException.ThrowIfNull(component);
        if (_components.Any(c => c.Kind == component.Kind && c.Name == component.Name))
            throw new InvalidOperationException($"{component.Kind} '{component.Name}' is declared twice");
        _components.Add(component);
    }
}
