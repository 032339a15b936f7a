using NextFlowRL.Plugins;

namespace NextFlowRL.Policies;

/// <summary>Registration helpers for policy plugins.</summary>
public static class PolicyBuilderExtensions
{
    /// <summary>Registers a policy provider under <paramref name="name"/> (keyed singleton) and declares it.</summary>
    public static INextFlowRLBuilder AddPolicy(
        this INextFlowRLBuilder builder,
        string name,
        string description,
        Func<IServiceProvider, string, IPolicyProvider> factory)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(factory);
        builder.Services.AddKeyedSingleton<IPolicyProvider>(name, (sp, _) => factory(sp, name));
        builder.AddComponent(new ComponentDescriptor(name, ComponentKind.Policy, description));
        return builder;
    }
}
