using NextFlowRL.Hosting;
using NextFlowRL.Plugins;
using NextFlowRL.Policies;
using NextFlowRL.Rewards;

namespace NextFlowRL.Cluster;

/// <summary>
/// What a process runs, as far as a run's results depend on it: the contract assembly versions and, per component
/// (<c>policy:var</c>, <c>reward:ocr</c>), the plugin and version providing it. A worker whose fingerprint differs
/// from the trainer's for the run's components is refused, with the differences named.
/// </summary>
[GenerateSerializer, Immutable, Alias("NextFlowRL.Cluster.WorkerFingerprint")]
public sealed record WorkerFingerprint(
    [property: Id(0)] string Contracts,
    [property: Id(1)] Dictionary<string, string> Components)
{
    /// <summary>The contract versions of this process.</summary>
    public static string ContractVersions =>
        $"NextFlowRL.Abstractions {typeof(IRewardModel).Assembly.GetName().Version}, NextFlowRL.Abstractions.Policies {typeof(INextScalePolicy).Assembly.GetName().Version}";

    /// <summary>The fingerprint of a host: every loaded plugin's components.</summary>
    public static WorkerFingerprint Of(NextFlowRLHost host)
    {
        ArgumentNullException.ThrowIfNull(host);
        var components = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var plugin in host.Plugins.Where(p => p.Status == PluginStatus.Loaded))
            foreach (var c in plugin.Components)
                components[Key(c.Kind, c.Name)] = $"{plugin.Name} {plugin.Version ?? "?"}";
        return new WorkerFingerprint(ContractVersions, components);
    }

    /// <summary>The component key of a policy or reward.</summary>
    public static string Key(ComponentKind kind, string name) => $"{kind.ToString().ToLowerInvariant()}:{name}";

    /// <summary>The fingerprint of <paramref name="host"/> for what a run uses: its policy and its rewards.</summary>
    public static WorkerFingerprint ForRun(NextFlowRLHost host, NextFlowRL.Training.TrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        // The evaluations' further readers score on the reward workers too.
        return Of(host).For(options.Rewards.Select(r => r.Name).Concat(options.ActiveEvalReaders)
            .Select(name => Key(ComponentKind.Reward, name)).Prepend(Key(ComponentKind.Policy, options.Policy)));
    }

    /// <summary>Only the given components (what a run uses).</summary>
    public WorkerFingerprint For(IEnumerable<string> keys) =>
        this with { Components = keys.Distinct().ToDictionary(k => k, k => Components.TryGetValue(k, out var v) ? v : "missing", StringComparer.Ordinal) };

    /// <summary>Every difference between this (a worker) and the trainer's fingerprint, for the trainer's components; empty when the worker fits.</summary>
    public IReadOnlyList<string> DifferencesFrom(WorkerFingerprint trainer)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        var result = new List<string>();
        if (Contracts != trainer.Contracts) result.Add($"contracts: worker has {Contracts}, trainer has {trainer.Contracts}");
        foreach (var (key, wanted) in trainer.Components.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var have = Components.TryGetValue(key, out var v) ? v : "missing";
            if (have != wanted) result.Add($"{key}: worker has {have}, trainer has {wanted}");
        }
        return result;
    }
}
