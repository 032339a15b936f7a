using NextFlowRL.Hosting;

namespace NextFlowRL.Cli;

/// <summary>What commands share: global options and the lazily built host.</summary>
internal sealed class CliContext : IDisposable
{
    private NextFlowRLHost? _host;

    public CliContext(GlobalOptions globals) => Globals = globals;

    public GlobalOptions Globals { get; }

    /// <summary>The configuration, built on first use.</summary>
    public IConfiguration Configuration => field ??= NextFlowRLConfiguration.Build(Globals.Settings, Globals.ConfigFile);

    /// <summary>The host with all plugins, built on first use.</summary>
    public NextFlowRLHost Host => _host ??= NextFlowRLHost.Build(
        Configuration,
        builtIn: null,
        pluginDirectories: Globals.PluginDirectories.Select(Path.GetFullPath),
        loggerFactory: LoggerFactory.Create(b => b
            .AddConfiguration(Configuration.GetSection("Logging"))
            .AddSimpleConsole(o => o.SingleLine = true)
            .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace)
            .SetMinimumLevel(Globals.Verbose ? LogLevel.Debug : LogLevel.Warning)));

    /// <summary>The host, after checking every component's options (all problems listed at once).</summary>
    public NextFlowRLHost ValidatedHost()
    {
        Host.EnsureValidOptions();
        return Host;
    }

    public void Dispose() => _host?.Dispose();
}
