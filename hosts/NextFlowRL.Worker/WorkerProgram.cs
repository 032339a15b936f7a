using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using NextFlowRL.Cluster;
using NextFlowRL.Hosting;
using Orleans.Configuration;
using Orleans.Hosting;

namespace NextFlowRL.Worker;

/// <summary>The <c>nextflow-worker</c> command line: starts a silo and serves rollout workers until stopped.</summary>
public static class WorkerProgram
{
    /// <summary>Exit code for bad options or configuration.</summary>
    public const int UsageError = 2;

    /// <summary>The root command.</summary>
    public static RootCommand Create()
    {
        var membership = new Option<string?>("--membership") { Description = "localhost (one machine, default) or redis (many machines). Worker:Membership." };
        var siloPort = new Option<int?>("--silo-port") { Description = "Port silos talk on (default 11111). Worker:SiloPort." };
        var gatewayPort = new Option<int?>("--gateway-port") { Description = "Port the trainer connects to (default 30000). Worker:GatewayPort." };
        var primary = new Option<string?>("--primary") { Description = "localhost membership: the primary silo's host:silo-port; omit on the primary. Worker:Primary." };
        var redis = new Option<string?>("--redis") { Description = "redis membership: the Redis connection string. Worker:Redis." };
        var advertise = new Option<string?>("--advertise") { Description = "redis membership: the IP address other machines reach this one on. Worker:Advertise." };
        var clusterId = new Option<string?>("--cluster-id") { Description = "Orleans cluster id (default nextflow). Worker:ClusterId." };
        var secret = new Option<string?>("--secret") { Description = $"Shared secret trainers must present (also {ClusterRollouts.SecretVariable}); required off loopback. Worker:Secret." };
        var plugins = new Option<string[]>("--plugins") { Description = "Extra plugin directory (repeatable; also Plugins:Directories).", AllowMultipleArgumentsPerToken = false };
        var config = new Option<string?>("--config") { Description = "JSON configuration file." };
        var set = new Option<string[]>("--set") { Description = "One configuration value, Section:Key=Value (repeatable)." };
        var root = new RootCommand("nextflow-worker: an Orleans silo serving NextFlowRL rollout workers to a trainer run with Train:Cluster (docs/scaling.md).")
        {
            membership, siloPort, gatewayPort, primary, redis, advertise, clusterId, secret, plugins, config, set,
        };
        root.SetAction(async (parse, ct) =>
        {
            IConfigurationRoot configuration;
            var options = new WorkerOptions();
            IReadOnlyList<string> mistyped;
            try
            {
                configuration = NextFlowRLConfiguration.Build(parse.GetValue(set) ?? [], parse.GetValue(config));
                mistyped = ConfigurationChecks.Bind(configuration.GetSection(WorkerOptions.Section), options);
            }
            catch (Exception e) when (e is ConfigurationException or InvalidOperationException)
            {
                return Fail(e.Message);
            }
            options.Membership = parse.GetValue(membership) ?? options.Membership;
            options.SiloPort = parse.GetValue(siloPort) ?? options.SiloPort;
            options.GatewayPort = parse.GetValue(gatewayPort) ?? options.GatewayPort;
            options.Primary = parse.GetValue(primary) ?? options.Primary;
            options.Redis = parse.GetValue(redis) ?? options.Redis;
            options.Advertise = parse.GetValue(advertise) ?? options.Advertise;
            options.ClusterId = parse.GetValue(clusterId) ?? options.ClusterId;
            options.Secret = parse.GetValue(secret) ?? options.Secret;
            if (string.IsNullOrEmpty(options.Secret)) options.Secret = Environment.GetEnvironmentVariable(ClusterRollouts.SecretVariable);
            var problems = mistyped.Concat(options.Problems()).ToList();
            if (problems.Count > 0) return Fail(string.Join(Environment.NewLine + "error: ", problems));
            return await RunAsync(options, configuration, parse.GetValue(plugins) ?? [], ct);
        });
        return root;
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"error: {message}");
        return UsageError;
    }

    /// <summary>Builds the silo's host (plugins loaded, membership configured) without starting it.</summary>
    /// <exception cref="ConfigurationException">Invalid plugin or component configuration.</exception>
    /// <exception cref="InvalidDataException">The primary's host name does not resolve.</exception>
    public static IHost Build(WorkerOptions options, IConfiguration configuration, IEnumerable<string> pluginDirectories)
    {
        ArgumentNullException.ThrowIfNull(options);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, Configuration = new ConfigurationManager() });
        builder.Configuration.AddConfiguration(configuration);
        builder.Logging.AddConfiguration(configuration.GetSection("Logging"));
        builder.Logging.AddSimpleConsole(o => (o.SingleLine, o.TimestampFormat) = (true, "HH:mm:ss "));
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddFilter("Orleans", LogLevel.Warning);
        builder.Logging.AddFilter("Orleans.Runtime.Silo", LogLevel.Error);
        builder.Logging.AddFilter("Orleans.Runtime.Watchdog", LogLevel.Error); // at start it reports the process's idle time before the silo existed // the ServerGC note: workers run the trainer's workstation GC on purpose
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.Logging.AddFilter("Polly", LogLevel.Warning);
        var nextflow = NextFlowRLHost.Build(configuration, pluginDirectories: pluginDirectories.Select(Path.GetFullPath));
        nextflow.EnsureValidOptions();
        builder.Services.AddSingleton(nextflow);
        builder.Services.AddSingleton(sp => new WorkerReplicas(nextflow, options.Secret, sp.GetRequiredService<ILogger<WorkerReplicas>>()));
        builder.UseOrleans(silo =>
        {
            if (options.Membership == "redis")
            {
                silo.UseRedisClustering(options.Redis!);
                var address = options.Advertise is { } a ? IPAddress.Parse(a) : FirstIPv4();
                silo.ConfigureEndpoints(address, options.SiloPort, options.GatewayPort, listenOnAnyHostAddress: true);
                silo.Configure<ClusterOptions>(c => (c.ClusterId, c.ServiceId) = (options.ClusterId, options.ServiceId));
            }
            else
            {
                // The primary names itself: Orleans' default primary is port 11111 whatever this silo's port is.
                var primaryEndpoint = string.IsNullOrEmpty(options.Primary) ? new IPEndPoint(IPAddress.Loopback, options.SiloPort) : ClusterRollouts.ParseEndpoint(options.Primary);
                silo.UseLocalhostClustering(options.SiloPort, options.GatewayPort, primaryEndpoint, options.ServiceId, options.ClusterId);
            }
            // Failure detection and other membership settings: Orleans:ClusterMembership (e.g. ProbeTimeout=00:00:02).
            silo.Configure<ClusterMembershipOptions>(configuration.GetSection("Orleans:ClusterMembership"));
            silo.Services.AddPlacementDirector<ShardPlacementStrategy, ShardPlacementDirector>();
        });
        return builder.Build();
    }

    private static async Task<int> RunAsync(WorkerOptions options, IConfiguration configuration, IEnumerable<string> pluginDirectories, CancellationToken ct)
    {
        IHost host;
        try
        {
            host = Build(options, configuration, pluginDirectories);
        }
        catch (Exception e) when (e is ConfigurationException or InvalidDataException) // InvalidDataException: a primary whose host does not resolve
        {
            return Fail(e.Message);
        }
        using (host)
        {
            var replicas = host.Services.GetRequiredService<WorkerReplicas>();
            var log = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("nextflow-worker");
            log.LogInformation("components: {Components}", string.Join(", ", replicas.Fingerprint.Components.Keys.Order(StringComparer.Ordinal)));
            try
            {
                await host.StartAsync(ct);
            }
            catch (Exception e) when (e is SocketException or OrleansException or TimeoutException or InvalidOperationException)
            {
                Console.Error.WriteLine($"error: the silo did not start ({e.GetBaseException().Message}); is the port in use, or the primary ({options.Primary ?? "none"}) down?");
                return 1;
            }
            log.LogInformation("serving rollout workers: cluster '{Cluster}', {Membership} membership, gateway port {Gateway}, silo port {Silo}{Secret}",
                options.ClusterId, options.Membership, options.GatewayPort, options.SiloPort, string.IsNullOrEmpty(options.Secret) ? "" : " (secret required)");
            await host.WaitForShutdownAsync(ct);
            return 0;
        }
    }

    private static IPAddress FirstIPv4() =>
        Dns.GetHostAddresses(Dns.GetHostName()).FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a)) ?? IPAddress.Loopback;
}
