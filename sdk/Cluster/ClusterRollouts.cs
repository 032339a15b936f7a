using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NextFlowRL.Policies;
using NextFlowRL.Rewards;
using NextFlowRL.Training;
using NextFlowRL.Training.Rollouts;
using Orleans.Configuration;
using Orleans.Runtime;
using Polly;
using Polly.Retry;

namespace NextFlowRL.Cluster;

/// <summary>A worker will not serve this trainer (other plugins or contracts, wrong secret): not retried, the run stops with the reason.</summary>
public sealed class WorkerRefusedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public WorkerRefusedException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public WorkerRefusedException() { }

    /// <summary>Creates the exception.</summary>
    public WorkerRefusedException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>
/// The trainer's side of a cluster: an <see cref="IRolloutExecutor"/> that sends each shard of a step to a rollout
/// worker grain, publishes the policy's weights once per version to each silo that asks, and re-runs a shard that fails
/// or times out on another activation (Polly's retry; Orleans places the new activation on a live silo). Shards are
/// joined in prompt order, so the step sees exactly what <see cref="LocalRollouts"/> with the same shard size gives.
/// </summary>
public sealed class ClusterRollouts : IRolloutExecutor
{
    private readonly IHost _client;
    private readonly IClusterClient _cluster;
    private readonly TrainerOptions _o;
    private readonly WorkerFingerprint _trainer;
    private readonly ILogger _logger;
    private readonly string _runId = Guid.NewGuid().ToString("N");
    private readonly string? _secret;
    private readonly ResiliencePipeline _retry;
    private WeightsPackage? _weights;
    private (string[] Files, byte[][] Contents)? _base;
    private readonly HashSet<SiloAddress> _basesSent = [];
    private bool _disposed;

    private ClusterRollouts(IHost client, TrainerOptions options, WorkerFingerprint trainer, string? secret, ILogger logger)
    {
        _client = client;
        _cluster = client.Services.GetRequiredService<IClusterClient>();
        _o = options;
        _trainer = trainer;
        _secret = secret;
        _logger = logger;
        _retry = BuildRetry(options.Cluster.ShardRetries, logger);
    }

    /// <summary>Grain keys of attempt <paramref name="attempt"/> of shard <paramref name="shard"/>: a retry gets a fresh activation, placed on a live silo.</summary>
    public static long GrainKey(int shard, int attempt) => (long)attempt << 32 | (uint)shard;

    /// <summary>
    /// Connects to the cluster named by <c>Train:Cluster</c> and checks that its workers run the trainer's plugins and
    /// contracts for the run's components (<paramref name="trainer"/>).
    /// </summary>
    /// <exception cref="InvalidDataException">Bad endpoints, a missing secret outside loopback, no reachable gateway.</exception>
    /// <exception cref="WorkerRefusedException">A worker differs from the trainer.</exception>
    public static async Task<ClusterRollouts> ConnectAsync(TrainerOptions options, WorkerFingerprint trainer, ILogger logger, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(trainer);
        var o = options.Cluster;
        var endpoints = o.Gateways.Select(ParseEndpoint).ToList();
        var secret = string.IsNullOrEmpty(o.Secret) ? Environment.GetEnvironmentVariable(SecretVariable) : o.Secret;
        bool loopback = string.IsNullOrWhiteSpace(o.Redis) ? endpoints.All(e => IPAddress.IsLoopback(e.Address)) : IsLoopbackRedis(o.Redis);
        if (!loopback && string.IsNullOrEmpty(secret))
            throw new InvalidDataException($"Train:Cluster names workers off this machine ({o.Where}): a shared secret is required (Train:Cluster:Secret or {SecretVariable}, the same the workers were started with)");
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.UseOrleansClient(c =>
        {
            if (string.IsNullOrWhiteSpace(o.Redis)) c.UseStaticClustering(endpoints.ToArray());
            else c.UseRedisClustering(o.Redis);
            c.Configure<Orleans.Configuration.ClusterOptions>(x => (x.ClusterId, x.ServiceId) = (o.ClusterId, o.ServiceId));
            c.Configure<ClientMessagingOptions>(x => x.ResponseTimeout = TimeSpan.FromSeconds(o.ShardTimeoutSeconds));
            c.Configure<GatewayOptions>(x => x.GatewayListRefreshPeriod = TimeSpan.FromSeconds(5));
        });
        var host = builder.Build();
        int workers;
        try
        {
            using var connect = CancellationTokenSource.CreateLinkedTokenSource(ct);
            connect.CancelAfter(TimeSpan.FromSeconds(o.JoinTimeoutSeconds));
            await host.StartAsync(connect.Token);
            workers = await WaitForWorkersAsync(host.Services.GetRequiredService<IClusterClient>(), o, connect.Token, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            host.Dispose();
            throw new InvalidDataException($"cannot reach the cluster '{o.ClusterId}' at {o.Where}: {e.Message}", e);
        }
        var rollouts = new ClusterRollouts(host, options, trainer, secret, logger) { Workers = workers };
        try
        {
            await rollouts.CheckWorkersAsync();
            return rollouts;
        }
        catch
        {
            rollouts.Dispose();
            throw;
        }
    }

    /// <summary>Waits until the cluster's membership lists <c>Train:Cluster:MinWorkers</c> active silos.</summary>
    private static async Task<int> WaitForWorkersAsync(IClusterClient cluster, NextFlowRL.Training.ClusterOptions o, CancellationToken ct, CancellationToken user)
    {
        var management = cluster.GetGrain<IManagementGrain>(0);
        int active = 0;
        try
        {
            while ((active = (await management.GetHosts(onlyActive: true, ct)).Count) < o.MinWorkers)
                await Task.Delay(TimeSpan.FromMilliseconds(250), ct);
            return active;
        }
        catch (OperationCanceledException) when (!user.IsCancellationRequested)
        {
            throw new TimeoutException($"after {o.JoinTimeoutSeconds:0} s the cluster has {active} active workers, Train:Cluster:MinWorkers asks for {o.MinWorkers}");
        }
    }

    /// <summary>The environment variable read for the shared secret when <c>Train:Cluster:Secret</c> is unset.</summary>
    public const string SecretVariable = "NEXTFLOW_CLUSTER_SECRET";

    /// <summary>The join check: asks the activations of the first step's shards what they run.</summary>
    private async Task CheckWorkersAsync()
    {
        int shards = RolloutShard.Layout(_o.PromptsPerStep, _o.Cluster.ShardPrompts).Count;
        var seen = await Task.WhenAll(Enumerable.Range(0, shards).Select(i => _cluster.GetGrain<IRolloutWorker>(GrainKey(i, 0)).Describe()));
        foreach (var worker in seen)
        {
            var differences = worker.DifferencesFrom(_trainer);
            if (differences.Count > 0)
                throw new WorkerRefusedException($"a worker of cluster '{_o.Cluster.ClusterId}' does not run this trainer's components: {string.Join("; ", differences)}");
        }
    }

    /// <summary>Whether every host of a StackExchange.Redis connection string is this machine.</summary>
    private static bool IsLoopbackRedis(string configuration)
    {
        var hosts = configuration.Split(',').Select(p => p.Trim()).Where(p => p.Length > 0 && !p.Contains('=', StringComparison.Ordinal)).ToList();
        return hosts.Count > 0 && hosts.All(h =>
        {
            var host = NextFlowRL.Training.ClusterOptions.TrySplitEndpoint(h, out var name, out _) ? name : h;
            return host == "localhost" || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));
        });
    }

    /// <summary>Parses <c>host:port</c> (host names are resolved, IPv4 first).</summary>
    /// <exception cref="InvalidDataException">Not host:port, or the host does not resolve.</exception>
    public static IPEndPoint ParseEndpoint(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!NextFlowRL.Training.ClusterOptions.TrySplitEndpoint(text, out var host, out var port))
            throw new InvalidDataException($"gateway '{text}' is not host:port");
        if (IPAddress.TryParse(host, out var ip)) return new IPEndPoint(ip, port);
        try
        {
            var addresses = Dns.GetHostAddresses(host);
            var chosen = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses.First();
            return new IPEndPoint(chosen, port);
        }
        catch (Exception e) when (e is SocketException or InvalidOperationException)
        {
            throw new InvalidDataException($"gateway '{text}': host '{host}' does not resolve ({e.Message})", e);
        }
    }

    /// <inheritdoc/>
    public RolloutBatch Run(RolloutRequest request, INextScalePolicy policy, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(policy);
        var clock = Stopwatch.StartNew();
        if (_weights is null || _weights.Version != request.Step)
            _weights = request.Adapters is null ? Pack(policy, request.Step) : PackAdapters(policy, request.Adapters, request.Step);
        double packSeconds = clock.Elapsed.TotalSeconds;
        var jobs = RolloutShard.Layout(request.Prompts.Count, _o.Cluster.ShardPrompts).Select(shard => Job(request, policy.Name, shard.First, shard.Count)).ToList();
        int retries = 0;
        var outcomes = Task.Run(() => Task.WhenAll(jobs.Select((job, i) => RunShardAsync(i, job, () => Interlocked.Increment(ref retries), cancellationToken))), cancellationToken)
            .GetAwaiter().GetResult();
        double wall = clock.Elapsed.TotalSeconds;
        var batch = RolloutBatch.Concat(outcomes.Select((x, i) => x.ToBatch(jobs[i], policy.Schedule, policy.Device)).ToList());
        // A silo runs its shards one after another: the phase cannot be shorter than the busiest silo's own work. A
        // shard's wall time is its sampling plus the scoring its sampling did not hide (the worker pipelines rewards).
        static double Wall(ShardOutcome x) => x.SampleSeconds + x.RewardWaitSeconds;
        double busiest = outcomes.GroupBy(x => x.Worker).Max(g => g.Sum(Wall));
        batch.Extra["cluster_shards"] = jobs.Count;
        batch.Extra["cluster_workers"] = outcomes.Select(x => x.Worker).Distinct().Count();
        batch.Extra["cluster_retries"] = retries;
        batch.Extra["cluster_weights_mb"] = _weights.Contents.Sum(c => (double)c.Length) / 1e6; // per version (LoRA: the adapters; the base goes once per silo)
        batch.Extra["time_cluster_pack"] = packSeconds;
        batch.Extra["time_cluster_phase"] = wall;
        batch.Extra["time_cluster_work"] = outcomes.Sum(Wall); // the shards' own work, summed over workers
        batch.Extra["time_cluster_busiest"] = busiest;
        // Wall time of the phase beyond the busiest silo's own work: transfer, coordination, waiting.
        batch.Extra["time_cluster_overhead"] = Math.Max(0, wall - packSeconds - busiest);
        return batch;
    }

    private ShardJob Job(RolloutRequest r, string policy, int first, int count) => new()
    {
        RunId = _runId,
        Version = r.Step,
        Policy = policy,
        Rewards = _o.Rewards.Select(RewardSpecMessage.From).ToArray(),
        Trainer = _trainer,
        Secret = _secret,
        Step = r.Step,
        StepSeed = r.StepSeed,
        Prompts = r.Prompts.Select(p => p.Prompt).ToArray(),
        Metadata = r.Prompts.Select(p => p.Metadata.ToDictionary()).ToArray(),
        FirstPrompt = first,
        PromptCount = count,
        GroupSize = r.GroupSize,
        Continuations = r.Continuations,
        Split = r.Split,
        CfgScale = r.Sampling.CfgScale,
        TopK = r.Sampling.TopK,
        TopP = r.Sampling.TopP,
        Temperature = r.Sampling.Temperature,
        RecordLogProbs = r.RecordLogProbs,
        RecordGuided = r.RecordGuided,
        Threads = _o.Threads,
    };

    private Task<ShardOutcome> RunShardAsync(int shard, ShardJob job, Action onRetry, CancellationToken ct) =>
        OnWorkersAsync($"step {job.Step + 1}: shard {shard}", shard, async (key, token) =>
        {
            var grain = _cluster.GetGrain<IRolloutWorker>(key);
            var silo = SiloAddress.FromParsableString(await grain.Location());
            var outcome = await WhileAliveAsync(grain.Run(job), silo, token);
            if (outcome.NeedsWeights)
            {
                var weights = _weights!;
                bool withBase = weights.Lora is not null && !HasBase(silo);
                var refused = await WhileAliveAsync(grain.LoadWeights(withBase ? WithBase(weights) : weights), silo, token);
                if (refused == WeightsPackage.NeedsBase && !withBase)
                    refused = await WhileAliveAsync(grain.LoadWeights(WithBase(weights)), silo, token); // the silo lost them (another run replaced them)
                if (refused is not null) throw new WorkerRefusedException(refused);
                if (weights.Lora is not null) lock (_basesSent) _basesSent.Add(silo);
                outcome = await WhileAliveAsync(grain.Run(job), silo, token);
            }
            if (outcome.Refusal is not null) throw new WorkerRefusedException(outcome.Refusal);
            if (outcome.NeedsWeights) throw new InvalidOperationException($"worker {outcome.Worker} lost weights version {job.Version} right after receiving them");
            return outcome;
        }, onRetry, ct);

    /// <summary>Active worker silos when the trainer joined (or last looked).</summary>
    public int Workers { get; private set; }

    /// <summary>
    /// Scores <paramref name="samples"/> with the reward <paramref name="reward"/> on the reward workers, in
    /// <paramref name="batches"/> batches at once (one per worker is the natural choice), with the shards' retries.
    /// </summary>
    /// <exception cref="WorkerRefusedException">A worker does not serve this trainer.</exception>
    public async Task<IReadOnlyList<RewardResult>> ScoreAsync(string reward, IReadOnlyList<RewardSample> samples, int batches, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (samples.Count == 0) return [];
        var layout = RolloutShard.Layout(samples.Count, (samples.Count + Math.Max(1, batches) - 1) / Math.Max(1, batches));
        var parts = await Task.WhenAll(layout.Select((b, i) =>
        {
            var job = RewardJob.From(reward, _trainer, _secret, samples.Skip(b.First).Take(b.Count).ToList());
            return OnWorkersAsync($"reward '{reward}': batch {i}", i, async (key, token) =>
            {
                var grain = _cluster.GetGrain<IRewardWorker>(key);
                var silo = SiloAddress.FromParsableString(await grain.Location());
                var outcome = await WhileAliveAsync(grain.Score(job), silo, token);
                if (outcome.Refusal is not null) throw new WorkerRefusedException(outcome.Refusal);
                if (outcome.Results.Length != b.Count) throw new InvalidDataException($"reward worker {outcome.Worker} returned {outcome.Results.Length} results for {b.Count} images");
                return outcome.Results.Select(r => r.ToResult()).ToList();
            }, null, ct);
        }));
        return parts.SelectMany(p => p).ToList();
    }

    /// <summary>
    /// Runs <paramref name="call"/> on worker grain key <see cref="GrainKey"/>(<paramref name="shard"/>, attempt), and
    /// again on the next attempt's key after a failure (Polly's retry, <c>Train:Cluster:ShardRetries</c>; refusals and
    /// cancellation are not retried).
    /// </summary>
    private async Task<T> OnWorkersAsync<T>(string what, int shard, Func<long, CancellationToken, Task<T>> call, Action? onRetry, CancellationToken ct)
    {
        var context = ResilienceContextPool.Shared.Get(ct);
        context.Properties.Set(WhatKey, what);
        if (onRetry is not null) context.Properties.Set(OnRetryKey, onRetry);
        int attempt = 0;
        try
        {
            return await _retry.ExecuteAsync(async c => await call(GrainKey(shard, attempt++), c.CancellationToken), context);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private static readonly ResiliencePropertyKey<string> WhatKey = new("nextflow.cluster.what");
    private static readonly ResiliencePropertyKey<Action> OnRetryKey = new("nextflow.cluster.onretry");

    /// <summary>The one retry pipeline of this client: a failed call goes to a fresh activation, placed on another silo.</summary>
    private static ResiliencePipeline BuildRetry(int retries, ILogger logger)
    {
        var builder = new ResiliencePipelineBuilder();
        if (retries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = retries,
                Delay = TimeSpan.FromSeconds(1),
                BackoffType = DelayBackoffType.Exponential,
                ShouldHandle = new PredicateBuilder().Handle<Exception>(e => e is not WorkerRefusedException and not OperationCanceledException),
                OnRetry = args =>
                {
                    if (args.Context.Properties.TryGetValue(OnRetryKey, out var onRetry)) onRetry();
                    args.Context.Properties.TryGetValue(WhatKey, out var what);
                    logger.LogWarning("{What} failed on its worker ({Error}); re-running it on another ({Attempt}/{Max})",
                        what, args.Outcome.Exception?.Message.ReplaceLineEndings(" "), args.AttemptNumber + 1, retries);
                    return ValueTask.CompletedTask;
                },
            });
        }
        return builder.Build();
    }

    /// <summary>
    /// Waits for a call to a worker on <paramref name="silo"/>, giving up as soon as the cluster's membership no longer
    /// lists that silo as active: a call to a silo that died is otherwise only answered by the response timeout
    /// (<c>Train:Cluster:ShardTimeoutSeconds</c>), which is sized for a slow shard, not for a dead machine.
    /// </summary>
    private async Task<T> WhileAliveAsync<T>(Task<T> call, SiloAddress silo, CancellationToken ct)
    {
        var management = _cluster.GetGrain<IManagementGrain>(0);
        while (true)
        {
            var tick = Task.Delay(MembershipPoll, ct);
            if (await Task.WhenAny(call, tick) == call) return await call;
            Dictionary<SiloAddress, SiloStatus> active;
            try
            {
                active = await management.GetHosts(onlyActive: true, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                continue; // the gateway asked may itself be the one going away: ask again on the next tick
            }
            if (!active.ContainsKey(silo))
            {
                _ = call.ContinueWith(t => t.Exception, TaskScheduler.Default); // its timeout, later, is not an unobserved error
                throw new SiloUnavailableException($"worker silo {silo} left the cluster while running the shard");
            }
        }
    }

    /// <summary>How often a running shard's silo is checked against the cluster's membership.</summary>
    private static readonly TimeSpan MembershipPoll = TimeSpan.FromSeconds(1);

    /// <summary>The policy's weights as the files of <see cref="INextScalePolicy.Save"/>.</summary>
    private WeightsPackage Pack(INextScalePolicy policy, int version)
    {
        var (files, contents) = Files(version.ToString(System.Globalization.CultureInfo.InvariantCulture), policy.Save);
        return new WeightsPackage(_runId, version, policy.Name, files, contents, _secret);
    }

    /// <summary>
    /// A LoRA version: the adapters only. The base weights (the policy's own, frozen by the adapters) are saved once and
    /// added for silos that do not hold them (<see cref="WithBase"/>).
    /// </summary>
    private WeightsPackage PackAdapters(INextScalePolicy policy, NextFlowRL.Torch.Adapters.LoraSet adapters, int version)
    {
        _base ??= Files("base", policy.Save);
        var (files, contents) = Files(version.ToString(System.Globalization.CultureInfo.InvariantCulture), dir =>
        {
            Directory.CreateDirectory(dir);
            adapters.Save(Path.Combine(dir, LoraFiles.Adapters));
        });
        return new WeightsPackage(_runId, version, policy.Name, files, contents, _secret, new LoraMessage(adapters.Rank, adapters.Alpha, adapters.Layers.ToArray()));
    }

    private WeightsPackage WithBase(WeightsPackage adapters) => adapters with { BaseFiles = _base!.Value.Files, BaseContents = _base.Value.Contents };

    private bool HasBase(SiloAddress silo)
    {
        lock (_basesSent) return _basesSent.Contains(silo);
    }

    /// <summary>The files <paramref name="write"/> puts in a folder that does not exist yet, as relative paths and bytes.</summary>
    private (string[] Files, byte[][] Contents) Files(string tag, Action<string> write)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"nextflow-publish-{_runId}-{tag}");
        try
        {
            write(dir);
            var files = Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToArray();
            return (files.Select(f => Path.GetRelativePath(dir, f).Replace('\\', '/')).ToArray(), files.Select(File.ReadAllBytes).ToArray());
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            _client.StopAsync(TimeSpan.FromSeconds(10)).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is OperationCanceledException or TimeoutException)
        {
            // Leaving: the cluster forgets a client that went away.
        }
        _client.Dispose();
    }
}
