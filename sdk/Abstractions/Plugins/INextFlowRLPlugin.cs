namespace NextFlowRL.Plugins;

/// <summary>
/// The entry type of a plugin assembly. Each plugin assembly has exactly one public, non-abstract class implementing
/// this interface with a public parameterless constructor; the host creates it once and calls <see cref="Register"/>.
/// </summary>
/// <example>
/// <code>
/// public sealed class BrightnessPlugin : INextFlowRLPlugin
/// {
///     public void Register(INextFlowRLBuilder builder) => builder.AddBrightnessReward();
/// }
/// </code>
/// </example>
public interface INextFlowRLPlugin
{
    /// <summary>
    /// Registers the plugin's components and services. Throwing marks the plugin as failed; nothing it registered is kept.
    /// </summary>
    void Register(INextFlowRLBuilder builder);
}

/// <summary>What a plugin sees while it registers.</summary>
public interface INextFlowRLBuilder
{
    /// <summary>Services of the host. Register components as keyed services (see the <c>Add*</c> helpers).</summary>
    IServiceCollection Services { get; }

    /// <summary>The host's configuration (appsettings.json, environment, <c>--set</c>).</summary>
    IConfiguration Configuration { get; }

    /// <summary>Declares a component (reward or policy) so the host can list it. Called by the <c>Add*</c> helpers.</summary>
    void AddComponent(ComponentDescriptor component);
}

/// <summary>The kinds of components plugins provide.</summary>
public enum ComponentKind
{
    /// <summary>An <see cref="Rewards.IRewardModel"/>.</summary>
    Reward,

    /// <summary>A next-scale generator policy (see NextFlowRL.Abstractions.Policies).</summary>
    Policy,
}

/// <summary>A named component a plugin provides.</summary>
/// <param name="Name">Unique name among components of its kind (e.g. <c>ocr</c>, <c>var</c>).</param>
/// <param name="Kind">Reward or policy.</param>
/// <param name="Description">One line for listings.</param>
public sealed record ComponentDescriptor(string Name, ComponentKind Kind, string Description);
