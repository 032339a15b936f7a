using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Cli.Tests;

/// <summary><c>train --set Train:Lora:Rank=N</c>, then <c>policy merge</c> and <c>sample</c> from the merged checkpoint, on the bundled var policy.</summary>
public sealed class LoraCliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nextflow-lora-cli", Guid.NewGuid().ToString("N")[..10]);

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    [Fact]
    public async Task ALoraRunMergesIntoACheckpointThatSamples()
    {
        var run = Path.Combine(_dir, "run");
        var train = await CliRunner.RunAsync(["train", "--steps", "1", "--out", run, "--set", "Train:Lora:Rank=4", "--set", "Train:Evaluate=false",
            "--set", "Train:PromptsPerStep=1", "--set", "Train:GroupSize=2"], TimeSpan.FromMinutes(4));
        Assert.True(train.ExitCode == 0, train.ToString());
        var checkpoint = Path.Combine(run, "checkpoints", "step-000001");
        Assert.True(File.Exists(Path.Combine(checkpoint, "adapters.safetensors")), train.ToString());
        Assert.False(Directory.Exists(Path.Combine(checkpoint, "policy")));

        var unmerged = await CliRunner.RunAsync(["sample", "--checkpoint", run, "--prompt", "'A'", "--out", Path.Combine(_dir, "u")]);
        Assert.Equal(2, unmerged.ExitCode);
        Assert.Contains("is a LoRA run: its checkpoints hold adapters only", unmerged.Stderr);
        Assert.Contains("nextflow-rl policy merge --adapters", unmerged.Stderr);

        var merged = Path.Combine(_dir, "merged");
        var merge = await CliRunner.RunAsync(["policy", "merge", "--adapters", run, "--out", merged], TimeSpan.FromMinutes(2));
        Assert.True(merge.ExitCode == 0, merge.ToString());
        Assert.Contains("merged 32 adapters (rank 4, alpha 16)", merge.Stderr);

        var sample = await CliRunner.RunAsync(["sample", "--checkpoint", merged, "--prompt", "a sign that says 'OPEN'", "--seed", "1", "--out", Path.Combine(_dir, "s")], TimeSpan.FromMinutes(2));
        Assert.True(sample.ExitCode == 0, sample.ToString());
        Assert.True(File.Exists(Path.Combine(_dir, "s", "000.png")));

        var notLora = await CliRunner.RunAsync(["policy", "merge", "--adapters", _dir, "--out", Path.Combine(_dir, "x")]);
        Assert.Equal(2, notLora.ExitCode);
        Assert.Contains("is not a LoRA checkpoint (adapters.json missing)", notLora.Stderr);
    }
}
