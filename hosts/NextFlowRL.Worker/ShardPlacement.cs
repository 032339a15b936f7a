using NextFlowRL.Cluster;
using Orleans.Placement;
using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace NextFlowRL.Worker;

/// <summary>
/// Places rollout-worker activations round-robin by shard: shard <c>s</c>, attempt <c>a</c> goes to silo
/// <c>(s + a) mod n</c> of the compatible silos in address order. A step's shards spread evenly (random or load-based
/// placement can put two shards on one silo and leave another idle), and a retried shard goes to a different silo than
/// the one that just failed it, even before the cluster has declared that one dead.
/// </summary>
[GenerateSerializer, Immutable, Alias("NextFlowRL.Worker.ShardPlacementStrategy")]
public sealed class ShardPlacementStrategy : PlacementStrategy
{
    /// <summary>The one instance.</summary>
    public static ShardPlacementStrategy Instance { get; } = new();
}

/// <summary>Marks a grain class as placed by <see cref="ShardPlacementStrategy"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class ShardPlacementAttribute : PlacementAttribute
{
    /// <summary>Creates the attribute.</summary>
    public ShardPlacementAttribute() : base(ShardPlacementStrategy.Instance) { }
}

/// <summary>The director of <see cref="ShardPlacementStrategy"/>.</summary>
public sealed class ShardPlacementDirector : IPlacementDirector
{
    /// <summary>The silo index of shard key <paramref name="key"/> among <paramref name="silos"/> silos.</summary>
    public static int SiloIndex(long key, int silos)
    {
        long shard = key & 0xFFFFFFFFL, attempt = key >>> 32;
        return (int)((shard + attempt) % silos);
    }

    /// <inheritdoc/>
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var silos = context.GetCompatibleSilos(target).Order().ToArray();
        if (silos.Length == 0) throw new OrleansException("no silo can host a rollout worker");
        return Task.FromResult(silos[SiloIndex(target.GrainIdentity.GetIntegerKey(), silos.Length)]);
    }
}
