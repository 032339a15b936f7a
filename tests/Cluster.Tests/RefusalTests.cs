using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Cluster.Tests;

/// <summary>Workers that cannot serve a trainer say so, in one line, before any work is lost.</summary>
public sealed class RefusalTests
{
    private static Task<CliResult> TrainAsync(WorkerProcess worker, params string[] extra) =>
        CliRunner.RunAsync(["train", "--steps", "1", "--out", Path.Combine(Path.GetTempPath(), "nextflow-cluster-tests", Guid.NewGuid().ToString("N")[..10]),
            "--set", "Train:Evaluate=false", "--set", "Train:PromptsPerStep=1", "--set", "Train:GroupSize=2",
            "--set", $"Train:Cluster:Gateways:0={worker.Gateway}", "--set", "Train:Cluster:JoinTimeoutSeconds=30", .. extra], TimeSpan.FromMinutes(3));

    [Fact]
    public async Task AWorkerWithoutTheRunsPluginsOrWithAnotherSecretIsRefused()
    {
        // A worker that lacks the OCR plugin and expects a secret.
        using var worker = await WorkerProcess.StartAsync(Repo.WorkerDll, null, "--set", "Plugins:Disabled:0=NextFlowRL.Rewards.Ocr", "--secret", "right");

        var missing = await TrainAsync(worker, "--set", "Train:Cluster:Secret=right");
        Assert.True(missing.ExitCode == 1, missing.ToString());
        Assert.Contains("does not run this trainer's components: reward:ocr: worker has missing, trainer has NextFlowRL.Rewards.Ocr", missing.Stderr, StringComparison.Ordinal);

        var wrong = await TrainAsync(worker, "--set", "Train:Cluster:Secret=wrong", "--set", "Train:Rewards:0:Name=brightness");
        Assert.True(wrong.ExitCode == 1, wrong.ToString());
        Assert.Contains("shared secret does not match", wrong.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", wrong.Stderr, StringComparison.Ordinal); // a message, not a stack trace
    }

    [Fact]
    public async Task BadWorkerOptionsAreListedWithExitCode2()
    {
        var result = await ProcessRunner.RunAsync("dotnet", ["exec", Repo.WorkerDll, "--membership", "redis", "--silo-port", "0", "--set", "Worker:GatewayPort=x"]);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("error: Worker:GatewayPort: 'x' is not a whole number", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("error: Worker:Membership=redis needs Worker:Redis", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("error: Worker:SiloPort must be a TCP port", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ATrainerWithoutReachableWorkersStopsWithOneLine()
    {
        var result = await CliRunner.RunAsync(["train", "--steps", "1", "--out", Path.Combine(Path.GetTempPath(), "nextflow-cluster-tests", Guid.NewGuid().ToString("N")[..10]),
            "--set", $"Train:Cluster:Gateways:0=127.0.0.1:{WorkerProcess.FreePort()}", "--set", "Train:Cluster:JoinTimeoutSeconds=5", "--set", "Train:Evaluate=false"]);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("cannot reach the cluster 'nextflow'", result.Stderr, StringComparison.Ordinal);
    }
}
