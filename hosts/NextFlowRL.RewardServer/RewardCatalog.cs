using NextFlowRL.Hosting;
using NextFlowRL.Plugins;
using NextFlowRL.Rewards;

namespace NextFlowRL.RewardServer;

/// <summary>The rewards a server offers: the one lookup the gRPC service needs.</summary>
public interface IRewardCatalog
{
    /// <summary>Names and descriptions of the served rewards.</summary>
    IReadOnlyList<(string Name, string Description)> List();

    /// <summary>The reward called <paramref name="name"/>, or null when it is not served.</summary>
    IRewardModel? Find(string name);
}

/// <summary>A fixed set of reward instances (tests, embedding).</summary>
public sealed class DictionaryRewardCatalog : IRewardCatalog
{
    private readonly Dictionary<string, IRewardModel> _rewards;

    /// <summary>Serves <paramref name="rewards"/> under their <see cref="IRewardModel.Name"/>.</summary>
    public DictionaryRewardCatalog(IEnumerable<IRewardModel> rewards) =>
        _rewards = rewards.ToDictionary(r => r.Name, StringComparer.Ordinal);

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, string Description)> List() =>
        _rewards.Keys.Order(StringComparer.Ordinal).Select(n => (n, "")).ToList();

    /// <inheritdoc/>
    public IRewardModel? Find(string name) => _rewards.GetValueOrDefault(name);
}

/// <summary>Every reward of a <see cref="NextFlowRLHost"/> (built-in and plugin rewards).</summary>
public sealed class HostRewardCatalog : IRewardCatalog
{
    private readonly NextFlowRLHost _host;

    /// <summary>Serves the rewards of <paramref name="host"/>.</summary>
    public HostRewardCatalog(NextFlowRLHost host) => _host = host;

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, string Description)> List() =>
        _host.Components.Where(c => c.Kind == ComponentKind.Reward).Select(c => (c.Name, c.Description)).ToList();

    /// <inheritdoc/>
    public IRewardModel? Find(string name) =>
        _host.Components.Any(c => c.Kind == ComponentKind.Reward && c.Name == name) ? _host.GetReward(name) : null;
}
