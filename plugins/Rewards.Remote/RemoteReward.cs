using System.ComponentModel.DataAnnotations;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Grpc.Net.Client.Balancer;
using Grpc.Net.Client.Configuration;
using NextFlowRL.Imaging;
using NextFlowRL.Plugins;
using NextFlowRL.Rewards.Remote.Protocol;

namespace NextFlowRL.Rewards.Remote;

/// <summary>Options of a remote reward (section <c>Rewards:&lt;name&gt;</c>, e.g. <c>Rewards:remote</c>).</summary>
public sealed class RemoteRewardOptions : IValidatableObject
{
    /// <summary>The reward server, e.g. <c>http://127.0.0.1:5055</c> (h2c) or <c>https://rewards.example:443</c>. Checked on first use when unset.</summary>
    public string? Endpoint { get; set; }

    /// <summary>
    /// Several replicas of the reward server (instead of <see cref="Endpoint"/>; all http or all https): calls are spread
    /// over those that report SERVING on the gRPC health service, with gRPC's <c>round_robin</c> balancer; a replica that
    /// goes down costs a retry on another one.
    /// </summary>
    public List<string> Endpoints { get; set; } = [];

    /// <summary>Seconds between health checks of the <see cref="Endpoints"/> (0: only when a connection fails).</summary>
    [Range(0, 3600)]
    public double HealthCheckSeconds { get; set; } = 5;

    /// <summary>The replicas: <see cref="Endpoints"/>, or <see cref="Endpoint"/> alone.</summary>
    public IReadOnlyList<string> Replicas() => Endpoints.Count > 0 ? Endpoints : string.IsNullOrWhiteSpace(Endpoint) ? [] : [Endpoint];

    /// <summary>The reward's name on the server (e.g. <c>clip</c>, <c>hpsv3</c>).</summary>
    public string? Reward { get; set; }

    /// <summary>Longest time one <see cref="IRewardModel.ScoreAsync"/> may take, retries and backoff included.</summary>
    [Range(0.01, 86400)]
    public double TimeoutSeconds { get; set; } = 60;

    /// <summary>Extra attempts after an UNAVAILABLE or DEADLINE_EXCEEDED answer (while time is left).</summary>
    [Range(0, 100)]
    public int Retries { get; set; } = 2;

    /// <summary>Wait before the first retry; doubles for each further retry.</summary>
    [Range(0, 600_000)]
    public int RetryBackoffMilliseconds { get; set; } = 200;

    /// <summary>Optional timeout of one attempt; null lets one attempt use all remaining time.</summary>
    [Range(0.01, 86400)]
    public double? AttemptTimeoutSeconds { get; set; }

    /// <summary>Bearer token sent as <c>authorization: Bearer &lt;token&gt;</c>; null sends none.</summary>
    public string? Token { get; set; }

    /// <summary>Largest request and response message in bytes (PNG images included).</summary>
    [Range(1024, int.MaxValue)]
    public int MaxMessageBytes { get; set; } = 64 * 1024 * 1024;

    /// <inheritdoc/>
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext) =>
        AddressProblems().Select(p => new ValidationResult(p.Message, p.Members));

    /// <summary>Every problem with the server addresses, and the options it concerns; checked at start and again on first use.</summary>
    internal IReadOnlyList<(string Message, string[] Members)> AddressProblems()
    {
        var problems = new List<(string, string[])>();
        if (Endpoint is { Length: > 0 } && Endpoints.Count > 0)
            problems.Add(("give Endpoint or Endpoints, not both", [nameof(Endpoint), nameof(Endpoints)]));
        var schemes = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in Replicas())
        {
            if (Uri.TryCreate(e, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https") schemes.Add(uri.Scheme);
            else problems.Add(($"Endpoint '{e}' is not an absolute http:// or https:// address", [Endpoints.Count > 0 ? nameof(Endpoints) : nameof(Endpoint)]));
        }
        if (schemes.Count > 1) problems.Add(("Endpoints must all be http:// or all https://", [nameof(Endpoints)]));
        return problems;
    }
}

/// <summary>A remote reward call that failed as a whole; the message is one line naming the server.</summary>
public sealed class RemoteRewardException : Exception
{
    /// <summary>Creates the exception.</summary>
    public RemoteRewardException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public RemoteRewardException(string message, Exception inner) : base(message, inner) { }

    /// <summary>Creates the exception.</summary>
    public RemoteRewardException() { }
}

/// <summary>
/// Scores images on a reward server that implements <c>reward_service.proto</c> (e.g. <c>NextFlowRL.RewardServer</c>
/// or a Python server). Images travel as PNG. Retries UNAVAILABLE and DEADLINE_EXCEEDED with exponential backoff;
/// never takes longer than <see cref="RemoteRewardOptions.TimeoutSeconds"/>. Per-sample server errors become
/// <see cref="RewardResult.Failed"/>; everything else (server down, slow, wrong token, oversized or malformed messages)
/// throws <see cref="RemoteRewardException"/> with one clear line.
/// </summary>
public sealed class RemoteReward : IRewardModel, IDisposable
{
    private readonly RemoteRewardOptions _options;
    private readonly object _gate = new();
    private GrpcChannel? _channel;
    private RewardService.RewardServiceClient? _client;
    private ServiceProvider? _services;

    /// <summary>Creates the reward (connects lazily).</summary>
    public RemoteReward(string name, RemoteRewardOptions options)
    {
        Name = name;
        _options = options ?? throw new ArgumentNullException(nameof(options));
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public async Task<IReadOnlyList<RewardResult>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (samples.Count == 0) return [];
        var (client, endpoint) = Client();
        var reward = string.IsNullOrWhiteSpace(_options.Reward)
            ? throw new RemoteRewardException($"{Name}: Rewards:{Name}:Reward is not set (the reward's name on the server)")
            : _options.Reward;

        var request = new ScoreRequest { Reward = reward };
        foreach (var s in samples)
        {
            var sample = new Sample { Png = ByteString.CopyFrom(ImageFile.EncodePng(s.Image)), Prompt = s.Prompt };
            foreach (var (k, v) in s.Metadata) sample.Metadata[k] = v;
            request.Samples.Add(sample);
        }
        int size = request.CalculateSize();
        if (size > _options.MaxMessageBytes)
            throw new RemoteRewardException($"{Name}: request of {size} bytes ({samples.Count} images) exceeds MaxMessageBytes {_options.MaxMessageBytes}; send fewer or smaller images per call or raise the limit on both sides");

        var headers = new Metadata();
        if (!string.IsNullOrEmpty(_options.Token)) headers.Add("authorization", "Bearer " + _options.Token);

        // Our retry loop rather than gRPC's retry policy (measured 2026-12-03, Grpc.Net.Client 2.85): with the policy
        // (RetryableStatusCodes UNAVAILABLE), a refused connection failed the call at once, "Error connecting to
        // subchannel", after 1 attempt in 0.1 s (Server_down_fails_after_bounded_retries), and the policy has no
        // per-attempt deadline (AttemptTimeoutSeconds; hedging would keep the slow attempts running on the server).
        var timeout = TimeSpan.FromSeconds(_options.TimeoutSeconds);
        var deadline = DateTime.UtcNow + timeout;
        var backoff = TimeSpan.FromMilliseconds(_options.RetryBackoffMilliseconds);
        int attempt = 0;
        ScoreResponse response;
        while (true)
        {
            attempt++;
            var attemptDeadline = _options.AttemptTimeoutSeconds is { } a ? Min(deadline, DateTime.UtcNow + TimeSpan.FromSeconds(a)) : deadline;
            try
            {
                response = await client.ScoreAsync(request, headers, attemptDeadline, cancellationToken).ResponseAsync.ConfigureAwait(false);
                break;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException(cancellationToken);
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded
                                         && !IsMalformed(e) && attempt <= _options.Retries && DateTime.UtcNow + backoff < deadline)
            {
                await Task.Delay(backoff, cancellationToken).ConfigureAwait(false);
                backoff *= 2;
            }
            catch (RpcException e)
            {
                throw Describe(e, endpoint, attempt);
            }
        }

        if (response.Results.Count != samples.Count)
            throw new RemoteRewardException($"{Name}: malformed response from {endpoint}: {response.Results.Count} results for {samples.Count} samples");
        var results = new RewardResult[samples.Count];
        for (int i = 0; i < results.Length; i++)
        {
            var r = response.Results[i];
            if (!string.IsNullOrEmpty(r.Error))
            {
                results[i] = RewardResult.Failed(r.Error);
                continue;
            }
            if (!double.IsFinite(r.Score))
            {
                results[i] = RewardResult.Failed($"server returned a non-finite score ({r.Score}) without an error");
                continue;
            }
            results[i] = new RewardResult(
                r.Score,
                r.Components.ToDictionary(p => p.Key, p => p.Value),
                r.Regions.Select(g => new RewardRegion(g.X, g.Y, g.Width, g.Height, g.Confidence, g.Label, g.HasTarget ? g.Target : null)).ToList());
        }
        return results;
    }

    private RemoteRewardException Describe(RpcException e, string endpoint, int attempts)
    {
        string tries = attempts == 1 ? "1 attempt" : $"{attempts} attempts";
        string detail = e.Status.Detail;
        var cause = e.Status.DebugException;
        while (cause?.InnerException is not null) cause = cause.InnerException;
        if (cause is not null && !detail.Contains(cause.Message, StringComparison.Ordinal))
            detail = $"{detail} ({cause.Message})";
        string message = IsMalformed(e) ? $"malformed response from {endpoint}: {detail}" : e.StatusCode switch
        {
            StatusCode.Unavailable => $"reward server {endpoint} is unavailable ({tries}): {detail}",
            StatusCode.DeadlineExceeded => $"reward server {endpoint} did not answer within {_options.TimeoutSeconds:0.###} s ({tries})",
            StatusCode.Unauthenticated => $"reward server {endpoint} rejected the credentials: {detail} (check Rewards:{Name}:Token)",
            StatusCode.ResourceExhausted => $"message too large for {endpoint}: {detail} (MaxMessageBytes is {_options.MaxMessageBytes}; the server has its own limit)",
            StatusCode.NotFound => $"reward server {endpoint}: {detail}",
            _ => $"reward server {endpoint} failed with {e.StatusCode}: {detail}",
        };
        return new RemoteRewardException($"{Name}: {message}", e);
    }

    /// <summary>The response could not be parsed (the client reports it as UNAVAILABLE or INTERNAL).</summary>
    private static bool IsMalformed(RpcException e) =>
        e.Status.DebugException is InvalidProtocolBufferException
        || e.Status.Detail.Contains("InvalidProtocolBuffer", StringComparison.Ordinal)
        || e.Status.Detail.Contains("deserializ", StringComparison.OrdinalIgnoreCase);

    private static DateTime Min(DateTime a, DateTime b) => a < b ? a : b;

    private (RewardService.RewardServiceClient Client, string Endpoint) Client()
    {
        var replicas = _options.Replicas();
        if (replicas.Count == 0)
            throw new RemoteRewardException($"{Name}: Rewards:{Name}:Endpoint is not set (e.g. http://127.0.0.1:5055; or Endpoints for several replicas)");
        string endpoint = replicas.Count == 1 ? replicas[0] : $"[{string.Join(", ", replicas)}]";
        lock (_gate)
        {
            if (_client is not null) return (_client, endpoint);
            if (_options.AddressProblems() is { Count: > 0 } problems)
                throw new RemoteRewardException($"{Name}: {string.Join("; ", problems.Select(p => p.Message))}");
            var uris = replicas.Select(e => new Uri(e, UriKind.Absolute)).ToList();
            var handler = new SocketsHttpHandler
            {
                ConnectTimeout = TimeSpan.FromSeconds(Math.Min(_options.TimeoutSeconds, 30)),
                EnableMultipleHttp2Connections = true,
                PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            };
            var channelOptions = new GrpcChannelOptions
            {
                HttpHandler = handler,
                DisposeHttpClient = true,
                MaxSendMessageSize = _options.MaxMessageBytes,
                MaxReceiveMessageSize = _options.MaxMessageBytes,
                MaxRetryAttempts = 0,
            };
            if (uris.Count == 1)
            {
                _channel = GrpcChannel.ForAddress(uris[0], channelOptions);
            }
            else
            {
                // Several replicas: gRPC's own balancing, fed by a resolver that keeps only healthy replicas.
                var services = new ServiceCollection();
                services.AddSingleton<ResolverFactory>(new ReplicaResolverFactory(uris, TimeSpan.FromSeconds(_options.HealthCheckSeconds)));
                _services = services.BuildServiceProvider();
                channelOptions.ServiceProvider = _services;
                channelOptions.Credentials = uris[0].Scheme == "https" ? ChannelCredentials.SecureSsl : ChannelCredentials.Insecure;
                channelOptions.ServiceConfig = new ServiceConfig { LoadBalancingConfigs = { new RoundRobinConfig() } };
                _channel = GrpcChannel.ForAddress($"{ReplicaResolverFactory.Scheme}:///{Name}", channelOptions);
            }
            _client = new RewardService.RewardServiceClient(_channel);
            return (_client, endpoint);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_gate)
        {
            _channel?.Dispose();
            _services?.Dispose();
        }
    }
}

/// <summary>Registration of remote rewards.</summary>
public static class RemoteRewardExtensions
{
    /// <summary>
    /// Adds a remote reward under <paramref name="name"/>, options from <c>Rewards:&lt;name&gt;</c>. Register several
    /// names to use several server rewards at once (e.g. <c>hpsv3</c> and <c>paddleocr</c>).
    /// </summary>
    public static INextFlowRLBuilder AddRemoteReward(this INextFlowRLBuilder builder, string name = "remote", Action<RemoteRewardOptions>? configure = null)
    {
        builder.AddComponentOptions(ComponentKind.Reward, name, configure);
        return builder.AddReward(name, "scores on a reward server over gRPC (reward_service.proto)", (sp, n) =>
            new RemoteReward(n, sp.GetRequiredService<IOptionsMonitor<RemoteRewardOptions>>().Get(n)));
    }
}

/// <summary>
/// Plugin entry: registers <c>remote</c>, plus one remote reward for every configuration section
/// <c>Rewards:&lt;name&gt;</c> whose <c>Type</c> is <c>remote</c> (e.g. <c>Rewards:hpsv3</c> and <c>Rewards:paddleocr</c>
/// pointing at Python servers), so several server rewards can be used side by side.
/// </summary>
public sealed class RemotePlugin : INextFlowRLPlugin
{
    /// <summary>The <c>Type</c> value that declares an extra remote reward.</summary>
    public const string TypeValue = "remote";

    /// <inheritdoc/>
    public void Register(INextFlowRLBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddRemoteReward();
        foreach (var section in builder.Configuration.GetSection("Rewards").GetChildren())
        {
            if (section.Key != "remote" && string.Equals(section["Type"], TypeValue, StringComparison.OrdinalIgnoreCase))
                builder.AddRemoteReward(section.Key);
        }
    }
}
