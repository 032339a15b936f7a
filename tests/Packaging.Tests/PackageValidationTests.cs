using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Packaging.Tests;

/// <summary>
/// The contract packages are compared with the last release (build/baselines/): a breaking change to a contract is a
/// pack error, not a surprise for plugin authors. Runs on a copy of the repository's build files and the
/// NextFlowRL.Abstractions sources with one public member removed.
/// </summary>
public sealed class PackageValidationTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("nf-apicompat-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_root, true); } catch (IOException) { }
    }

    private void CopyTree(string relative)
    {
        var source = Repo.PathOf(relative);
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(Repo.Root, file);
            if (rel.Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj")) continue;
            var target = Path.Combine(_root, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    [Fact]
    public async Task RemovingAPublicContractMemberFailsPack()
    {
        foreach (var file in new[] { "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props", "global.json", "nuget.config", "sdk/Directory.Build.props", "sdk/README.md" })
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(_root, file))!);
            File.Copy(Repo.PathOf(file), Path.Combine(_root, file));
        }
        CopyTree("build");
        CopyTree(Path.Combine("sdk", "Abstractions"));

        var source = Path.Combine(_root, "sdk", "Abstractions", "Rewards", "RewardResult.cs");
        var text = File.ReadAllText(source);
        const string member = "public static RewardResult Of(double score)";
        Assert.Contains(member, text);
        File.WriteAllLines(source, text.Split('\n').Where(line => !line.Contains(member, StringComparison.Ordinal)));

        var project = Path.Combine(_root, "sdk", "Abstractions", "NextFlowRL.Abstractions.csproj");
        var pack = await ProcessRunner.RunAsync("dotnet", ["pack", project, "-c", "Release", "-nologo", "-o", Path.Combine(_root, "out")], TimeSpan.FromMinutes(5), _root);
        Assert.True(pack.ExitCode != 0, "pack succeeded although a public member was removed\n" + pack);
        Assert.Contains("CP0002", pack.Stdout + pack.Stderr);
        Assert.Contains("RewardResult.Of", pack.Stdout + pack.Stderr);
    }
}
