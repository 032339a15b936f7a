using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Grpc.Core;
using Grpc.Core.Interceptors;
using NextFlowRL.Imaging;
using NextFlowRL.Rewards;
using NextFlowRL.Rewards.Remote.Protocol;

namespace NextFlowRL.RewardServer;

/// <summary>Settings of the reward server (section <c>RewardServer</c>; command-line flags override them).</summary>
public sealed class RewardServerOptions
{
    /// <summary>The configuration section name.</summary>
    public const string Section = "RewardServer";

    /// <summary>When set, every call must send <c>authorization: Bearer &lt;Token&gt;</c> (health checks excepted).</summary>
    public string? Token { get; set; }

    /// <summary>Score calls running at once; more wait (until their deadline). Each reward also runs one batch at a time.</summary>
    [System.ComponentModel.DataAnnotations.Range(1, 1024, ErrorMessage = "RewardServer:MaxConcurrency must be between 1 and 1024")]
    public int MaxConcurrency { get; set; } = 2;

    /// <summary>Largest request and response message in bytes.</summary>
    [System.ComponentModel.DataAnnotations.Range(1024, int.MaxValue, ErrorMessage = "RewardServer:MaxMessageBytes must be at least 1024")]
    public int MaxMessageBytes { get; set; } = 64 * 1024 * 1024;
}

/// <summary>The gRPC RewardService over an <see cref="IRewardCatalog"/>.</summary>
public sealed class RewardServiceImpl : RewardService.RewardServiceBase
{
    private readonly IRewardCatalog _catalog;
    private readonly SemaphoreSlim _slots;
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _perReward = new(StringComparer.Ordinal);
    private readonly ILogger<RewardServiceImpl> _log;

    /// <summary>Creates the service.</summary>
    public RewardServiceImpl(IRewardCatalog catalog, ConcurrencyGate gate, ILogger<RewardServiceImpl> log)
    {
        _catalog = catalog;
        _slots = gate.Slots;
        _log = log;
    }

    /// <inheritdoc/>
    public override Task<ListRewardsResponse> ListRewards(ListRewardsRequest request, ServerCallContext context)
    {
        var response = new ListRewardsResponse();
        response.Rewards.AddRange(_catalog.List().Select(r => new RewardInfo { Name = r.Name, Description = r.Description }));
        return Task.FromResult(response);
    }

    /// <inheritdoc/>
    public override async Task<ScoreResponse> Score(ScoreRequest request, ServerCallContext context)
    {
        if (string.IsNullOrWhiteSpace(request.Reward))
            throw new RpcException(new Status(StatusCode.InvalidArgument, "the request names no reward"));
        if (request.Samples.Count == 0)
            throw new RpcException(new Status(StatusCode.InvalidArgument, "the request has no samples"));
        IRewardModel? reward;
        try
        {
            reward = _catalog.Find(request.Reward);
        }
        catch (Exception e)
        {
            throw new RpcException(new Status(StatusCode.Internal, $"reward '{request.Reward}' cannot be created: {OneLine(e)}"));
        }
        if (reward is null)
        {
            var names = _catalog.List().Select(r => r.Name).ToList();
            throw new RpcException(new Status(StatusCode.NotFound, $"reward '{request.Reward}' is not served here; served: {(names.Count == 0 ? "none" : string.Join(", ", names))}"));
        }

        // Decode first: an undecodable image fails only its own sample.
        var results = new SampleResult[request.Samples.Count];
        var samples = new List<RewardSample>();
        var positions = new List<int>();
        for (int i = 0; i < request.Samples.Count; i++)
        {
            var s = request.Samples[i];
            try
            {
                var image = ImageFile.Decode(s.Png.Span, $"sample {i}");
                samples.Add(new RewardSample(image, s.Prompt, s.Metadata.ToDictionary(p => p.Key, p => p.Value)));
                positions.Add(i);
            }
            catch (Exception e)
            {
                results[i] = new SampleResult { Score = double.NaN, Error = $"image is not a decodable PNG: {OneLine(e)}" };
            }
        }

        var ct = context.CancellationToken;
        await _slots.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var gate = _perReward.GetOrAdd(request.Reward, _ => new SemaphoreSlim(1, 1));
            await gate.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                IReadOnlyList<RewardResult> scored;
                try
                {
                    scored = samples.Count == 0 ? [] : await reward.ScoreAsync(samples, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    throw new RpcException(new Status(StatusCode.Cancelled, "the call was cancelled"));
                }
                catch (Exception e)
                {
                    _log.LogWarning("reward {Reward} failed on a batch of {Count}: {Error}", request.Reward, samples.Count, OneLine(e));
                    throw new RpcException(new Status(StatusCode.Internal, $"reward '{request.Reward}' failed: {OneLine(e)}"));
                }
                if (scored.Count != samples.Count)
                    throw new RpcException(new Status(StatusCode.Internal, $"reward '{request.Reward}' returned {scored.Count} results for {samples.Count} samples"));
                for (int j = 0; j < scored.Count; j++)
                    results[positions[j]] = ToProto(scored[j]);
            }
            finally
            {
                gate.Release();
            }
        }
        finally
        {
            _slots.Release();
        }
        var response = new ScoreResponse();
        response.Results.AddRange(results);
        return response;
    }

    private static SampleResult ToProto(RewardResult r)
    {
        var result = new SampleResult { Score = r.Score, Error = r.Error ?? "" };
        foreach (var (k, v) in r.Components) result.Components[k] = v;
        foreach (var g in r.Regions)
        {
            var region = new Region { X = g.X, Y = g.Y, Width = g.Width, Height = g.Height, Confidence = g.Confidence, Label = g.Label };
            if (g.Target is not null) region.Target = g.Target;
            result.Regions.Add(region);
        }
        return result;
    }

    internal static string OneLine(Exception e) => e.Message.ReplaceLineEndings(" ");
}

/// <summary>The process-wide limit on concurrent score calls.</summary>
public sealed class ConcurrencyGate
{
    /// <summary>Creates the gate.</summary>
    public ConcurrencyGate(int slots) => Slots = new SemaphoreSlim(Math.Max(1, slots), Math.Max(1, slots));

    /// <summary>The slots.</summary>
    public SemaphoreSlim Slots { get; }
}

/// <summary>Checks the bearer token on every call except the gRPC health service.</summary>
public sealed class BearerTokenInterceptor : Interceptor
{
    private readonly byte[]? _expected;

    /// <summary>Creates the interceptor; a null or empty token lets every call through.</summary>
    public BearerTokenInterceptor(RewardServerOptions options) =>
        _expected = string.IsNullOrEmpty(options.Token) ? null : Encoding.UTF8.GetBytes("Bearer " + options.Token);

    /// <inheritdoc/>
    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, context);
    }

    private void Check(ServerCallContext context)
    {
        if (_expected is null || context.Method.StartsWith("/grpc.health.", StringComparison.Ordinal)) return;
        var header = context.RequestHeaders.GetValue("authorization");
        if (header is null)
            throw new RpcException(new Status(StatusCode.Unauthenticated, "missing bearer token"));
        if (!CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header), _expected))
            throw new RpcException(new Status(StatusCode.Unauthenticated, "wrong bearer token"));
    }
}
