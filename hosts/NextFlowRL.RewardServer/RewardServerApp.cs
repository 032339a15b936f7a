using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using NextFlowRL.Hosting;

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
        var builder = NewBuilder(urls, minimumLogLevel);
        builder.Services.AddSingleton(catalog);
        return Finish(builder, options);
    }

    /// <summary>
    /// Creates (does not start) the server for the installed reward plugins as one Generic Host: one configuration
    /// (<paramref name="configuration"/> added to the host's), one container (the plugins' components are registered in
    /// the web application's own, <see cref="NextFlowRLServiceCollectionExtensions.AddNextFlowRL"/>), one logging
    /// pipeline, and <see cref="RewardServerOptions"/> as validated <c>IOptions</c> (data annotations,
    /// <c>ValidateOnStart</c>); <see cref="NextFlowRLHost.ValidateOptions"/> over <c>app.Services</c> lists every problem
    /// of the server's and the plugins' options at once.
    /// </summary>
    public static WebApplication CreateForPlugins(IConfiguration configuration, IEnumerable<string> pluginDirectories, IEnumerable<string> urls,
        ILoggerFactory? loadingLogger = null, LogLevel minimumLogLevel = LogLevel.Warning)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var builder = NewBuilder(urls, minimumLogLevel);
        builder.Configuration.AddConfiguration(configuration);
        var section = builder.Configuration.GetSection(RewardServerOptions.Section);
        builder.Services.AddOptions<RewardServerOptions>().Bind(section).ValidateDataAnnotations().ValidateOnStart();
        // The values the server runs with, bound from the same section: gRPC's message limits are fixed when the
        // endpoints are mapped, before any validation could run.
        var options = new RewardServerOptions();
        section.Bind(options);
        builder.Services.AddNextFlowRL(builder.Configuration, pluginDirectories: pluginDirectories, loggerFactory: loadingLogger);
        builder.Services.AddSingleton<IRewardCatalog>(sp => new HostRewardCatalog(NextFlowRLHost.From(sp)));
        return Finish(builder, options);
    }

    private static WebApplicationBuilder NewBuilder(IEnumerable<string> urls, LogLevel minimumLogLevel)
    {
        ArgumentNullException.ThrowIfNull(urls);
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.Logging.SetMinimumLevel(minimumLogLevel);
        builder.WebHost.UseUrls(urls.ToArray());
        builder.WebHost.ConfigureKestrel(k => k.ConfigureEndpointDefaults(e => e.Protocols = HttpProtocols.Http2));
        return builder;
    }

    /// <summary>The gRPC service, health checks and endpoints over the registered catalog and options.</summary>
    private static WebApplication Finish(WebApplicationBuilder builder, RewardServerOptions options)
    {
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
            .AddCheck<RewardsHealthCheck>("rewards");
        var app = builder.Build();
        app.MapGrpcService<RewardServiceImpl>();
        app.MapGrpcHealthChecksService();
        app.MapHealthChecks("/healthz");
        return app;
    }

    private sealed class RewardsHealthCheck(IRewardCatalog catalog) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(catalog.List().Count > 0
                ? HealthCheckResult.Healthy($"{catalog.List().Count} reward(s) served")
                : HealthCheckResult.Unhealthy("no rewards are served"));
    }

    /// <summary>The addresses the started server listens on (with real port numbers).</summary>
    public static IReadOnlyList<string> BoundAddresses(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToList() ?? [];
    }
}
