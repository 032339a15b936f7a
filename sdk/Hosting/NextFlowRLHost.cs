using NextFlowRL.Plugins;
using NextFlowRL.Policies;
using NextFlowRL.Rewards;

namespace NextFlowRL.Hosting;

/// <summary>
/// A running set of components: built-in registrations plus every plugin that loaded, in one service container.
/// Hosts (the CLI, the reward server, tests) build one with <see cref="Build"/>.
/// </summary>
public sealed class NextFlowRLHost : IDisposable, IAsyncDisposable
{
    private readonly IServiceProvider _services;
    private readonly ServiceProvider? _owned;

    private NextFlowRLHost(IConfiguration configuration, IServiceProvider services, ServiceProvider? owned, NextFlowRLRegistration registration)
    {
        Configuration = configuration;
        _services = services;
        _owned = owned;
        Plugins = registration.Plugins;
        Components = registration.Components;
    }

    /// <summary>
    /// The components of a container that <see cref="NextFlowRLServiceCollectionExtensions.AddNextFlowRL"/> filled (a
    /// Generic Host's, e.g. the reward server's): one container for the host's own services and the plugins'. The
    /// container stays its owner's: disposing this host does not dispose it.
    /// </summary>
    /// <exception cref="InvalidOperationException">The container has no NextFlowRL registration.</exception>
    public static NextFlowRLHost From(IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(services);
        var registration = services.GetService<NextFlowRLRegistration>()
            ?? throw new InvalidOperationException("the container has no NextFlowRL components: call services.AddNextFlowRL(...) first");
        return new NextFlowRLHost(services.GetRequiredService<IConfiguration>(), services, null, registration);
    }

    /// <summary>The configuration the host was built with.</summary>
    public IConfiguration Configuration { get; }

    /// <summary>The service container.</summary>
    public IServiceProvider Services => _services;

    /// <summary>One report per plugin folder found, in discovery order.</summary>
    public IReadOnlyList<PluginReport> Plugins { get; }

    /// <summary>Every available component (built-in and from loaded plugins).</summary>
    public IReadOnlyList<ComponentDescriptor> Components { get; }

    /// <summary>Commands registered by plugins.</summary>
    public IReadOnlyList<INextFlowRLCommand> Commands => _services.GetServices<INextFlowRLCommand>().ToList();

    /// <summary>
    /// Builds a host: registers logging, the <paramref name="builtIn"/> components, then loads plugins from the host's
    /// own <c>plugins</c> folder, <paramref name="pluginDirectories"/> and <c>Plugins:Directories</c>.
    /// </summary>
    public static NextFlowRLHost Build(
        IConfiguration configuration,
        Action<INextFlowRLBuilder>? builtIn = null,
        IEnumerable<string>? pluginDirectories = null,
        ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        loggerFactory ??= LoggerFactory.Create(b => b
            .AddConfiguration(configuration.GetSection("Logging"))
            .AddSimpleConsole(o => o.SingleLine = true)
            .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace)
            .SetMinimumLevel(LogLevel.Warning));
        var services = new ServiceCollection();
        services.AddSingleton(configuration);
        services.AddSingleton(loggerFactory);
        services.AddLogging();
        services.Replace(ServiceDescriptor.Singleton(loggerFactory));
        var registration = services.AddNextFlowRL(configuration, builtIn, pluginDirectories, loggerFactory);
        var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateScopes = true });
        return new NextFlowRLHost(configuration, provider, provider, registration);
    }

    /// <summary>
    /// Validates every option registered with <c>ValidateOnStart</c> and returns all problems (empty when valid).
    /// </summary>
    public IReadOnlyList<string> ValidateOptions()
    {
        var validator = _services.GetService<IStartupValidator>();
        if (validator is null) return [];
        try
        {
            validator.Validate();
            return [];
        }
        catch (OptionsValidationException e)
        {
            return Describe(e).ToList();
        }
        catch (AggregateException e)
        {
            return e.InnerExceptions.SelectMany(x => x is OptionsValidationException ove ? Describe(ove) : [x.Message]).ToList();
        }
    }

    /// <summary>Throws when <see cref="ValidateOptions"/> finds problems, listing all of them.</summary>
    /// <exception cref="ConfigurationException">Invalid options.</exception>
    public void EnsureValidOptions()
    {
        var errors = ValidateOptions();
        if (errors.Count > 0)
            throw new ConfigurationException($"invalid configuration ({errors.Count} problem{(errors.Count == 1 ? "" : "s")}):\n  " + string.Join("\n  ", errors));
    }

    private static IEnumerable<string> Describe(OptionsValidationException e) =>
        e.Failures.Select(f => string.IsNullOrEmpty(e.OptionsName) ? f : $"[{e.OptionsName}] {f}");

    /// <summary>The reward registered under <paramref name="name"/>.</summary>
    /// <exception cref="UnknownComponentException">No such reward; the message lists the available ones.</exception>
    public IRewardModel GetReward(string name) =>
        Get<IRewardModel>(ComponentKind.Reward, name);

    /// <summary>The policy provider registered under <paramref name="name"/>.</summary>
    /// <exception cref="UnknownComponentException">No such policy; the message lists the available ones.</exception>
    public IPolicyProvider GetPolicyProvider(string name) =>
        Get<IPolicyProvider>(ComponentKind.Policy, name);

    private T Get<T>(ComponentKind kind, string name)
        where T : notnull
    {
        if (!Components.Any(c => c.Kind == kind && c.Name == name))
        {
            var known = Components.Where(c => c.Kind == kind).Select(c => c.Name).ToList();
            var failed = Plugins.Where(p => p.Status != PluginStatus.Loaded).Select(p => $"{p.Name} ({p.Status.ToString().ToLowerInvariant()})").ToList();
            var kindName = kind.ToString().ToLowerInvariant();
            throw new UnknownComponentException(
                $"unknown {kindName} '{name}'; available: {(known.Count == 0 ? "none" : string.Join(", ", known))}" +
                (failed.Count > 0 ? $"; plugins not loaded: {string.Join(", ", failed)} (see 'nextflow-rl plugins')" : ""));
        }
        return _services.GetRequiredKeyedService<T>(name);
    }

    /// <inheritdoc/>
    public void Dispose() => _owned?.Dispose();

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => _owned?.DisposeAsync() ?? ValueTask.CompletedTask;
}

/// <summary>A component name that nothing provides; the message lists what is available.</summary>
public sealed class UnknownComponentException : Exception
{
    /// <summary>Creates the exception.</summary>
    public UnknownComponentException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public UnknownComponentException() { }

    /// <summary>Creates the exception.</summary>
    public UnknownComponentException(string message, Exception inner) : base(message, inner) { }
}
