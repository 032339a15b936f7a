using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Tests;

[Collection(TorchCollection.Name)] // shares process-wide environment variables
public class SnapshotsTests
{
    [Fact]
    public void StableJsonSortsKeysAndRoundsFloats()
    {
        var json = Snapshots.ToStableJson(new { b = 1.23456789012, a = new[] { 3, 2 }, c = new Dictionary<string, double> { ["z"] = 0.1 + 0.2, ["y"] = 2 } });
        Assert.Equal("{\n  \"a\": [\n    3,\n    2\n  ],\n  \"b\": 1.23457,\n  \"c\": {\n    \"y\": 2,\n    \"z\": 0.3\n  }\n}", json.Replace("\r", ""));
    }

    [Fact]
    public void MatchesTheCommittedSnapshot()
    {
        Snapshots.Match(new { reward = "brightness", score = 0.5, components = new { mean = 0.25 } });
    }

    [Fact]
    public void MismatchFails()
    {
        if (Snapshots.Accepting) return; // accepting would overwrite the committed value
        Snapshots.Match(new { value = 1 }, "fixed");
        Assert.ThrowsAny<Exception>(() => Snapshots.Match(new { value = 2 }, "fixed"));
    }

    [Fact]
    public void MissingSnapshotFailsInCiWithoutWritingIt()
    {
        if (Snapshots.Accepting) return;
        var before = Environment.GetEnvironmentVariable("CI");
        Environment.SetEnvironmentVariable("CI", "true");
        try
        {
            var ex = Assert.Throws<SnapshotMissingException>(() => Snapshots.Match(new { value = 1 }, "never-committed"));
            Assert.Contains("missing", ex.Message);
            Assert.False(File.Exists(Snapshots.SnapshotPath(Snapshooter.Xunit.Snapshot.FullName(Snapshooter.SnapshotNameExtension.Create("never-committed")))));
        }
        finally
        {
            Environment.SetEnvironmentVariable("CI", before);
        }
    }
}
