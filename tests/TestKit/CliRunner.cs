using System.Diagnostics;

namespace NextFlowRL.Testing;

/// <summary>The result of running <c>nextflow-rl</c> as a real process.</summary>
public sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    /// <inheritdoc/>
    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
}

/// <summary>Runs the built <c>nextflow-rl</c> (see <see cref="Repo.CliDll"/>) in a child process.</summary>
public static class CliRunner
{
    /// <summary>Runs the CLI with <paramref name="args"/>; kills it after <paramref name="timeout"/>.</summary>
    public static async Task<CliResult> RunAsync(IEnumerable<string> args, TimeSpan? timeout = null, string? workingDirectory = null, IDictionary<string, string>? environment = null)
    {
        if (!File.Exists(Repo.CliDll))
            throw new FileNotFoundException($"Build hosts/NextFlowRL.Cli first: {Repo.CliDll} not found.");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Path.GetTempPath(),
        };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(Repo.CliDll);
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["NO_COLOR"] = "1";
        start.Environment["CI"] = "true";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) start.Environment[k] = v;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"nextflow-rl {string.Join(" ", args)} did not finish in {timeout}");
        }
        return new CliResult(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Runs the CLI with arguments given inline.</summary>
    public static Task<CliResult> RunAsync(params string[] args) => RunAsync(args, null);
}
