using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace NextFlowRL.Cluster.Tests;

/// <summary>A Redis server (Debian's <c>redis-server</c>, installed by <c>build.sh test</c>) on a free loopback port, without persistence.</summary>
public sealed class RedisServer : IDisposable
{
    private readonly Process _process;

    private RedisServer(string program, int port)
    {
        Port = port;
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in (string[])["--port", $"{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]) start.ArgumentList.Add(a);
        _process = Process.Start(start)!;
    }

    /// <summary>NEXTFLOW_REDIS_SERVER, or redis-server (Windows: also Memurai) on PATH.</summary>
    private static string? Locate()
    {
        if (Environment.GetEnvironmentVariable("NEXTFLOW_REDIS_SERVER") is { Length: > 0 } given) return File.Exists(given) ? given : null;
        string[] names = OperatingSystem.IsWindows() ? ["redis-server.exe", "memurai.exe"] : ["redis-server"];
        return (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .SelectMany(dir => names.Select(n => Path.Combine(dir, n))).FirstOrDefault(File.Exists);
    }

    /// <summary>Its port.</summary>
    public int Port { get; }

    /// <summary>The StackExchange.Redis connection string.</summary>
    public string Connection => $"127.0.0.1:{Port}";

    /// <summary>Starts the server and waits until it accepts connections.</summary>
    public static async Task<RedisServer> StartAsync()
    {
        var program = Locate() ?? throw new FileNotFoundException(
            "redis-server not found (on PATH or NEXTFLOW_REDIS_SERVER) for the Redis membership test: ./build.sh test and ./build.ps1 test install Debian's redis-server; macOS: brew install redis; Windows: Memurai");
        var server = new RedisServer(program, WorkerProcess.FreePort());
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
