using NextFlowRL.Plugins;

namespace NextFlowRL.Hosting;

/// <summary>What <see cref="NextFlowRLServiceCollectionExtensions.AddNextFlowRL"/> registered: one report per plugin folder and every component.</summary>
/// <param name="Plugins">One report per plugin folder found, in discovery order.</param>
/// <param name="Components">Every available component (built-in and from loaded plugins).</param>
public sealed record NextFlowRLRegistration(IReadOnlyList<PluginReport> Plugins, IReadOnlyList<ComponentDescriptor> Components);

/// <summary>Registration of NextFlowRL components into any service container (a Generic Host's or <see cref="NextFlowRLHost.Build"/>'s).</summary>
public static class NextFlowRLServiceCollectionExtensions
{
    /// <summary>
    /// Registers the <paramref name="builtIn"/> components, then loads plugins from the host's own <c>plugins</c> folder,
    /// <paramref name="pluginDirectories"/> and <c>Plugins:Directories</c> into <paramref name="services"/>; the result
    /// is also registered (<see cref="NextFlowRLHost.From"/> reads it). The container must provide logging and
    /// <see cref="IConfiguration"/> (a Generic Host's does).
    /// </summary>
    /// <param name="services">The container to fill.</param>
    /// <param name="configuration">The configuration the components bind their options from.</param>
    /// <param name="builtIn">Components of the host itself.</param>
    /// <param name="pluginDirectories">Further plugin directories.</param>
    /// <param name="loggerFactory">Logs plugin loading (before the container exists).</param>
    /// <exception cref="ConfigurationException">Mistyped <c>Plugins</c> settings.</exception>
    public static NextFlowRLRegistration AddNextFlowRL(this IServiceCollection services, IConfiguration configuration,
        Action<INextFlowRLBuilder>? builtIn = null, IEnumerable<string>? pluginDirectories = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        loggerFactory ??= Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance;
        var components = new List<(ComponentDescriptor Component, string Owner)>();
        if (builtIn is not null)
        {
            var staged = new StagedRegistration(configuration);
            builtIn(staged);
            foreach (var d in staged.Services) services.Add(d);
            components.AddRange(staged.Components.Select(c => (c, "built-in")));
        }

        // Bound here, not on first use like other options: the plugin folders must be known before the container that the
        // plugins register into exists. The container then holds the very options the plugins were loaded with.
        var options = new PluginHostOptions();
        var mistyped = ConfigurationChecks.Bind(configuration.GetSection(PluginHostOptions.Section), options);
        if (mistyped.Count > 0) throw new ConfigurationException(string.Join("; ", mistyped));
        services.AddSingleton<Microsoft.Extensions.Options.IOptions<PluginHostOptions>>(Microsoft.Extensions.Options.Options.Create(options));
        var directories = new List<string> { Path.Combine(AppContext.BaseDirectory, "plugins") };
        directories.AddRange(pluginDirectories ?? []);
        directories.AddRange(options.Directories.Select(Path.GetFullPath));

        var loader = new PluginLoader(loggerFactory.CreateLogger<PluginLoader>());
        var reports = new List<PluginReport>();
        foreach (var folder in PluginLoader.Discover(directories, options.Disabled))
        {
            PluginReport report;
            StagedRegistration? staged;
            try
            {
                (report, staged) = loader.Load(folder, configuration);
            }
            catch (Exception e)
            {
                // The loader reports every expected failure itself; this is the last line of defence.
                (report, staged) = (new PluginReport(Path.GetFileName(folder), folder, PluginStatus.Failed, null, PluginLoader.OneLine(e), []), null);
            }
            if (staged is not null)
            {
                var clash = staged.Components.Select(c => (c, components.FirstOrDefault(x => x.Component.Kind == c.Kind && x.Component.Name == c.Name)))
                    .FirstOrDefault(p => p.Item2.Component is not null);
                if (clash.c is not null)
                {
                    report = report with
                    {
                        Status = PluginStatus.Failed,
                        Reason = $"{clash.c.Kind.ToString().ToLowerInvariant()} '{clash.c.Name}' is already provided by {clash.Item2.Owner}",
                        Components = [],
                    };
                }
                else
                {
                    foreach (var d in staged.Services) services.Add(d);
                    components.AddRange(staged.Components.Select(c => (c, report.Name)));
                }
            }
            if (report.Status != PluginStatus.Loaded)
                loggerFactory.CreateLogger<NextFlowRLHost>().LogWarning("Plugin {Name} {Status}: {Reason}", report.Name, report.Status, report.Reason);
            reports.Add(report);
        }

        var registration = new NextFlowRLRegistration(reports, components.Select(c => c.Component).ToList());
        services.AddSingleton(registration);
        return registration;
    }
}
