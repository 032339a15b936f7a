using Microsoft.Extensions.Hosting;
using NextFlowRL.Hosting;

namespace NextFlowRL.Cli;

/// <summary>
/// What commands share: global options and the lazily built Generic Host (<see cref="HostApplicationBuilder"/>): one
/// configuration (appsettings.json, the environment, <c>--config</c>, <c>--set</c>), one logging pipeline on standard
/// error, and one container holding the plugins' components (<see cref="NextFlowRLServiceCollectionExtensions.AddNextFlowRL"/>)
/// and the validated training options (<see cref="Commands.TrainingConfig"/>).
/// The host is built, not run: a command is one call, and its Ctrl-C/SIGTERM handling (stop gracefully, a second
/// signal kills) is the CLI's own, which a console lifetime (stop at the first signal) would not give.
/// </summary>
internal sealed class CliContext : IDisposable
{
    private IHost? _app;
    private NextFlowRLHost? _host;

    public CliContext(GlobalOptions globals) => Globals = globals;

    public GlobalOptions Globals { get; }

    /// <summary>The configuration, built on first use.</summary>
    public IConfiguration Configuration => field ??= NextFlowRLConfiguration.Build(Globals.Settings, Globals.ConfigFile);

    /// <summary>
    /// Sets a configuration value from a command's own option (<c>train --steps 3</c> is <c>--set Train:Steps=3</c>), so
    /// that it is bound and validated with every other value. Call it before the options it belongs to are first read.
    /// </summary>
    public void Override(string key, IFormattable value) =>
        Configuration[key] = value.ToString(null, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The components of the host with all plugins, built on first use.</summary>
    public NextFlowRLHost Host => _host ??= BuildHost();

    private NextFlowRLHost BuildHost()
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddConfiguration(Configuration);
        Logging(builder.Logging);
        // Plugin loading logs before the container exists, through the same settings.
        using var loading = LoggerFactory.Create(Logging);
        builder.Services.AddNextFlowRL(builder.Configuration, builtIn: null, Globals.PluginDirectories.Select(Path.GetFullPath), loading);
        Commands.TrainingConfig.Add(builder.Services, builder.Configuration);
        builder.Services.AddSingleton<NextFlowRL.Plugins.IProgressDisplay, ConsoleProgress.Display>(); // plugin commands show the CLI's display
        _app = builder.Build();
        return NextFlowRLHost.From(_app.Services);
    }

    private void Logging(ILoggingBuilder logging) => logging
        .AddConfiguration(Configuration.GetSection("Logging"))
        .AddSimpleConsole(o => o.SingleLine = true)
        .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace)
        .SetMinimumLevel(Globals.Verbose ? LogLevel.Debug : LogLevel.Warning);

    /// <summary>The host, after checking every component's options (all problems listed at once).</summary>
    public NextFlowRLHost ValidatedHost()
    {
        Host.EnsureValidOptions();
        return Host;
    }

    public void Dispose() => _app?.Dispose();
}
