using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Grpc.Net.Client.Balancer;
using Microsoft.Extensions.Logging;

namespace NextFlowRL.Rewards.Remote;

/// <summary>
/// Resolves the replicas of a reward service to those that report <c>SERVING</c> on the standard gRPC health service
/// (<c>grpc.health.v1.Health/Check</c>), asked every <c>HealthCheckSeconds</c> and whenever the channel's
/// <c>round_robin</c> balancer loses a connection. When no replica is serving, all are returned: calls then fail with
/// UNAVAILABLE (retried) rather than never being sent.
/// </summary>
internal sealed class ReplicaResolver : PollingResolver
{
    private readonly IReadOnlyList<Uri> _replicas;
    private readonly TimeSpan _interval;
    private readonly Dictionary<Uri, GrpcChannel> _health = [];
    private readonly ILogger _logger;
    private Timer? _timer;

    public ReplicaResolver(IReadOnlyList<Uri> replicas, TimeSpan interval, ILoggerFactory loggerFactory) : base(loggerFactory)
    {
        _replicas = replicas;
        _interval = interval;
        _logger = loggerFactory.CreateLogger<ReplicaResolver>();
        foreach (var uri in replicas) _health[uri] = GrpcChannel.ForAddress(uri, new GrpcChannelOptions { MaxRetryAttempts = 0 });
    }

    /// <summary>Replicas seen serving at the last check, for messages.</summary>
    public IReadOnlyList<Uri> Serving { get; private set; } = [];

    protected override void OnStarted()
    {
        base.OnStarted();
        if (_interval > TimeSpan.Zero) _timer = new Timer(_ => Refresh(), null, _interval, _interval);
    }

    protected override async Task ResolveAsync(CancellationToken cancellationToken)
    {
        var checks = await Task.WhenAll(_replicas.Select(async uri => (uri, serving: await IsServingAsync(uri, cancellationToken).ConfigureAwait(false)))).ConfigureAwait(false);
        var serving = checks.Where(c => c.serving).Select(c => c.uri).ToList();
        if (serving.Count < _replicas.Count)
            _logger.LogWarning("reward replicas not serving: {Replicas}", string.Join(", ", checks.Where(c => !c.serving).Select(c => c.uri)));
        Serving = serving;
        var chosen = serving.Count > 0 ? serving : _replicas;
        Listener(ResolverResult.ForResult(chosen.Select(u => new BalancerAddress(u.Host, u.Port)).ToList()));
    }

    private async Task<bool> IsServingAsync(Uri replica, CancellationToken cancellationToken)
    {
        try
        {
            var reply = await new Health.HealthClient(_health[replica])
                .CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(2), cancellationToken: cancellationToken).ResponseAsync.ConfigureAwait(false);
            return reply.Status == HealthCheckResponse.Types.ServingStatus.Serving;
        }
        catch (RpcException)
        {
            return false;
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _timer?.Dispose();
            foreach (var channel in _health.Values) channel.Dispose();
        }
        base.Dispose(disposing);
    }
}

/// <summary>Creates the <see cref="ReplicaResolver"/> of a channel addressed <c>replicas:///name</c>.</summary>
internal sealed class ReplicaResolverFactory(IReadOnlyList<Uri> replicas, TimeSpan interval) : ResolverFactory
{
    public const string Scheme = "replicas";

    public override string Name => Scheme;

    public override Resolver Create(ResolverOptions options) => new ReplicaResolver(replicas, interval, options.LoggerFactory);
}
