using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using NextFlowRL.Imaging;
using NextFlowRL.RewardServer;

namespace NextFlowRL.Rewards.Remote.Tests;

/// <summary>A reward server on 127.0.0.1 with a free port, stopped on dispose.</summary>
internal sealed class Loopback : IAsyncDisposable
{
    private readonly WebApplication _app;

    private Loopback(WebApplication app, string address)
    {
        _app = app;
        Address = address;
    }

    public string Address { get; }

    public static async Task<Loopback> StartAsync(IRewardCatalog catalog, RewardServerOptions? options = null)
    {
        var app = RewardServerApp.Create(catalog, options ?? new RewardServerOptions(), ["http://127.0.0.1:0"]);
        await app.StartAsync();
        return new Loopback(app, RewardServerApp.BoundAddresses(app).Single());
    }

    public static async Task<Loopback> StartAsync(params IRewardModel[] rewards) =>
        await StartAsync(new DictionaryRewardCatalog(rewards));

    /// <summary>Wraps an already configured app (fake servers).</summary>
    public static async Task<Loopback> StartAsync(WebApplication app)
    {
        await app.StartAsync();
        return new Loopback(app, RewardServerApp.BoundAddresses(app).Single());
    }

    /// <summary>A loopback port nothing listens on.</summary>
    public static string DeadAddress()
    {
        using var socket = new TcpListener(IPAddress.Loopback, 0);
        socket.Start();
        int port = ((IPEndPoint)socket.LocalEndpoint).Port;
        socket.Stop();
        return $"http://127.0.0.1:{port}";
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>A reward that exercises every field of the contract: components, regions (with and without target), failures, metadata.</summary>
internal sealed class EchoReward(string name = "echo") : IRewardModel
{
    public string Name { get; } = name;

    public Task<IReadOnlyList<RewardResult>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<RewardResult>>(samples.Select(s =>
        {
            if (s.Prompt == "fail") return RewardResult.Failed("cannot score 'fail'");
            var (r, g, b) = s.Image[0, 0];
            return new RewardResult(
                s.Image.Width + s.Image.Height / 1000.0 + r / 1e6,
                new Dictionary<string, double> { ["green"] = g, ["blue"] = b, ["words"] = s.Metadata.GetValueOrDefault("target_words")?.Split(' ').Length ?? 0 },
                [new RewardRegion(1, 2, 3, 4, 0.5, s.Prompt, "target"), new RewardRegion(5, 6, 7, 8, 0.25, "seen")]);
        }).ToList());
}

/// <summary>A reward that waits (honouring cancellation) and records how many calls overlapped.</summary>
internal sealed class SlowReward(string name, TimeSpan delay) : IRewardModel
{
    private static int _running;
    private static int _maxRunning;

    public string Name { get; } = name;

    public static int MaxRunning => Volatile.Read(ref _maxRunning);

    public static void Reset() => (_running, _maxRunning) = (0, 0);

    public async Task<IReadOnlyList<RewardResult>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellationToken = default)
    {
        int now = Interlocked.Increment(ref _running);
        int seen;
        while (now > (seen = Volatile.Read(ref _maxRunning)) && Interlocked.CompareExchange(ref _maxRunning, now, seen) != seen) { }
        try
        {
            await Task.Delay(delay, cancellationToken);
            return samples.Select(_ => RewardResult.Of(1)).ToList();
        }
        finally
        {
            Interlocked.Decrement(ref _running);
        }
    }
}

internal static class Images
{
    public static RewardSample Sample(int w, int h, string prompt, byte r = 10) =>
        new(RgbImage.Filled(w, h, r, 20, 30), prompt, new Dictionary<string, string> { ["target_words"] = "OPEN 24 HOURS" });

    /// <summary>Noise that does not compress: PNG size about width*height*3 bytes.</summary>
    public static RgbImage Noise(int w, int h, int seed)
    {
        var rng = new Random(seed);
        var px = new byte[w * h * 3];
        rng.NextBytes(px);
        return new RgbImage(w, h, px);
    }
}
