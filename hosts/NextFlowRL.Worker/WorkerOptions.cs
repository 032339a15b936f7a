using System.Net;

namespace NextFlowRL.Worker;

/// <summary>The <c>Worker</c> configuration section (command-line options override it).</summary>
public sealed class WorkerOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Worker";

    /// <summary>How silos find each other: <c>localhost</c> (one machine; a primary silo) or <c>redis</c> (Orleans' Redis membership table, many machines).</summary>
    public string Membership { get; set; } = "localhost";

    /// <summary>Port silos talk to each other on.</summary>
    public int SiloPort { get; set; } = 11111;

    /// <summary>Port the trainer (an Orleans client) connects to.</summary>
    public int GatewayPort { get; set; } = 30000;

    /// <summary>Localhost membership: the primary silo's <c>host:port</c> (its silo port); empty on the primary itself.</summary>
    public string? Primary { get; set; }

    /// <summary>Redis membership: the StackExchange.Redis connection string (<c>host:6379,password=...</c>).</summary>
    public string? Redis { get; set; }

    /// <summary>Redis membership: the address other machines reach this one on (default: this machine's first IPv4 address).</summary>
    public string? Advertise { get; set; }

    /// <summary>Orleans cluster id (the trainer's <c>Train:Cluster:ClusterId</c>).</summary>
    public string ClusterId { get; set; } = "nextflow";

    /// <summary>Orleans service id (the trainer's <c>Train:Cluster:ServiceId</c>).</summary>
    public string ServiceId { get; set; } = "nextflow-rl";

    /// <summary>Shared secret a trainer must present (also env <c>NEXTFLOW_CLUSTER_SECRET</c>); required off loopback.</summary>
    public string? Secret { get; set; }

    /// <summary>Every problem with these options (empty when valid).</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (Membership is not ("localhost" or "redis")) problems.Add($"Worker:Membership must be 'localhost' or 'redis', got '{Membership}'");
        foreach (var (name, port) in new[] { ("SiloPort", SiloPort), ("GatewayPort", GatewayPort) })
            if (port is < 1 or > 65535) problems.Add($"Worker:{name} must be a TCP port (1-65535), got {port}");
        if (SiloPort == GatewayPort) problems.Add($"Worker:SiloPort and Worker:GatewayPort must differ (both {SiloPort})");
        if (!string.IsNullOrEmpty(Primary) && !NextFlowRL.Training.ClusterOptions.TrySplitEndpoint(Primary, out _, out _))
            problems.Add($"Worker:Primary must be host:port, got '{Primary}'");
        if (Membership == "redis")
        {
            if (string.IsNullOrWhiteSpace(Redis)) problems.Add("Worker:Membership=redis needs Worker:Redis (a Redis connection string, e.g. 10.0.0.1:6379)");
            if (!string.IsNullOrEmpty(Primary)) problems.Add("Worker:Primary is for localhost membership only (with redis the membership table finds the silos)");
            if (!string.IsNullOrEmpty(Advertise) && !IPAddress.TryParse(Advertise, out _)) problems.Add($"Worker:Advertise must be an IP address, got '{Advertise}'");
            if (string.IsNullOrEmpty(Secret) && !IsLoopback(Advertise)) problems.Add($"a worker reachable off this machine needs a shared secret: Worker:Secret, --secret or {NextFlowRL.Cluster.ClusterRollouts.SecretVariable}");
        }
        if (string.IsNullOrWhiteSpace(ClusterId)) problems.Add("Worker:ClusterId must not be empty");
        if (string.IsNullOrWhiteSpace(ServiceId)) problems.Add("Worker:ServiceId must not be empty");
        return problems;
    }

    private static bool IsLoopback(string? address) => address is not null && IPAddress.TryParse(address, out var ip) && IPAddress.IsLoopback(ip);
}
