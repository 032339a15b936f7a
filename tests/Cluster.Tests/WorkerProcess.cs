using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using NextFlowRL.Testing;

namespace NextFlowRL.Cluster.Tests;

/// <summary>A <c>nextflow-worker</c> silo as a child process, its output watched line by line.</summary>
public sealed class WorkerProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly List<(Func<string, bool> Match, TaskCompletionSource<string> Seen)> _waits = [];

    /// <summary>Failure detection in seconds rather than tens of seconds: a killed silo is declared dead quickly.</summary>
    public static readonly string[] FastMembership =
    [
        "--set", "Orleans:ClusterMembership:ProbeTimeout=00:00:02",
        "--set", "Orleans:ClusterMembership:NumMissedProbesLimit=2",
        "--set", "Orleans:ClusterMembership:NumVotesForDeathDeclaration=1",
    ];

    private WorkerProcess(int siloPort, int gatewayPort, IEnumerable<string> args)
    {
        (SiloPort, GatewayPort) = (siloPort, gatewayPort);
        if (!File.Exists(Repo.WorkerDll)) throw new FileNotFoundException($"Build hosts/NextFlowRL.Worker first: {Repo.WorkerDll} not found.");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Path.GetTempPath() };
        foreach (var a in (string[])["exec", Repo.WorkerDll, "--silo-port", $"{siloPort}", "--gateway-port", $"{gatewayPort}", .. args]) start.ArgumentList.Add(a);
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

    /// <summary>Starts a silo on free ports (joining <paramref name="primary"/> unless it is the primary) and waits until it serves.</summary>
    public static async Task<WorkerProcess> StartAsync(WorkerProcess? primary, params string[] args)
    {
        var worker = new WorkerProcess(FreePort(), FreePort(), [.. primary is null ? [] : new[] { "--primary", $"127.0.0.1:{primary.SiloPort}" }, .. args]);
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

/// <summary>A Redis server (Debian's <c>redis-server</c>, installed by <c>build.sh test</c>) on a free loopback port, without persistence.</summary>
public sealed class RedisServer : IDisposable
{
    private readonly Process _process;

    private RedisServer(int port)
    {
        Port = port;
        var start = new ProcessStartInfo(Program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in (string[])["--port", $"{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]) start.ArgumentList.Add(a);
        _process = Process.Start(start)!;
    }

    private const string Program = "redis-server";

    /// <summary>Its port.</summary>
    public int Port { get; }

    /// <summary>The StackExchange.Redis connection string.</summary>
    public string Connection => $"127.0.0.1:{Port}";

    /// <summary>Starts the server and waits until it accepts connections.</summary>
    public static async Task<RedisServer> StartAsync()
    {
        if (!File.Exists("/usr/bin/redis-server") && !File.Exists("/usr/local/bin/redis-server"))
            throw new FileNotFoundException("redis-server is not installed: ./build.sh test installs Debian's redis-server (or: apt-get install redis-server)");
        var server = new RedisServer(WorkerProcess.FreePort());
        for (var clock = Stopwatch.StartNew(); clock.Elapsed < TimeSpan.FromSeconds(30); await Task.Delay(100))
        {
            if (server._process.HasExited) break;
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, server.Port);
                return server;
            }
            catch (SocketException)
            {
                // not listening yet
            }
        }
        var output = server._process.HasExited ? await server._process.StandardOutput.ReadToEndAsync() : "";
        server.Dispose();
        throw new TimeoutException($"redis-server did not accept connections on port {server.Port}: {output}");
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (!_process.HasExited) _process.Kill();
        _process.WaitForExit(10_000);
        _process.Dispose();
    }
}
