using System.Reflection;

namespace NextFlowRL.Testing;

/// <summary>Paths of the repository the tests were built from.</summary>
public static class Repo
{
    private static string Metadata(string key) =>
        (Assembly.GetEntryAssembly() is { } entry ? Find(entry, key) : null)
        ?? AppDomain.CurrentDomain.GetAssemblies().Select(a => Find(a, key)).FirstOrDefault(v => v is not null)
        ?? throw new InvalidOperationException($"Assembly metadata {key} not found (set by tests/Directory.Build.props).");

    private static string? Find(Assembly assembly, string key) =>
        assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == key)?.Value;

    /// <summary>The repository root (with a trailing separator).</summary>
    public static string Root => Metadata("NextFlowRL.RepoRoot");

    /// <summary>The build configuration of the tests (Debug or Release).</summary>
    public static string Configuration => Metadata("NextFlowRL.Configuration");

    /// <summary>A path inside the repository.</summary>
    public static string PathOf(params string[] parts) => Path.Combine([Root, .. parts]);

    /// <summary>The folder a plugin project builds into.</summary>
    public static string PluginFolder(string assemblyName) => PathOf("artifacts", "plugins", assemblyName);

    /// <summary>The built <c>nextflow-rl.dll</c>.</summary>
    public static string CliDll => PathOf("hosts", "NextFlowRL.Cli", "bin", Configuration, "net10.0", "nextflow-rl.dll");

    /// <summary>The built <c>nextflow-worker.dll</c>.</summary>
    public static string WorkerDll => PathOf("hosts", "NextFlowRL.Worker", "bin", Configuration, "net10.0", "nextflow-worker.dll");
}
