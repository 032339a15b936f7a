using System.Security.Cryptography;
using System.Text;
using NextFlowRL.Cluster;
using NextFlowRL.Hosting;
using NextFlowRL.Policies;
using NextFlowRL.Training;

namespace NextFlowRL.Worker;

/// <summary>
/// What every rollout-worker activation of this silo shares: the plugins (one <see cref="NextFlowRLHost"/>), the policy
/// replica at the newest weights version each run sent, and a gate that runs one shard at a time (a shard uses the
/// trainer's torch thread count; two at once would change both its speed and, through the threads, nothing else but
/// oversubscribe the cores).
/// </summary>
public sealed class WorkerReplicas : IDisposable
{
    private readonly NextFlowRLHost _host;
    private readonly byte[]? _secret;
    private readonly ILogger _logger;
    private readonly Dictionary<string, (int Version, string Policy, INextScalePolicy Replica)> _replicas = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RewardEnsemble> _ensembles = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    /// <summary>Creates the silo's state over the loaded plugins; <paramref name="secret"/> is what trainers must present (null: none).</summary>
    public WorkerReplicas(NextFlowRLHost host, string? secret, ILogger<WorkerReplicas> logger)
    {
        _host = host;
        _secret = string.IsNullOrEmpty(secret) ? null : Encoding.UTF8.GetBytes(secret);
        _logger = logger;
        Fingerprint = WorkerFingerprint.Of(host);
    }

    /// <summary>What this worker runs.</summary>
    public WorkerFingerprint Fingerprint { get; }

    /// <summary>One shard at a time on this silo.</summary>
    public SemaphoreSlim Gate { get; } = new(1, 1);

    /// <summary>Why a trainer presenting <paramref name="secret"/> is refused (null when accepted).</summary>
    public string? CheckSecret(string? secret)
    {
        if (_secret is null) return null;
        var given = Encoding.UTF8.GetBytes(secret ?? "");
        return CryptographicOperations.FixedTimeEquals(given, _secret) ? null
            : "the trainer's shared secret does not match this worker's (Train:Cluster:Secret or NEXTFLOW_CLUSTER_SECRET must equal the worker's --secret)";
    }

    /// <summary>Why this worker cannot serve a trainer with <paramref name="trainer"/>'s components (null when it can).</summary>
    public string? CheckFingerprint(WorkerFingerprint trainer)
    {
        var differences = Fingerprint.DifferencesFrom(trainer);
        return differences.Count == 0 ? null : $"worker does not run this trainer's components: {string.Join("; ", differences)}";
    }

    /// <summary>The replica of run <paramref name="runId"/> at <paramref name="version"/>, or null when this silo does not hold that version.</summary>
    public INextScalePolicy? Replica(string runId, int version, string policy)
    {
        lock (_lock)
            return _replicas.TryGetValue(runId, out var r) && r.Version == version && r.Policy == policy ? r.Replica : null;
    }

    /// <summary>Loads a weights version (replacing the run's older one); the caller holds <see cref="Gate"/>.</summary>
    /// <exception cref="InvalidDataException">The files are not a checkpoint of the named policy.</exception>
    public void Load(WeightsPackage weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (Replica(weights.RunId, weights.Version, weights.Policy) is not null) return; // another activation of this silo got it first
        var dir = Path.Combine(Path.GetTempPath(), $"nextflow-worker-{Environment.ProcessId}-{weights.RunId}-{weights.Version}");
        try
        {
            for (int i = 0; i < weights.Files.Length; i++)
            {
                var path = Path.GetFullPath(Path.Combine(dir, weights.Files[i]));
                if (!path.StartsWith(Path.GetFullPath(dir) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                    throw new InvalidDataException($"weights file '{weights.Files[i]}' would be written outside the replica's folder");
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                File.WriteAllBytes(path, weights.Contents[i]);
            }
            var replica = _host.GetPolicyProvider(weights.Policy).Load(dir);
            lock (_lock)
            {
                if (_replicas.Remove(weights.RunId, out var old)) old.Replica.Dispose();
                _replicas[weights.RunId] = (weights.Version, weights.Policy, replica);
            }
            _logger.LogInformation("run {Run}: weights version {Version} of '{Policy}' loaded ({Megabytes:0.0} MB)",
                weights.RunId[..8], weights.Version, weights.Policy, weights.Contents.Sum(c => (double)c.Length) / 1e6);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>A reward of this worker's plugins.</summary>
    /// <exception cref="NextFlowRL.Hosting.UnknownComponentException">No plugin provides it.</exception>
    public NextFlowRL.Rewards.IRewardModel Reward(string name) => _host.GetReward(name);

    /// <summary>The run's rewards, resolved from this worker's plugins once per distinct list.</summary>
    public RewardEnsemble Rewards(IReadOnlyList<RewardSpecMessage> specs)
    {
        var key = string.Join("|", specs.Select(s => s.ToString()));
        lock (_lock)
        {
            if (!_ensembles.TryGetValue(key, out var ensemble))
            {
                ensemble = new RewardEnsemble(specs.Select(s => (s.ToSpec(), _host.GetReward(s.Name))).ToList(), _logger);
                _ensembles[key] = ensemble;
            }
            return ensemble;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var r in _replicas.Values) r.Replica.Dispose();
            _replicas.Clear();
        }
        Gate.Dispose();
    }
}
