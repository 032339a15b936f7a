using System.Diagnostics;
using Microsoft.Extensions.Logging;
using NextFlowRL.Policies;
using NextFlowRL.Rewards;
using NextFlowRL.Training;
using NextFlowRL.Training.Rollouts;

namespace NextFlowRL.Cluster;

/// <summary>One configuration of <see cref="ClusterBenchmark"/>: seconds per timed step, averaged.</summary>
/// <param name="Workers">Worker silos (0 = rollouts in the trainer's process).</param>
/// <param name="Steps">Steps timed.</param>
/// <param name="StepSeconds">Whole step.</param>
/// <param name="PhaseSeconds">The rollout phase (sampling, decoding, scoring) as the trainer waits for it.</param>
/// <param name="WorkSeconds">The shards' own sampling and scoring, summed over shards.</param>
/// <param name="BusiestWorkerSeconds">The busiest worker's own work (its shards run one after another; the phase cannot be shorter).</param>
/// <param name="PackSeconds">Saving the new weights for publication.</param>
/// <param name="OverheadSeconds">The phase beyond packing and the busiest worker's work: weights transfer, messages, waiting.</param>
/// <param name="WeightsMegabytes">Weights published per version.</param>
public sealed record ClusterBenchmarkRow(int Workers, int Steps, double StepSeconds, double PhaseSeconds, double WorkSeconds, double BusiestWorkerSeconds,
    double PackSeconds, double OverheadSeconds, double WeightsMegabytes)
{
    /// <summary>The step outside the rollout phase: the update and the trainer's bookkeeping.</summary>
    public double TrainerSeconds => StepSeconds - PhaseSeconds;
}

/// <summary>
/// The step time of M machines predicted from a benchmark: the trainer's own part, packing, a coordination cost that
/// grows linearly with the workers (fitted to the measured overheads: weights go to every silo each version), and
/// the shards' work spread over the machines in rounds (<c>ceil(shards / M)</c> shards each).
/// </summary>
/// <param name="InProcessStepSeconds">The measured in-process step (the speedup's base).</param>
/// <param name="TrainerSeconds">Update and bookkeeping per step.</param>
/// <param name="PackSeconds">Packing per step.</param>
/// <param name="CoordinationSeconds">Fitted overhead at zero workers (a).</param>
/// <param name="PerWorkerSeconds">Fitted overhead per worker (b).</param>
/// <param name="WorkSeconds">All shards' work per step on uncontended cores (from the one-worker run).</param>
public sealed record ScalingModel(double InProcessStepSeconds, double TrainerSeconds, double PackSeconds, double CoordinationSeconds, double PerWorkerSeconds, double WorkSeconds)
{
    /// <summary>Predicted step seconds on <paramref name="machines"/> worker machines with the step split into <paramref name="shards"/> equal shards.</summary>
    public double StepSeconds(int machines, int shards)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(machines, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(shards, 1);
        int rounds = (shards + machines - 1) / machines;
        return TrainerSeconds + PackSeconds + CoordinationSeconds + PerWorkerSeconds * machines + WorkSeconds / shards * rounds;
    }

    /// <summary>In-process step over the predicted step.</summary>
    public double Speedup(int machines, int shards) => InProcessStepSeconds / StepSeconds(machines, shards);

    /// <summary>The limit as machines grow with one shard each, before the per-worker cost dominates: in-process step over the trainer's part.</summary>
    public double BestSpeedup => InProcessStepSeconds / (TrainerSeconds + PackSeconds + CoordinationSeconds);

    /// <summary>Fits the model: the trainer's part and the work from the one-worker row (or the fewest workers), the overhead by least squares over the clustered rows.</summary>
    /// <exception cref="ArgumentException">No in-process row or no clustered row.</exception>
    public static ScalingModel Fit(IReadOnlyList<ClusterBenchmarkRow> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var local = rows.FirstOrDefault(r => r.Workers == 0) ?? throw new ArgumentException("the benchmark has no in-process row", nameof(rows));
        var clustered = rows.Where(r => r.Workers > 0).OrderBy(r => r.Workers).ToList();
        if (clustered.Count == 0) throw new ArgumentException("the benchmark has no clustered row", nameof(rows));
        var fewest = clustered[0];
        double a, b;
        if (clustered.Select(r => r.Workers).Distinct().Count() < 2)
        {
            (a, b) = (fewest.OverheadSeconds, 0);
        }
        else
        {
            double mx = clustered.Average(r => (double)r.Workers), my = clustered.Average(r => r.OverheadSeconds);
            b = clustered.Sum(r => (r.Workers - mx) * (r.OverheadSeconds - my)) / clustered.Sum(r => (r.Workers - mx) * (r.Workers - mx));
            a = my - b * mx;
            if (b < 0) (a, b) = (my, 0); // noise: no growth measured
            a = Math.Max(a, 0);
        }
        return new ScalingModel(local.StepSeconds, fewest.TrainerSeconds, fewest.PackSeconds, a, b, fewest.WorkSeconds);
    }
}

/// <summary>
/// <c>nextflow-rl bench cluster</c>: the same training steps in the trainer's process and on 1, 2, ... local worker
/// silos (child processes), with per-phase times and the cluster's transfer and coordination overhead per step.
/// </summary>
public static class ClusterBenchmark
{
    /// <summary>What a benchmark run needs.</summary>
    public sealed class Request
    {
        /// <summary>The run's options (<c>Train:Cluster:ShardPrompts</c> fixes the shards for every configuration).</summary>
        public required TrainerOptions Options { get; init; }

        /// <summary>Loads a fresh policy (each configuration starts from the same weights).</summary>
        public required Func<INextScalePolicy> LoadPolicy { get; init; }

        /// <summary>The run's rewards, for the in-process configuration.</summary>
        public required IReadOnlyList<(RewardSpec Spec, IRewardModel Model)> Rewards { get; init; }

        /// <summary>The trainer's fingerprint for the run's components.</summary>
        public required WorkerFingerprint Trainer { get; init; }

        /// <summary>The worker host (<c>nextflow-worker.dll</c>).</summary>
        public required string WorkerDll { get; init; }

        /// <summary>Worker counts to measure (the in-process run is always measured first).</summary>
        public required IReadOnlyList<int> WorkerCounts { get; init; }

        /// <summary>Steps per configuration (the first is not timed: it loads weights and warms up).</summary>
        public int Steps { get; init; } = 3;

        /// <summary>Extra worker arguments (e.g. <c>--set Plugins:...</c>).</summary>
        public IReadOnlyList<string> WorkerArguments { get; init; } = [];

        /// <summary>Logs warnings.</summary>
        public required ILogger Logger { get; init; }

        /// <summary>Called when a configuration starts.</summary>
        public Action<string>? OnStatus { get; init; }

        /// <summary>Called after every step.</summary>
        public Action? OnStep { get; init; }
    }

    /// <summary>Runs every configuration; rows in order (in-process first).</summary>
    public static async Task<IReadOnlyList<ClusterBenchmarkRow>> RunAsync(Request request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Steps < 2) throw new ArgumentOutOfRangeException(nameof(request), $"at least 2 steps per configuration (the first is not timed), got {request.Steps}");
        var rows = new List<ClusterBenchmarkRow>();
        var o = request.Options.Clone();
        o.Steps = Math.Max(o.Steps, request.Steps);
        o.Evaluate = false;
        request.OnStatus?.Invoke($"in-process: {request.Steps} steps");
        rows.Add(Measure(0, o, request, null, ct));
        foreach (int n in request.WorkerCounts)
        {
            request.OnStatus?.Invoke($"{n} worker{(n == 1 ? "" : "s")}: starting silos");
            var workers = new List<WorkerProcess>();
            try
            {
                for (int i = 0; i < n; i++)
                    workers.Add(await WorkerProcess.StartAsync(request.WorkerDll, workers.FirstOrDefault(), [.. request.WorkerArguments]));
                var clustered = o.Clone();
                clustered.Cluster.Gateways = workers.Select(w => w.Gateway).ToList();
                clustered.Cluster.Redis = null;
                clustered.Cluster.MinWorkers = n;
                var rollouts = await ClusterRollouts.ConnectAsync(clustered, request.Trainer, request.Logger, ct);
                request.OnStatus?.Invoke($"{n} worker{(n == 1 ? "" : "s")}: {request.Steps} steps");
                rows.Add(Measure(n, clustered, request, rollouts, ct));
            }
            finally
            {
                foreach (var w in workers) w.Dispose();
            }
        }
        return rows;
    }

    private static ClusterBenchmarkRow Measure(int workers, TrainerOptions o, Request request, IRolloutExecutor? rollouts, CancellationToken ct)
    {
        using var policy = request.LoadPolicy();
        using var reference = o.KlBeta > 0 ? policy.CreateFrozenCopy() : null;
        using var trainer = new GrpoTrainer(o, policy, reference, new RewardEnsemble(request.Rewards, request.Logger), PromptSet.Load(o.TrainPrompts!), request.Logger, rollouts: rollouts);
        var timed = new List<IReadOnlyDictionary<string, double>>();
        for (int i = 0; i < request.Steps; i++)
        {
            var step = trainer.RunStep(ct);
            if (i > 0) timed.Add(step.Metrics);
            request.OnStep?.Invoke();
        }
        double Mean(string key) => timed.Average(m => m.GetValueOrDefault(key));
        if (workers == 0)
        {
            double phase = Mean("time_rollout") + Mean("time_reward");
            return new ClusterBenchmarkRow(0, timed.Count, Mean("time_step"), phase, phase, phase, 0, 0, 0);
        }
        double wall = Mean("time_cluster_phase"), pack = Mean("time_cluster_pack"), overhead = Mean("time_cluster_overhead");
        return new ClusterBenchmarkRow(workers, timed.Count, Mean("time_step"), wall, Mean("time_cluster_work"), Mean("time_cluster_busiest"), pack, overhead, Mean("cluster_weights_mb"));
    }
}
