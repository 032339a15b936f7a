using NextFlowRL.Plugins;

namespace NextFlowRL.Hosting;

/// <summary>The outcome of loading one plugin folder.</summary>
public enum PluginStatus
{
    /// <summary>Loaded and registered.</summary>
    Loaded,

    /// <summary>Built against a contract version or shared assembly this host cannot use.</summary>
    Incompatible,

    /// <summary>Could not be loaded or registered (missing files or dependencies, exceptions).</summary>
    Failed,
}

/// <summary>What happened to one plugin.</summary>
/// <param name="Name">The plugin (folder) name, e.g. <c>NextFlowRL.Rewards.Ocr</c>.</param>
/// <param name="Path">The plugin folder.</param>
/// <param name="Status">Loaded, incompatible or failed.</param>
/// <param name="Version">The plugin assembly's informational version, when it could be read.</param>
/// <param name="Reason">Why it is not loaded; null when loaded.</param>
/// <param name="Components">Components it registered (empty unless loaded).</param>
public sealed record PluginReport(
    string Name,
    string Path,
    PluginStatus Status,
    string? Version,
    string? Reason,
    IReadOnlyList<ComponentDescriptor> Components);
