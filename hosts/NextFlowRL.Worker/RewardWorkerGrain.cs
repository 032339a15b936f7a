using System.Diagnostics;
using NextFlowRL.Cluster;

namespace NextFlowRL.Worker;

/// <summary>A reward worker (one activation per batch key), placed like the rollout workers.</summary>
[ShardPlacement]
public sealed class RewardWorkerGrain(WorkerReplicas replicas, Orleans.Runtime.ILocalSiloDetails silo, ILogger<RewardWorkerGrain> logger) : Grain, IRewardWorker
{
    /// <inheritdoc/>
    public Task<string> Location() => Task.FromResult(silo.SiloAddress.ToParsableString());

    /// <inheritdoc/>
    public async Task<RewardOutcome> Score(RewardJob job)
    {
        ArgumentNullException.ThrowIfNull(job);
        var worker = silo.SiloAddress.ToParsableString();
        if ((replicas.CheckSecret(job.Secret) ?? replicas.CheckFingerprint(job.Trainer)) is { } refused)
            return new RewardOutcome(refused, worker, [], 0);
        await replicas.Gate.WaitAsync();
        try
        {
            logger.LogInformation("reward '{Reward}': {Count} images", job.Reward, job.Images.Length);
            var clock = Stopwatch.StartNew();
            var results = await Task.Run(() => replicas.Reward(job.Reward).ScoreAsync(job.Samples()));
            return new RewardOutcome(null, worker, results.Select(ResultMessage.From).ToArray(), clock.Elapsed.TotalSeconds);
        }
        catch (NextFlowRL.Hosting.UnknownComponentException e)
        {
            return new RewardOutcome($"worker {worker}: {e.Message}", worker, [], 0);
        }
        finally
        {
            replicas.Gate.Release();
        }
    }
}
