using System.Reflection;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace NextFlowRL.Testing;

/// <summary>
/// Compiles C# source into an assembly file with Roslyn, against the assemblies of the running test (the SDK) or
/// against explicitly given files: how tests build plugins outside the solution, including deliberately broken ones.
/// </summary>
public static class PluginCompiler
{
    /// <summary>Assemblies of the running process (the SDK, the framework, test dependencies).</summary>
    public static IReadOnlyList<string> ProcessAssemblies { get; } =
        ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);

    /// <summary>
    /// Compiles <paramref name="sources"/> into <paramref name="outputPath"/>. References are the process assemblies,
    /// minus any whose simple name appears in <paramref name="replace"/>, plus <paramref name="replace"/> themselves.
    /// </summary>
    /// <exception cref="InvalidOperationException">Compilation errors (listed).</exception>
    public static string Compile(string assemblyName, string outputPath, IEnumerable<string> sources, IEnumerable<string>? replace = null, Version? version = null)
    {
        var extra = (replace ?? []).ToList();
        var replaced = new HashSet<string>(extra.Select(Path.GetFileNameWithoutExtension)!, StringComparer.OrdinalIgnoreCase);
        var references = ProcessAssemblies
            .Where(p => !replaced.Contains(Path.GetFileNameWithoutExtension(p)))
            .Concat(extra)
            .Select(p => MetadataReference.CreateFromFile(p));
        var versionAttribute = $"[assembly: System.Reflection.AssemblyVersion(\"{version ?? new Version(1, 0, 0, 0)}\")]";
        var trees = sources.Append(versionAttribute).Append(ImplicitUsings)
            .Select(s => CSharpSyntaxTree.ParseText(s, new CSharpParseOptions(LanguageVersion.Latest)));
        var compilation = CSharpCompilation.Create(assemblyName, trees, references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outputPath))!);
        using var stream = File.Create(outputPath);
        var result = compilation.Emit(stream);
        if (!result.Success)
        {
            var errors = result.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => d.ToString());
            throw new InvalidOperationException($"Compiling {assemblyName} failed:\n" + string.Join("\n", errors));
        }
        return outputPath;
    }

    /// <summary>The global usings the .NET SDK adds with ImplicitUsings=enable.</summary>
    private const string ImplicitUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        """;

    /// <summary>The file of a loaded assembly, e.g. <c>typeof(IRewardModel).Assembly</c>.</summary>
    public static string PathOf(Assembly assembly) => assembly.Location;
}
