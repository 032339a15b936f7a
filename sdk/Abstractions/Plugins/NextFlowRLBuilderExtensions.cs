using NextFlowRL.Rewards;

namespace NextFlowRL.Plugins;

/// <summary>Registration helpers shared by all plugins.</summary>
public static class NextFlowRLBuilderExtensions
{
    /// <summary>
    /// The configuration section of a component: <c>Rewards:&lt;name&gt;</c> or <c>Policies:&lt;name&gt;</c>.
    /// </summary>
    public static IConfigurationSection GetComponentSection(this INextFlowRLBuilder builder, ComponentKind kind, string name)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Configuration.GetSection(SectionPath(kind, name));
    }

    /// <summary>The configuration path of a component's section, e.g. <c>Rewards:ocr</c>.</summary>
    public static string SectionPath(ComponentKind kind, string name) =>
        (kind == ComponentKind.Reward ? "Rewards:" : "Policies:") + name;

    /// <summary>
    /// Registers a reward under <paramref name="name"/> as a keyed singleton <see cref="IRewardModel"/> and declares it.
    /// </summary>
    public static INextFlowRLBuilder AddReward(
        this INextFlowRLBuilder builder,
        string name,
        string description,
        Func<IServiceProvider, string, IRewardModel> factory)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(factory);
        builder.Services.AddKeyedSingleton<IRewardModel>(name, (sp, _) => factory(sp, name));
        builder.AddComponent(new ComponentDescriptor(name, ComponentKind.Reward, description));
        return builder;
    }

    /// <summary>
    /// Binds named options <typeparamref name="TOptions"/> (name = component name) to the component's configuration
    /// section, applies <paramref name="configure"/> after binding, validates data annotations and validates at start,
    /// so a host lists every invalid setting before any work begins.
    /// </summary>
    public static OptionsBuilder<TOptions> AddComponentOptions<TOptions>(
        this INextFlowRLBuilder builder,
        ComponentKind kind,
        string name,
        Action<TOptions>? configure = null)
        where TOptions : class
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Services.AddOptions<TOptions>(name).Bind(builder.GetComponentSection(kind, name));
        if (configure is not null)
            options.Configure(configure);
        return options.ValidateDataAnnotations().ValidateOnStart();
    }

    /// <summary>Registers a command that hosts add to their command line (see <see cref="INextFlowRLCommand"/>).</summary>
    public static INextFlowRLBuilder AddCommand<TCommand>(this INextFlowRLBuilder builder)
        where TCommand : class, INextFlowRLCommand
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddSingleton<INextFlowRLCommand, TCommand>();
        return builder;
    }
}
