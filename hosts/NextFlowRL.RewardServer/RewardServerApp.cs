using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace NextFlowRL.RewardServer;

/// <summary>Builds the reward server web application around a reward catalog.</summary>
public static class RewardServerApp
{
    /// <summary>
    /// Creates (does not start) the server: gRPC <c>RewardService</c> (plugins/Rewards.Remote/reward_service.proto),
    /// the standard gRPC health service (<c>grpc.health.v1.Health</c>, no token needed) and <c>/healthz</c>, on
    /// cleartext HTTP/2 (h2c) or TLS, at <paramref name="urls"/> (port 0 picks a free port; see <see cref="BoundAddresses"/>).
    /// </summary>
    public static WebApplication Create(IRewardCatalog catalog, RewardServerOptions options, IEnumerable<string> urls, LogLevel minimumLogLevel = LogLevel.Warning)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.Logging.SetMinimumLevel(minimumLogLevel);
        builder.WebHost.UseUrls(urls.ToArray());
        builder.WebHost.ConfigureKestrel(k => k.ConfigureEndpointDefaults(e => e.Protocols = HttpProtocols.Http2));
        builder.Services.AddSingleton(catalog);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(new ConcurrencyGate(options.MaxConcurrency));
        builder.Services.AddSingleton<BearerTokenInterceptor>();
        builder.Services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = options.MaxMessageBytes;
            o.MaxSendMessageSize = options.MaxMessageBytes;
            o.Interceptors.Add<BearerTokenInterceptor>();
        });
        builder.Services.AddGrpcHealthChecks()
            .AddCheck("rewards", () => catalog.List().Count > 0
                ? HealthCheckResult.Healthy($"{catalog.List().Count} reward(s) served")
                : HealthCheckResult.Unhealthy("no rewards are served"));
        var app = builder.Build();
        app.MapGrpcService<RewardServiceImpl>();
        app.MapGrpcHealthChecksService();
        app.MapHealthChecks("/healthz");
        return app;
    }

    /// <summary>The addresses the started server listens on (with real port numbers).</summary>
    public static IReadOnlyList<string> BoundAddresses(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToList() ?? [];
    }
}
