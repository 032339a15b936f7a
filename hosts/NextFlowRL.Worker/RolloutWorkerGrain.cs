using NextFlowRL.Cluster;
using NextFlowRL.Training.Rollouts;

namespace NextFlowRL.Worker;

/// <summary>
/// A rollout worker (one activation per shard key, see <see cref="ClusterRollouts.GrainKey"/>), placed by
/// <see cref="ShardPlacementAttribute"/> so that a step's shards spread over the silos and a retry lands on another one.
/// </summary>
[ShardPlacement]
public sealed class RolloutWorkerGrain(WorkerReplicas replicas, Orleans.Runtime.ILocalSiloDetails silo, ILogger<RolloutWorkerGrain> logger) : Grain, IRolloutWorker
{
    /// <inheritdoc/>
    public Task<WorkerFingerprint> Describe() => Task.FromResult(replicas.Fingerprint);

    /// <inheritdoc/>
    public Task<string> Location() => Task.FromResult(silo.SiloAddress.ToParsableString());

    /// <inheritdoc/>
    public async Task<string?> LoadWeights(WeightsPackage weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (replicas.CheckSecret(weights.Secret) is { } refused) return refused;
        await replicas.Gate.WaitAsync();
        try
        {
            return await Task.Run(() => replicas.Load(weights));
        }
        catch (Exception e) when (e is InvalidDataException or IOException or ArgumentException or NextFlowRL.Hosting.UnknownComponentException)
        {
            return $"worker {RuntimeIdentity} cannot load weights version {weights.Version} of '{weights.Policy}': {e.Message}";
        }
        finally
        {
            replicas.Gate.Release();
        }
    }

    /// <inheritdoc/>
    public async Task<ShardOutcome> Run(ShardJob job)
    {
        ArgumentNullException.ThrowIfNull(job);
        if ((replicas.CheckSecret(job.Secret) ?? replicas.CheckFingerprint(job.Trainer)) is { } refused)
            return new ShardOutcome { Refusal = refused, Worker = RuntimeIdentity };
        var rewards = replicas.Rewards(job.Rewards);
        await replicas.Gate.WaitAsync();
        try
        {
            // Looked up under the gate: a weights load (which replaces and disposes the older replica) cannot run meanwhile.
            var replica = replicas.Replica(job.RunId, job.Version, job.Policy);
            if (replica is null) return new ShardOutcome { NeedsWeights = true, Worker = RuntimeIdentity };
            logger.LogInformation("step {Step}: shard of prompts [{First}, {End}) at weights version {Version}", job.Step + 1, job.FirstPrompt, job.FirstPrompt + job.PromptCount, job.Version);
            var worker = RuntimeIdentity;
            return await Task.Run(() =>
            {
                if (job.Threads > 0) TorchSharp.torch.set_num_threads(job.Threads);
                using var batch = RolloutShard.Run(replica, rewards, job.ToRequest(), job.FirstPrompt, job.PromptCount, CancellationToken.None);
                return ShardOutcome.From(batch, worker);
            });
        }
        finally
        {
            replicas.Gate.Release();
        }
    }
}
