using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace NextFlowRL.Cluster;

/// <summary>
/// A <c>nextflow-worker</c> silo on this machine as a child process, its output watched line by line: what
/// <c>nextflow-rl bench cluster</c> and the cluster tests start. Killing it is a crash, not a graceful leave.
/// </summary>
public sealed class WorkerProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly List<(Func<string, bool> Match, TaskCompletionSource<string> Seen)> _waits = [];

    /// <summary>Failure detection in seconds rather than tens of seconds (for loopback clusters): a killed silo is declared dead quickly.</summary>
    public static readonly string[] FastMembership =
    [
        "--set", "Orleans:ClusterMembership:ProbeTimeout=00:00:02",
        "--set", "Orleans:ClusterMembership:NumMissedProbesLimit=2",
        "--set", "Orleans:ClusterMembership:NumVotesForDeathDeclaration=1",
    ];

    private WorkerProcess(string dll, int siloPort, int gatewayPort, IEnumerable<string> args)
    {
        (SiloPort, GatewayPort) = (siloPort, gatewayPort);
        if (!File.Exists(dll)) throw new FileNotFoundException($"the worker host {dll} does not exist (build hosts/NextFlowRL.Worker)", dll);
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Path.GetTempPath() };
        foreach (var a in (string[])["exec", dll, "--silo-port", $"{siloPort}", "--gateway-port", $"{gatewayPort}", .. args]) start.ArgumentList.Add(a);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>Port of silo-to-silo traffic.</summary>
    public int SiloPort { get; }

    /// <summary>Port trainers connect to.</summary>
    public int GatewayPort { get; }

    /// <summary>The gateway as <c>host:port</c>.</summary>
    public string Gateway => $"127.0.0.1:{GatewayPort}";

    /// <summary>Everything the worker printed so far.</summary>
    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    /// <summary>
    /// Starts the silo <paramref name="dll"/> (<c>nextflow-worker.dll</c>) on free ports, joining <paramref name="primary"/>
    /// unless it is the primary (localhost membership) or <paramref name="args"/> choose another membership, and waits until it serves.
    /// </summary>
    /// <exception cref="FileNotFoundException"><paramref name="dll"/> does not exist.</exception>
    /// <exception cref="TimeoutException">The silo did not start in 90 s (its output is in the message).</exception>
    public static async Task<WorkerProcess> StartAsync(string dll, WorkerProcess? primary, params string[] args)
    {
        var worker = new WorkerProcess(dll, FreePort(), FreePort(), [.. primary is null ? [] : new[] { "--primary", $"127.0.0.1:{primary.SiloPort}" }, .. args]);
        try
        {
            await worker.WaitForLineAsync(l => l.Contains("serving rollout workers", StringComparison.Ordinal), TimeSpan.FromSeconds(90), past: true);
            return worker;
        }
        catch
        {
            worker.Dispose();
            throw;
        }
    }

    /// <summary>Waits for the first line that matches, printed from now on (or, with <paramref name="past"/>, already printed).</summary>
    public Task<string> WaitForLineAsync(Func<string, bool> match, TimeSpan timeout, bool past = false)
    {
        var seen = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_output)
        {
            var done = past ? _output.ToString().Split('\n').FirstOrDefault(match) : null;
            if (done is not null) return Task.FromResult(done);
            _waits.Add((match, seen));
        }
        return seen.Task.WaitAsync(timeout).ContinueWith(t => t.IsCompletedSuccessfully ? t.Result
            : throw new TimeoutException($"worker on port {GatewayPort} did not print the awaited line in {timeout}; its output:\n{Output}"), TaskScheduler.Default);
    }

    private void OnLine(string? line)
    {
        if (line is null) return;
        lock (_output)
        {
            _output.Append(line).Append('\n');
            foreach (var w in _waits.Where(w => w.Match(line)).ToList())
            {
                _waits.Remove(w);
                w.Seen.TrySetResult(line);
            }
        }
    }

    /// <summary>Kills the silo at once (no graceful leave), as a crashed machine would go.</summary>
    public void Kill()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.WaitForExit(10_000);
    }

    /// <summary>
    /// The worker host shipped beside <paramref name="baseDirectory"/> (a host's output folder), or the one this repository
    /// builds next to it (<c>hosts/NextFlowRL.Worker/bin/&lt;configuration&gt;/net10.0/</c>); null when there is none.
    /// </summary>
    public static string? Find(string baseDirectory)
    {
        ArgumentNullException.ThrowIfNull(baseDirectory);
        var beside = Path.Combine(baseDirectory, DllName);
        if (File.Exists(beside)) return beside;
        // <repo>/hosts/<Host>/bin/<configuration>/<tfm>/
        var tfm = new DirectoryInfo(baseDirectory.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar));
        var configuration = tfm.Parent;
        var hosts = configuration?.Parent?.Parent?.Parent;
        if (configuration is null || hosts is null) return null;
        var built = Path.Combine(hosts.FullName, "NextFlowRL.Worker", "bin", configuration.Name, tfm.Name, DllName);
        return File.Exists(built) ? built : null;
    }

    /// <summary>The worker host's file name.</summary>
    public const string DllName = "nextflow-worker.dll";

    /// <summary>A TCP port free on loopback now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }
}

