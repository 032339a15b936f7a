using System.Buffers.Binary;
using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using NextFlowRL.Imaging;
using NextFlowRL.Hosting;
using NextFlowRL.Rewards.Clip;
using NextFlowRL.Rewards.Clip.Tests;
using NextFlowRL.Rewards.Remote.Protocol;
using NextFlowRL.RewardServer;
using NextFlowRL.Testing;

namespace NextFlowRL.Rewards.Remote.Tests;

[Collection(TorchCollection.Name)]
public sealed class RemoteRewardTests
{
    private static RemoteReward Client(string endpoint, string reward, Action<RemoteRewardOptions>? configure = null)
    {
        var o = new RemoteRewardOptions { Endpoint = endpoint, Reward = reward, TimeoutSeconds = 10, RetryBackoffMilliseconds = 50 };
        configure?.Invoke(o);
        return new RemoteReward("remote", o);
    }

    [Fact]
    public async Task Clip_scores_over_loopback_equal_in_process_scores()
    {
        var dir = TinyModels.HuggingFace(seed: 31);
        using var clip = new ClipReward("clip", new ClipRewardOptions { ModelPath = dir });
        await using var server = await Loopback.StartAsync(clip);
        using var remote = Client(server.Address, "clip");
        RewardSample[] samples =
        [
            new(TinyModels.Picture(16, 16, 1), "hello world"),
            new(TinyModels.Picture(40, 24, 2), "cat"),
            new(TinyModels.Picture(24, 40, 3), "hello cat!"),
        ];
        var viaServer = await remote.ScoreAsync(samples);
        var inProcess = await clip.ScoreAsync(samples);
        Assert.Equal(inProcess.Select(r => r.Score), viaServer.Select(r => r.Score));
        Assert.Equal(inProcess.Select(r => r.Components["cosine"]), viaServer.Select(r => r.Components["cosine"]));
    }

    [Fact]
    public async Task Components_regions_metadata_and_sample_errors_round_trip()
    {
        var echo = new EchoReward();
        await using var server = await Loopback.StartAsync(echo);
        using var remote = Client(server.Address, "echo");
        RewardSample[] samples = [Images.Sample(20, 10, "hello", r: 7), Images.Sample(5, 6, "fail"), Images.Sample(3, 4, "x")];
        var expected = await echo.ScoreAsync(samples);
        var actual = await remote.ScoreAsync(samples);
        Assert.Equal(3, actual.Count);
        Assert.Equal(expected[0], actual[0] with { Components = expected[0].Components, Regions = expected[0].Regions });
        for (int i = 0; i < 3; i += 2)
        {
            Assert.Equal(expected[i].Score, actual[i].Score);
            Assert.Equal(expected[i].Components.OrderBy(p => p.Key), actual[i].Components.OrderBy(p => p.Key));
            Assert.Equal(expected[i].Regions, actual[i].Regions);
        }
        Assert.Equal(3, actual[0].Components["words"]); // metadata reached the server
        Assert.Null(actual[0].Regions[1].Target);
        Assert.False(actual[1].IsValid);
        Assert.Equal("cannot score 'fail'", actual[1].Error);
    }

    [Fact]
    public async Task Plugins_loaded_by_the_host_are_served()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Rewards:clip:ModelPath"] = TinyModels.HuggingFace(seed: 32),
        }).Build();
        using var host = NextFlowRLHost.Build(config, pluginDirectories: [Repo.PathOf("artifacts", "plugins")]);
        var catalog = new HostRewardCatalog(host);
        await using var server = await Loopback.StartAsync(catalog);
        using var remote = Client(server.Address, "clip");
        var sample = new RewardSample(TinyModels.Picture(16, 16, 2), "cat");
        var viaServer = await remote.ScoreAsync([sample]);
        var inProcess = await host.GetReward("clip").ScoreAsync([sample]);
        Assert.Equal(inProcess[0].Score, viaServer[0].Score);

        using var unknown = Client(server.Address, "nope");
        var e = await Assert.ThrowsAsync<RemoteRewardException>(() => unknown.ScoreAsync([sample]));
        Assert.Contains("reward 'nope' is not served here; served: ", e.Message);
        Assert.Contains("clip", e.Message);
    }

    [Fact]
    public async Task The_server_bundles_every_reward_of_the_cli_and_serves_ocr_as_scored_in_process()
    {
        var serverPlugins = Repo.PathOf("hosts", "NextFlowRL.RewardServer", "bin", Repo.Configuration, "net10.0", "plugins");
        var cliPlugins = Path.Combine(Path.GetDirectoryName(Repo.CliDll)!, "plugins");
        using var cli = NextFlowRLHost.Build(new ConfigurationBuilder().Build(), pluginDirectories: [cliPlugins]);
        // The server as its command runs it: one Generic Host whose container holds the plugins' components.
        var app = RewardServerApp.CreateForPlugins(new ConfigurationBuilder().Build(), [serverPlugins], ["http://127.0.0.1:0"]);
        var host = NextFlowRLHost.From(app.Services);
        Assert.Empty(host.ValidateOptions());
        var catalog = app.Services.GetRequiredService<IRewardCatalog>();
        Assert.Same(host.GetReward("ocr"), app.Services.GetRequiredKeyedService<IRewardModel>("ocr")); // one container
        var cliRewards = cli.Components.Where(c => c.Kind == NextFlowRL.Plugins.ComponentKind.Reward).Select(c => c.Name).Order().ToList();
        Assert.Contains("ocr", cliRewards);
        Assert.Equal(cliRewards, catalog.List().Select(r => r.Name).Order().ToList());

        await using var server = await Loopback.StartAsync(app);
        using var remote = Client(server.Address, "ocr");
        var image = TextRenderer.Render(160, 64, (255, 255, 255), [new TextItem("CAT", 80, 32, 36, "DejaVuSans-Bold", (0, 0, 0))]);
        var sample = new RewardSample(image, "a sign that says \"CAT\"", new Dictionary<string, string> { ["target_words"] = "CAT" });
        var viaServer = await remote.ScoreAsync([sample]);
        var inProcess = await cli.GetReward("ocr").ScoreAsync([sample]);
        Assert.Null(viaServer[0].Error);
        Assert.Equal(inProcess[0].Score, viaServer[0].Score);
        Assert.Equal(inProcess[0].Regions.Count, viaServer[0].Regions.Count);
    }

    /// <summary>Echo that counts its calls.</summary>
    private sealed class CountingReward : IRewardModel
    {
        private readonly EchoReward _echo = new();
        private int _calls;

        public string Name => _echo.Name;

        public int Calls => Volatile.Read(ref _calls);

        public Task<IReadOnlyList<RewardResult>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _calls);
            return _echo.ScoreAsync(samples, cancellationToken);
        }
    }

    [Fact]
    public async Task Replicas_share_the_calls_and_one_going_down_costs_retries_not_the_run()
    {
        var (a, b) = (new CountingReward(), new CountingReward());
        var serverA = await Loopback.StartAsync(a);
        await using var serverB = await Loopback.StartAsync(b);
        using var remote = Client("", "echo", o => (o.Endpoint, o.Endpoints, o.HealthCheckSeconds, o.Retries) = (null, [serverA.Address, serverB.Address], 0.5, 4));
        var sample = Images.Sample(4, 4, "a");
        for (int i = 0; i < 12; i++) Assert.Null((await remote.ScoreAsync([sample]))[0].Error);
        Assert.True(a.Calls >= 3 && b.Calls >= 3, $"round robin should use both replicas: {a.Calls} and {b.Calls} calls");

        await serverA.DisposeAsync(); // a replica goes down mid-run
        int before = b.Calls;
        for (int i = 0; i < 12; i++) Assert.Null((await remote.ScoreAsync([sample]))[0].Error);
        Assert.Equal(before + 12, b.Calls);
    }

    [Fact]
    public async Task A_replica_that_reports_not_serving_gets_no_calls()
    {
        await using var empty = await Loopback.StartAsync(new DictionaryRewardCatalog([])); // health: NOT_SERVING (no rewards)
        var good = new CountingReward();
        await using var server = await Loopback.StartAsync(good);
        using var remote = Client("", "echo", o => (o.Endpoint, o.Endpoints) = (null, [empty.Address, server.Address]));
        var sample = Images.Sample(4, 4, "a");
        for (int i = 0; i < 8; i++) Assert.Null((await remote.ScoreAsync([sample]))[0].Error); // the empty one would answer NOT_FOUND
        Assert.Equal(8, good.Calls);
    }

    [Fact]
    public void Replica_lists_are_validated()
    {
        static List<string> Problems(RemoteRewardOptions o) => o.Validate(new System.ComponentModel.DataAnnotations.ValidationContext(o)).Select(r => r.ErrorMessage!).ToList();
        Assert.Empty(Problems(new RemoteRewardOptions { Endpoints = ["http://a:1", "http://b:2"] }));
        Assert.Contains("give Endpoint or Endpoints, not both", Problems(new RemoteRewardOptions { Endpoint = "http://a:1", Endpoints = ["http://b:2"] }));
        Assert.Contains("Endpoints must all be http:// or all https://", Problems(new RemoteRewardOptions { Endpoints = ["http://a:1", "https://b:2"] }));
        Assert.Contains("Endpoint 'b:2' is not an absolute http:// or https:// address", Problems(new RemoteRewardOptions { Endpoints = ["http://a:1", "b:2"] }));
        Assert.Equal(["http://a:1"], new RemoteRewardOptions { Endpoint = "http://a:1" }.Replicas());
    }

    [Fact]
    public async Task Sections_of_type_remote_become_extra_remote_rewards()
    {
        var echo = new EchoReward();
        await using var server = await Loopback.StartAsync(echo);
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Rewards:hpsv3:Type"] = "remote",
            ["Rewards:hpsv3:Endpoint"] = server.Address,
            ["Rewards:hpsv3:Reward"] = "echo",
            ["Rewards:other:Endpoint"] = server.Address, // no Type: not a remote reward
        }).Build();
        using var host = NextFlowRLHost.Build(config, pluginDirectories: [Repo.PathOf("artifacts", "plugins")]);
        var names = host.Plugins.Single(p => p.Name == "NextFlowRL.Rewards.Remote").Components.Select(c => c.Name).Order();
        Assert.Equal(["hpsv3", "remote"], names);
        Assert.DoesNotContain(host.ValidateOptions(), e => e.StartsWith("[hpsv3]", StringComparison.Ordinal) || e.StartsWith("[remote]", StringComparison.Ordinal));
        var result = await host.GetReward("hpsv3").ScoreAsync([Images.Sample(4, 4, "a")]);
        Assert.Equal(4.004, result[0].Score, 3);
    }

    [Fact]
    public async Task Server_down_fails_after_bounded_retries()
    {
        using var remote = Client(Loopback.DeadAddress(), "echo", o => { o.Retries = 2; o.TimeoutSeconds = 5; });
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<RemoteRewardException>(() => remote.ScoreAsync([Images.Sample(4, 4, "a")]));
        Assert.Matches(@"^remote: reward server http://127\.0\.0\.1:\d+ is unavailable \(3 attempts\)", e.Message);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(15), $"took {sw.Elapsed}"); // bounded, with room for a busy machine
    }

    [Fact]
    public async Task A_slow_server_is_abandoned_at_the_timeout()
    {
        await using var server = await Loopback.StartAsync(new SlowReward("slow", TimeSpan.FromSeconds(30)));
        using var remote = Client(server.Address, "slow", o => { o.TimeoutSeconds = 1; o.Retries = 3; });
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<RemoteRewardException>(() => remote.ScoreAsync([Images.Sample(4, 4, "a")]));
        Assert.Contains("did not answer within 1 s", e.Message);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(15), $"took {sw.Elapsed}"); // the server would answer after 30 s
    }

    [Fact]
    public async Task Cancelling_the_caller_stops_at_once()
    {
        await using var server = await Loopback.StartAsync(new SlowReward("slow", TimeSpan.FromSeconds(30)));
        using var remote = Client(server.Address, "slow", o => o.TimeoutSeconds = 60);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        var sw = Stopwatch.StartNew();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => remote.ScoreAsync([Images.Sample(4, 4, "a")], cts.Token));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(15), $"took {sw.Elapsed}"); // the server would answer after 30 s
    }

    [Fact]
    public async Task Attempt_timeouts_retry_within_the_overall_timeout()
    {
        await using var server = await Loopback.StartAsync(new SlowReward("slow", TimeSpan.FromSeconds(30)));
        using var remote = Client(server.Address, "slow", o => { o.TimeoutSeconds = 3; o.AttemptTimeoutSeconds = 0.5; o.Retries = 2; o.RetryBackoffMilliseconds = 100; });
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<RemoteRewardException>(() => remote.ScoreAsync([Images.Sample(4, 4, "a")]));
        Assert.Contains("(3 attempts)", e.Message);
        Assert.InRange(sw.Elapsed.TotalSeconds, 1.5, 15); // three 0.5 s attempts, never the server's 30 s
    }

    [Fact]
    public async Task Wrong_or_missing_token_is_rejected_and_the_right_one_accepted()
    {
        await using var server = await Loopback.StartAsync(new DictionaryRewardCatalog([new EchoReward()]), new RewardServerOptions { Token = "s3cret" });
        RewardSample[] one = [Images.Sample(4, 4, "a")];
        using var wrong = Client(server.Address, "echo", o => o.Token = "guess");
        var e1 = await Assert.ThrowsAsync<RemoteRewardException>(() => wrong.ScoreAsync(one));
        Assert.Equal($"remote: reward server {server.Address} rejected the credentials: wrong bearer token (check Rewards:remote:Token)", e1.Message);
        using var none = Client(server.Address, "echo");
        var e2 = await Assert.ThrowsAsync<RemoteRewardException>(() => none.ScoreAsync(one));
        Assert.Contains("missing bearer token", e2.Message);
        using var right = Client(server.Address, "echo", o => o.Token = "s3cret");
        Assert.Equal(4.004, (await right.ScoreAsync(one))[0].Score, 3);
    }

    [Fact]
    public async Task Health_service_answers_without_a_token()
    {
        await using var server = await Loopback.StartAsync(new DictionaryRewardCatalog([new EchoReward()]), new RewardServerOptions { Token = "s3cret" });
        using var channel = GrpcChannel.ForAddress(server.Address);
        var health = await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
        var list = await new RewardService.RewardServiceClient(channel).ListRewardsAsync(new ListRewardsRequest(), new Metadata { { "authorization", "Bearer s3cret" } });
        Assert.Equal(["echo"], list.Rewards.Select(r => r.Name));
    }

    [Fact]
    public async Task Undecodable_png_fails_only_its_sample()
    {
        await using var server = await Loopback.StartAsync(new EchoReward());
        using var channel = GrpcChannel.ForAddress(server.Address);
        var request = new ScoreRequest { Reward = "echo" };
        request.Samples.Add(new Sample { Png = ByteString.CopyFrom([1, 2, 3]), Prompt = "bad" });
        request.Samples.Add(new Sample { Png = ByteString.CopyFrom(ImageFile.EncodePng(Images.Sample(4, 4, "ok").Image)), Prompt = "ok" });
        var response = await new RewardService.RewardServiceClient(channel).ScoreAsync(request);
        Assert.StartsWith("image is not a decodable PNG", response.Results[0].Error);
        Assert.Equal("", response.Results[1].Error);
        Assert.Equal(4.004, response.Results[1].Score, 3);
    }

    [Fact]
    public async Task Wrong_result_count_is_a_malformed_response()
    {
        var builder = FakeServer();
        var app = builder.Build();
        app.MapGrpcService<ShortService>();
        await using var server = await Loopback.StartAsync(app);
        using var remote = Client(server.Address, "any");
        var e = await Assert.ThrowsAsync<RemoteRewardException>(() => remote.ScoreAsync([Images.Sample(4, 4, "a"), Images.Sample(4, 4, "b")]));
        Assert.Equal($"remote: malformed response from {server.Address}: 1 results for 2 samples", e.Message);
    }

    [Fact]
    public async Task Undecodable_response_bytes_are_a_malformed_response()
    {
        var app = FakeServer().Build();
        app.MapPost("/nextflowrl.rewards.v1.RewardService/Score", async (HttpContext ctx) =>
        {
            await ctx.Request.Body.CopyToAsync(Stream.Null);
            ctx.Response.ContentType = "application/grpc";
            byte[] garbage = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x0A, 0x99];
            var frame = new byte[5 + garbage.Length];
            BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)garbage.Length);
            garbage.CopyTo(frame, 5);
            await ctx.Response.Body.WriteAsync(frame);
            ctx.Response.AppendTrailer("grpc-status", "0");
        });
        await using var server = await Loopback.StartAsync(app);
        using var remote = Client(server.Address, "any", o => o.Retries = 0);
        var e = await Assert.ThrowsAsync<RemoteRewardException>(() => remote.ScoreAsync([Images.Sample(4, 4, "a")]));
        Assert.True(e.Message.StartsWith($"remote: malformed response from {server.Address}:", StringComparison.Ordinal), e.Message);
    }

    [Fact]
    public async Task Non_finite_scores_without_an_error_fail_their_sample()
    {
        var app = FakeServer().Build();
        app.MapGrpcService<NanService>();
        await using var server = await Loopback.StartAsync(app);
        using var remote = Client(server.Address, "any");
        var results = await remote.ScoreAsync([Images.Sample(4, 4, "a"), Images.Sample(4, 4, "b")]);
        Assert.Equal("server returned a non-finite score (NaN) without an error", results[0].Error);
        Assert.Equal(0.5, results[1].Score);
    }

    [Fact]
    public async Task Oversized_requests_are_refused_on_either_side()
    {
        RewardSample[] big = [new(Images.Noise(64, 64, 1), "noise")];
        using var tight = Client("http://127.0.0.1:1", "echo", o => o.MaxMessageBytes = 4096);
        var e1 = await Assert.ThrowsAsync<RemoteRewardException>(() => tight.ScoreAsync(big));
        Assert.Matches(@"^remote: request of \d+ bytes \(1 images\) exceeds MaxMessageBytes 4096", e1.Message);

        await using var server = await Loopback.StartAsync(new DictionaryRewardCatalog([new EchoReward()]), new RewardServerOptions { MaxMessageBytes = 4096 });
        using var remote = Client(server.Address, "echo");
        var e2 = await Assert.ThrowsAsync<RemoteRewardException>(() => remote.ScoreAsync(big));
        Assert.True(e2.Message.StartsWith($"remote: message too large for {server.Address}:", StringComparison.Ordinal), e2.Message);
        Assert.Equal(4.004, (await remote.ScoreAsync([Images.Sample(4, 4, "small")]))[0].Score, 3);
    }

    [Fact]
    public async Task Concurrency_limit_serializes_calls()
    {
        SlowReward.Reset();
        await using var server = await Loopback.StartAsync(
            new DictionaryRewardCatalog([new SlowReward("a", TimeSpan.FromMilliseconds(300)), new SlowReward("b", TimeSpan.FromMilliseconds(300))]),
            new RewardServerOptions { MaxConcurrency = 1 });
        using var a = Client(server.Address, "a");
        using var b = Client(server.Address, "b");
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(a.ScoreAsync([Images.Sample(4, 4, "x")]), b.ScoreAsync([Images.Sample(4, 4, "y")]), a.ScoreAsync([Images.Sample(4, 4, "z")]));
        Assert.Equal(1, SlowReward.MaxRunning);
        Assert.True(sw.Elapsed >= TimeSpan.FromMilliseconds(850), $"took {sw.Elapsed}");
    }

    [Fact]
    public async Task Missing_settings_are_clear_errors_and_bad_endpoints_fail_validation()
    {
        using var noEndpoint = new RemoteReward("remote", new RemoteRewardOptions { Reward = "x" });
        var e1 = await Assert.ThrowsAsync<RemoteRewardException>(() => noEndpoint.ScoreAsync([Images.Sample(4, 4, "a")]));
        Assert.Equal("remote: Rewards:remote:Endpoint is not set (e.g. http://127.0.0.1:5055; or Endpoints for several replicas)", e1.Message);
        using var noReward = new RemoteReward("remote", new RemoteRewardOptions { Endpoint = "http://127.0.0.1:1" });
        var e2 = await Assert.ThrowsAsync<RemoteRewardException>(() => noReward.ScoreAsync([Images.Sample(4, 4, "a")]));
        Assert.Equal("remote: Rewards:remote:Reward is not set (the reward's name on the server)", e2.Message);

        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Rewards:remote:Endpoint"] = "127.0.0.1:5055",
        }).Build();
        using var host = NextFlowRLHost.Build(config, pluginDirectories: [Repo.PathOf("artifacts", "plugins")]);
        Assert.Equal(PluginStatus.Loaded, host.Plugins.Single(p => p.Name == "NextFlowRL.Rewards.Remote").Status);
        var errors = host.ValidateOptions();
        Assert.True(errors.Any(m => m.Contains("Endpoint '127.0.0.1:5055' is not an absolute http:// or https:// address")), string.Join(" | ", errors));

        var config2 = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Rewards:remote:TimeoutSeconds"] = "0" }).Build();
        using var host2 = NextFlowRLHost.Build(config2, pluginDirectories: [Repo.PathOf("artifacts", "plugins")]);
        Assert.Contains(host2.ValidateOptions(), m => m.Contains("TimeoutSeconds must be between 0.01 and 86400"));
    }

    [Fact]
    public async Task Server_command_line_rejects_bad_arguments()
    {
        Assert.Equal(2, await RewardServerProgram.RunAsync(["--bogus"]));
        Assert.Equal(2, await RewardServerProgram.RunAsync(["--max-concurrency", "zero"]));
        Assert.Equal(2, await RewardServerProgram.RunAsync(["--set", "RewardServer:MaxConcurrency=abc", "--urls", "http://127.0.0.1:0"]));
        Assert.Equal(2, await RewardServerProgram.RunAsync(["--max-concurrency", "0", "--urls", "http://127.0.0.1:0"]));
        Assert.Equal(0, await RewardServerProgram.RunAsync(["--help"]));
    }

    [Fact]
    public void The_servers_and_the_plugins_options_are_validated_together()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["RewardServer:MaxConcurrency"] = "0",
            ["RewardServer:MaxMessageBytes"] = "10",
            ["Rewards:remote:TimeoutSeconds"] = "0",
        }).Build();
        var app = RewardServerApp.CreateForPlugins(config, [Repo.PathOf("artifacts", "plugins")], ["http://127.0.0.1:0"]);
        var errors = NextFlowRLHost.From(app.Services).ValidateOptions();
        var all = string.Join(" | ", errors);
        Assert.Contains("RewardServer:MaxConcurrency must be between 1 and 1024", all);
        Assert.Contains("RewardServer:MaxMessageBytes must be at least 1024", all);
        Assert.Contains("TimeoutSeconds must be between 0.01 and 86400", all);
    }

    private static WebApplicationBuilder FakeServer()
    {
        var builder = WebApplication.CreateBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.WebHost.ConfigureKestrel(k => k.ConfigureEndpointDefaults(e => e.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        return builder;
    }

    private sealed class ShortService : RewardService.RewardServiceBase
    {
        public override Task<ScoreResponse> Score(ScoreRequest request, ServerCallContext context) =>
            Task.FromResult(new ScoreResponse { Results = { new SampleResult { Score = 1 } } });
    }

    private sealed class NanService : RewardService.RewardServiceBase
    {
        public override Task<ScoreResponse> Score(ScoreRequest request, ServerCallContext context) =>
            Task.FromResult(new ScoreResponse { Results = { new SampleResult { Score = double.NaN }, new SampleResult { Score = 0.5 } } });
    }
}
