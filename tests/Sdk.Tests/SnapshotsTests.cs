using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Tests;

/// <summary>The TestKit's Verify-style snapshot workflow, on files in a temp folder so every case checks something.</summary>
public sealed class SnapshotsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nf-snap-").FullName;
    private string Verified => Path.Combine(_dir, "Case.Test.verified.json");
    private string Received => Snapshots.ReceivedPath(Verified);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void StableJsonSortsKeysAndRoundsFloats()
    {
        var json = Snapshots.ToStableJson(new { b = 1.23456789012, a = new[] { 3, 2 }, c = new Dictionary<string, double> { ["z"] = 0.1 + 0.2, ["y"] = 2 } });
        Assert.Equal("{\n  \"a\": [\n    3,\n    2\n  ],\n  \"b\": 1.23457,\n  \"c\": {\n    \"y\": 2,\n    \"z\": 0.3\n  }\n}", json);
    }

    [Fact]
    public void MatchesTheCommittedSnapshotBesideTheTest()
    {
        Snapshots.Match(new { reward = "brightness", score = 0.5, components = new { mean = 0.25 } });
        Assert.True(File.Exists(Snapshots.VerifiedPath(Repo.PathOf("tests", "Sdk.Tests", "SnapshotsTests.cs"), nameof(MatchesTheCommittedSnapshotBesideTheTest))));
    }

    [Fact]
    public void FilesAreNamedLikeVerifys()
    {
        var source = Path.Combine(_dir, "RewardTests.cs");
        Assert.Equal(Path.Combine(_dir, "RewardTests.Scores_clean.verified.json"), Snapshots.VerifiedPath(source, "Scores", "clean"));
        Assert.Equal(Path.Combine(_dir, "RewardTests.Scores.received.json"), Snapshots.ReceivedPath(Snapshots.VerifiedPath(source, "Scores")));
    }

    [Fact]
    public void MappedSourcePathsAreRefusedWithTheReason()
    {
        var e = Assert.Throws<InvalidOperationException>(() => Snapshots.VerifiedPath("/_/tests/RewardTests.cs", "Scores"));
        Assert.Contains("ContinuousIntegrationBuild", e.Message);
    }

    [Fact]
    public void MismatchFailsAndWritesTheReceivedFile()
    {
        File.WriteAllText(Verified, Snapshots.ToStableJson(new { value = 1 }) + "\n");
        Snapshots.MatchFile(Verified, new { value = 1 }, accept: false, ci: false);
        var e = Assert.Throws<SnapshotMismatchException>(() => Snapshots.MatchFile(Verified, new { value = 2 }, accept: false, ci: false));
        Assert.Contains("\"value\": 1", e.Message);
        Assert.Contains("\"value\": 2", e.Message);
        Assert.Contains("NEXTFLOW_ACCEPT_SNAPSHOTS=1", e.Message);
        Assert.Contains("\"value\": 2", File.ReadAllText(Received));
        Assert.Contains("\"value\": 1", File.ReadAllText(Verified));
    }

    [Fact]
    public void AMatchRemovesAStaleReceivedFile()
    {
        File.WriteAllText(Verified, Snapshots.ToStableJson(new { value = 1 }) + "\n");
        File.WriteAllText(Received, "old");
        Snapshots.MatchFile(Verified, new { value = 1 }, accept: false, ci: false);
        Assert.False(File.Exists(Received));
    }

    [Fact]
    public void MissingSnapshotFailsAndIsNotCreated()
    {
        var local = Assert.Throws<SnapshotMismatchException>(() => Snapshots.MatchFile(Verified, new { value = 1 }, accept: false, ci: false));
        Assert.Contains("does not exist yet", local.Message);
        Assert.False(File.Exists(Verified));
        Assert.True(File.Exists(Received));
        var ci = Assert.Throws<SnapshotMismatchException>(() => Snapshots.MatchFile(Verified, new { value = 1 }, accept: false, ci: true));
        Assert.Contains("CI does not create snapshots", ci.Message);
        Assert.False(File.Exists(Verified));
    }

    [Fact]
    public void AcceptingWritesTheVerifiedFileOutsideCiOnly()
    {
        Assert.Throws<SnapshotMismatchException>(() => Snapshots.MatchFile(Verified, new { value = 3 }, accept: true, ci: true));
        Assert.False(File.Exists(Verified));
        Snapshots.MatchFile(Verified, new { value = 3 }, accept: true, ci: false);
        Snapshots.MatchFile(Verified, new { value = 3 }, accept: false, ci: false);
        Assert.False(File.Exists(Received));
    }

    [Fact]
    public void LineEndingsOfACheckedOutSnapshotDoNotMatter()
    {
        File.WriteAllText(Verified, (Snapshots.ToStableJson(new { a = 1, b = new[] { 1, 2 } }) + "\n").Replace("\n", "\r\n"));
        Snapshots.MatchFile(Verified, new { a = 1, b = new[] { 1, 2 } }, accept: false, ci: false);
    }
}
