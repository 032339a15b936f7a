using System.Diagnostics;

namespace NextFlowRL.Testing;

/// <summary>The result of running a process.</summary>
public sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    /// <inheritdoc/>
    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
}

/// <summary>Runs a program as a child process, capturing its output; kills the whole tree on time-out.</summary>
public static class ProcessRunner
{
    /// <summary>Runs <paramref name="program"/> with <paramref name="args"/>.</summary>
    public static async Task<CliResult> RunAsync(string program, IEnumerable<string> args, TimeSpan? timeout = null, string? workingDirectory = null, IDictionary<string, string>? environment = null)
    {
        var argList = args.ToList();
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Path.GetTempPath(),
        };
        foreach (var a in argList) start.ArgumentList.Add(a);
        start.Environment["NO_COLOR"] = "1";
        start.Environment["CI"] = "true";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) start.Environment[k] = v;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        var limit = timeout ?? TimeSpan.FromMinutes(2);
        using var cts = new CancellationTokenSource(limit);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(" ", argList)} did not finish in {limit}");
        }
        return new CliResult(process.ExitCode, await stdout, await stderr);
    }
}

/// <summary>Runs the built <c>nextflow-rl</c> (see <see cref="Repo.CliDll"/>) in a child process.</summary>
public static class CliRunner
{
    /// <summary>Runs the CLI with <paramref name="args"/>; kills it after <paramref name="timeout"/>.</summary>
    public static Task<CliResult> RunAsync(IEnumerable<string> args, TimeSpan? timeout = null, string? workingDirectory = null, IDictionary<string, string>? environment = null)
    {
        if (!File.Exists(Repo.CliDll))
            throw new FileNotFoundException($"Build hosts/NextFlowRL.Cli first: {Repo.CliDll} not found.");
        return ProcessRunner.RunAsync("dotnet", ["exec", Repo.CliDll, .. args], timeout, workingDirectory, environment);
    }

    /// <summary>Runs the CLI with arguments given inline.</summary>
    public static Task<CliResult> RunAsync(params string[] args) => RunAsync(args, null);
}
