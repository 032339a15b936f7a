using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using NextFlowRL.Hosting;
using NextFlowRL.Testing;
using NextFlowRL.Worker;
using Xunit;

namespace NextFlowRL.Cluster.Tests;

/// <summary>A silo's replica cache: versions per run, a bounded number of runs, refusals.</summary>
public sealed class WorkerReplicasTests
{
    [Fact]
    public void ASiloKeepsTheNewestVersionOfItsMostRecentRuns()
    {
        using var host = NextFlowRLHost.Build(new ConfigurationBuilder().Build(), pluginDirectories: [Path.Combine(Path.GetDirectoryName(Repo.CliDll)!, "plugins")]);
        using var replicas = new WorkerReplicas(host, "s3cret", NullLogger<WorkerReplicas>.Instance);
        var dir = Path.Combine(Path.GetTempPath(), "nextflow-replicas-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            using (var policy = host.GetPolicyProvider("var").Load(null)) policy.Save(dir);
            var files = Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToArray();
            WeightsPackage Package(string run, int version) =>
                new(run, version, "var", files.Select(f => Path.GetRelativePath(dir, f)).ToArray(), files.Select(File.ReadAllBytes).ToArray(), "s3cret");

            Assert.Null(replicas.Load(Package("run-a", 0)));
            Assert.NotNull(replicas.Replica("run-a", 0, "var"));
            Assert.Null(replicas.Replica("run-a", 1, "var")); // another version: the trainer must send it
            Assert.Null(replicas.Load(Package("run-a", 1)));
            Assert.Null(replicas.Replica("run-a", 0, "var")); // the older version is gone
            Assert.Null(replicas.Load(Package("run-b", 0)));
            Assert.Null(replicas.Load(Package("run-c", 0))); // a third run: run-a, whose weights came longest ago, is released
            Assert.Null(replicas.Replica("run-a", 1, "var"));
            Assert.NotNull(replicas.Replica("run-b", 0, "var"));
            Assert.NotNull(replicas.Replica("run-c", 0, "var"));
            Assert.Equal(WeightsPackage.NeedsBase, replicas.Load(Package("run-b", 1) with { Lora = new LoraMessage(4, 8, ["blocks.0.attn.mat_qkv"]) })); // adapters before their base
            Assert.Throws<InvalidDataException>(() => replicas.Load(Package("run-d", 0) with { Files = ["../outside"], Contents = [[1]] }));

            Assert.Null(replicas.CheckSecret("s3cret"));
            Assert.Contains("does not match", replicas.CheckSecret("wrong"));
            Assert.Contains("does not match", replicas.CheckSecret(null));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}
