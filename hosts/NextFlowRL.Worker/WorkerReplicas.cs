using System.Security.Cryptography;
using System.Text;
using NextFlowRL.Cluster;
using NextFlowRL.Hosting;
using NextFlowRL.Policies;
using NextFlowRL.Torch.Adapters;
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
    private readonly Dictionary<string, (int Version, string Policy, INextScalePolicy Replica, LoraSet? Adapters)> _replicas = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RewardEnsemble> _ensembles = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private readonly List<string> _loaded = []; // runs, least recently loaded first

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

    /// <summary>
    /// Loads a weights version (replacing the run's older one); the caller holds <see cref="Gate"/>. A LoRA version
    /// replaces only the adapters of the run's replica, built from the base weights sent with the first version.
    /// </summary>
    /// <returns>null, or <see cref="WeightsPackage.NeedsBase"/> for adapters of a run whose base this silo does not hold.</returns>
    /// <exception cref="InvalidDataException">The files are not a checkpoint of the named policy, or adapters that do not fit it.</exception>
    public string? Load(WeightsPackage weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (Replica(weights.RunId, weights.Version, weights.Policy) is not null) return null; // another activation of this silo got it first
        if (weights.Lora is { } lora)
        {
            if (weights.BaseFiles is { Length: > 0 } baseFiles)
            {
                var replica = WithFiles(weights, "base", baseFiles, weights.BaseContents!, dir => _host.GetPolicyProvider(weights.Policy).Load(dir));
                try
                {
                    if (replica is not IAdaptablePolicy adaptable)
                        throw new InvalidDataException($"policy '{weights.Policy}' takes no LoRA adapters on this worker");
                    var adapters = LoraSet.Attach(adaptable.AdaptableModule, lora.Rank, lora.Alpha, lora.Layers);
                    Replace(weights.RunId, (-1, weights.Policy, replica, adapters));
                }
                catch
                {
                    replica.Dispose();
                    throw;
                }
            }
            (int, string, INextScalePolicy, LoraSet?) current;
            lock (_lock)
            {
                if (!_replicas.TryGetValue(weights.RunId, out current) || current.Item4 is null || current.Item2 != weights.Policy) return WeightsPackage.NeedsBase;
            }
            WithFiles(weights, "adapters", weights.Files, weights.Contents, dir =>
            {
                current.Item4!.Load(Path.Combine(dir, LoraFiles.Adapters));
                return true;
            });
            lock (_lock)
            {
                _replicas[weights.RunId] = current with { Item1 = weights.Version };
                _loaded.Remove(weights.RunId);
                _loaded.Add(weights.RunId);
            }
        }
        else
        {
            var replica = WithFiles(weights, "full", weights.Files, weights.Contents, dir => _host.GetPolicyProvider(weights.Policy).Load(dir));
            Replace(weights.RunId, (weights.Version, weights.Policy, replica, null));
        }
        _logger.LogInformation("run {Run}: weights version {Version} of '{Policy}' loaded ({Megabytes:0.0} MB{Kind})", weights.RunId[..Math.Min(8, weights.RunId.Length)], weights.Version, weights.Policy,
            (weights.Contents.Sum(c => (double)c.Length) + (weights.BaseContents?.Sum(c => (double)c.Length) ?? 0)) / 1e6,
            weights.Lora is null ? "" : weights.BaseFiles is { Length: > 0 } ? ", LoRA adapters and base" : ", LoRA adapters");
        return null;
    }

    /// <summary>Runs whose replicas a silo keeps; the one whose weights came longest ago goes first (a finished run's replica would otherwise stay for good).</summary>
    public const int MaxRuns = 2;

    private void Replace(string runId, (int, string, INextScalePolicy, LoraSet?) replica)
    {
        lock (_lock)
        {
            if (_replicas.Remove(runId, out var old)) Release(old);
            _loaded.Remove(runId);
            while (_loaded.Count >= MaxRuns)
            {
                var oldest = _loaded[0];
                _loaded.RemoveAt(0);
                if (_replicas.Remove(oldest, out var evicted)) Release(evicted);
                _logger.LogInformation("run {Run}: replica released (a silo keeps {Max} runs)", oldest[..Math.Min(8, oldest.Length)], MaxRuns);
            }
            _replicas[runId] = replica;
            _loaded.Add(runId);
        }
    }

    private static void Release((int Version, string Policy, INextScalePolicy Replica, LoraSet? Adapters) r)
    {
        r.Adapters?.Dispose();
        r.Replica.Dispose();
    }

    /// <summary>Writes <paramref name="files"/> into a fresh folder, runs <paramref name="use"/> on it, deletes it.</summary>
    private static T WithFiles<T>(WeightsPackage weights, string kind, string[] files, byte[][] contents, Func<string, T> use)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"nextflow-worker-{Environment.ProcessId}-{weights.RunId}-{weights.Version}-{kind}");
        try
        {
            for (int i = 0; i < files.Length; i++)
            {
                var path = Path.GetFullPath(Path.Combine(dir, files[i]));
                if (!path.StartsWith(Path.GetFullPath(dir) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                    throw new InvalidDataException($"weights file '{files[i]}' would be written outside the replica's folder");
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                File.WriteAllBytes(path, contents[i]);
            }
            return use(dir);
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
            foreach (var r in _replicas.Values) Release(r);
            _replicas.Clear();
        }
        Gate.Dispose();
    }
}
