namespace NextFlowRL.Hosting;

/// <summary>Where plugins are looked for (configuration section <c>Plugins</c>).</summary>
public sealed class PluginHostOptions
{
    /// <summary>The configuration section name.</summary>
    public const string Section = "Plugins";

    /// <summary>
    /// Directories that each hold one sub-folder per plugin (<c>&lt;dir&gt;/&lt;Name&gt;/&lt;Name&gt;.dll</c>). Relative paths
    /// are relative to the current directory. The host's own <c>plugins</c> folder is always searched first.
    /// </summary>
    public List<string> Directories { get; set; } = [];

    /// <summary>Plugin folder names to skip.</summary>
    public List<string> Disabled { get; set; } = [];
}
