using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Packaging.Tests;

/// <summary>
/// The repository's packages packed once per test run into a temp feed, under a version no earlier run used (so the
/// NuGet cache can never serve a stale copy), a nuget.config that finds them first, and the templates installed in
/// a private hive. Cleans the feed and the
/// cached copies up at the end.
/// </summary>
public sealed class PackedFeed : IAsyncLifetime
{
    /// <summary>The temp folder of this run.</summary>
    public string Root { get; } = Directory.CreateTempSubdirectory("nf-pack-").FullName;

    /// <summary>The folder the packages are in.</summary>
    public string Feed => Path.Combine(Root, "feed");

    /// <summary>The packages' version: the repository's version with a unique prerelease suffix.</summary>
    public string Version { get; } = UniqueVersion();

    private static string UniqueVersion()
    {
        var v = typeof(Snapshots).Assembly.GetName().Version!;
        return $"{v.Major}.{v.Minor}.{v.Build}-e2e.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";
    }

    /// <summary>The private template hive the packed templates are installed into (the user's own is untouched).</summary>
    public string Hive => Path.Combine(Root, "hive");

    /// <summary>A nuget.config with the feed first, then the usual source.</summary>
    public string NuGetConfig => Path.Combine(Root, "nuget.config");

    public async Task InitializeAsync()
    {
        var pack = await ProcessRunner.RunAsync("dotnet",
            ["pack", Repo.PathOf("NextFlowRL.sln"), "-c", Repo.Configuration, "--no-build", "-nologo", "-v:quiet", "-clp:ErrorsOnly",
             $"-p:Version={Version}", $"-p:PackageOutputPath={Feed}/"],
            TimeSpan.FromMinutes(5), Repo.Root);
        Assert.True(pack.ExitCode == 0, "dotnet pack failed\n" + pack);
        File.WriteAllText(NuGetConfig, $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="packed" value="{Feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
              </packageSources>
            </configuration>
            """);
        var install = await ProcessRunner.RunAsync("dotnet", ["new", "install", Package("NextFlowRL.Templates"), "--debug:custom-hive", Hive], TimeSpan.FromMinutes(2), Root);
        Assert.True(install.ExitCode == 0, "dotnet new install failed\n" + install);
    }

    /// <summary>The packed file of <paramref name="id"/>.</summary>
    public string Package(string id) => Path.Combine(Feed, $"{id}.{Version}.nupkg");

    public Task DisposeAsync()
    {
        try { Directory.Delete(Root, true); } catch (IOException) { }
        var cache = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        if (Directory.Exists(cache))
            foreach (var id in Directory.GetDirectories(cache, "nextflowrl.*"))
            {
                var copy = Path.Combine(id, Version.ToLowerInvariant());
                try { if (Directory.Exists(copy)) Directory.Delete(copy, true); } catch (IOException) { }
            }
        return Task.CompletedTask;
    }
}

[CollectionDefinition(Name)]
public sealed class PackedFeedCollection : ICollectionFixture<PackedFeed>
{
    public const string Name = "packed feed";
}
