using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace NextFlowRL.Testing;

/// <summary>
/// Snapshot assertions with Verify's workflow and file layout, without a test-framework dependency (any exception
/// fails the test in xUnit, NUnit and MSTest alike).
/// <list type="bullet">
/// <item>The snapshot sits beside the test source: <c>&lt;File&gt;.&lt;Method&gt;[_name].verified.json</c>, where
/// <c>&lt;File&gt;</c> is the test file's name without extension (the test class, by convention). Commit it.</item>
/// <item>Values are serialized to stable JSON: object keys sorted, floating-point numbers rounded to
/// <see cref="SignificantDigits"/> significant digits, so snapshots do not churn on harmless noise.</item>
/// <item>A missing or different snapshot fails the test and writes what the test produced to
/// <c>&lt;File&gt;.&lt;Method&gt;[_name].received.json</c> beside it (git-ignore <c>*.received.*</c>).</item>
/// <item>Accept on purpose with one command: <c>NEXTFLOW_ACCEPT_SNAPSHOTS=1 dotnet test</c> writes every verified
/// file from the received value (review the diff, then commit).</item>
/// <item>In CI (<c>CI</c> set) a missing snapshot fails with a message that says so; accepting is refused there.</item>
/// </list>
/// The calls mirror Verify's <c>Verifier.Verify(value)</c>, so that moving to Verify later is a rename.
/// </summary>
public static class Snapshots
{
    /// <summary>Significant digits kept for floating-point numbers.</summary>
    public const int SignificantDigits = 6;

    /// <summary>The environment variable that accepts received values as the new snapshots.</summary>
    public const string AcceptVariable = "NEXTFLOW_ACCEPT_SNAPSHOTS";

    /// <summary>True when running in CI (environment variable <c>CI</c> set to anything but false/0).</summary>
    public static bool IsCi => Environment.GetEnvironmentVariable("CI") is { Length: > 0 } ci && ci != "0" && !ci.Equals("false", StringComparison.OrdinalIgnoreCase);

    /// <summary>True when snapshots are being accepted (<c>NEXTFLOW_ACCEPT_SNAPSHOTS=1</c>).</summary>
    public static bool Accepting => Environment.GetEnvironmentVariable(AcceptVariable) is "1" or "true";

    /// <summary>Asserts that <paramref name="value"/> matches the calling test's snapshot.</summary>
    /// <param name="value">Any JSON-serializable value.</param>
    /// <param name="name">Distinguishes several snapshots of one test.</param>
    /// <param name="sourceFile">Filled in by the compiler: the test's source file.</param>
    /// <param name="member">Filled in by the compiler: the test method.</param>
    /// <exception cref="SnapshotMismatchException">The snapshot is missing or differs.</exception>
    public static void Match(object? value, string? name = null, [CallerFilePath] string sourceFile = "", [CallerMemberName] string member = "") =>
        MatchFile(VerifiedPath(sourceFile, member, name), value, Accepting, IsCi);

    /// <summary>The verified file of a test: beside <paramref name="sourceFile"/>.</summary>
    public static string VerifiedPath(string sourceFile, string member, string? name = null)
    {
        if (string.IsNullOrEmpty(sourceFile))
            throw new ArgumentException("The test's source file is unknown: call Snapshots.Match from the test itself.", nameof(sourceFile));
        var folder = Path.GetDirectoryName(sourceFile);
        if (!Directory.Exists(folder))
            throw new InvalidOperationException($"The test's source folder '{folder}' does not exist on this machine: the test assembly was built " +
                "with mapped source paths (ContinuousIntegrationBuild=true or a PathMap). Snapshots live beside the source: build test projects without a path map.");
        var stem = Path.GetFileNameWithoutExtension(sourceFile) + "." + member + (string.IsNullOrEmpty(name) ? "" : "_" + name);
        return Path.Combine(folder, stem + ".verified.json");
    }

    /// <summary>The received file that goes with <paramref name="verifiedPath"/>.</summary>
    public static string ReceivedPath(string verifiedPath) =>
        verifiedPath.EndsWith(".verified.json", StringComparison.Ordinal)
            ? verifiedPath[..^".verified.json".Length] + ".received.json"
            : throw new ArgumentException($"not a verified snapshot file: {verifiedPath}", nameof(verifiedPath));

    /// <summary>
    /// The whole workflow on an explicit file: compares, writes the received file on a difference, or accepts.
    /// <see cref="Match"/> calls it with the environment's settings; tests of the workflow call it directly.
    /// </summary>
    public static void MatchFile(string verifiedPath, object? value, bool accept, bool ci)
    {
        var received = ToStableJson(value) + "\n";
        var receivedPath = ReceivedPath(verifiedPath);
        var verified = File.Exists(verifiedPath) ? File.ReadAllText(verifiedPath).Replace("\r\n", "\n") : null;
        if (verified == received)
        {
            if (File.Exists(receivedPath)) File.Delete(receivedPath);
            return;
        }
        if (accept)
        {
            if (ci)
                throw new SnapshotMismatchException($"{AcceptVariable} is set in CI: snapshots are accepted on a developer machine and committed, never in CI.");
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(verifiedPath))!);
            File.WriteAllText(verifiedPath, received);
            if (File.Exists(receivedPath)) File.Delete(receivedPath);
            return;
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(verifiedPath))!);
        File.WriteAllText(receivedPath, received);
        var how = $"Review {receivedPath}; accept with {AcceptVariable}=1 dotnet test (or rename it to {Path.GetFileName(verifiedPath)}) and commit.";
        if (verified is null)
            throw new SnapshotMismatchException(ci
                ? $"Snapshot {verifiedPath} is missing (CI does not create snapshots). Run the test locally, review the received file, accept it and commit it."
                : $"Snapshot {verifiedPath} does not exist yet. {how}");
        throw new SnapshotMismatchException($"Snapshot {verifiedPath} differs from the received value.\n{FirstDifference(verified, received)}\n{how}");
    }

    /// <summary>Serializes to indented JSON with sorted keys and rounded floating-point numbers.</summary>
    public static string ToStableJson(object? value)
    {
        var node = value as JsonNode ?? JsonSerializer.SerializeToNode(value, Options);
        return Normalize(node)?.ToJsonString(new JsonSerializerOptions { WriteIndented = true }).Replace("\r\n", "\n") ?? "null";
    }

    private static string FirstDifference(string verified, string received)
    {
        var a = verified.Split('\n');
        var b = received.Split('\n');
        for (int i = 0; i < Math.Max(a.Length, b.Length); i++)
        {
            var x = i < a.Length ? a[i] : "<end>";
            var y = i < b.Length ? b[i] : "<end>";
            if (x != y) return $"first difference at line {i + 1}:\n  verified: {x.Trim()}\n  received: {y.Trim()}";
        }
        return "they differ in line endings only";
    }

    private static readonly JsonSerializerOptions Options = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        IncludeFields = false,
    };

    private static JsonNode? Normalize(JsonNode? node) => node switch
    {
        JsonObject o => new JsonObject(o.OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => KeyValuePair.Create(p.Key, Normalize(p.Value)))),
        JsonArray a => new JsonArray(a.Select(Normalize).ToArray()),
        JsonValue v when v.GetValueKind() == JsonValueKind.Number && v.ToJsonString().IndexOfAny(['.', 'e', 'E']) >= 0 =>
            JsonValue.Create(Round(v.GetValue<double>())),
        JsonValue v => v.DeepClone(),
        null => null,
        _ => node.DeepClone(),
    };

    private static double Round(double x)
    {
        if (x == 0 || !double.IsFinite(x)) return x;
        return double.Parse(x.ToString("G" + SignificantDigits, CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
    }
}

/// <summary>A snapshot is missing or differs from what the test produced.</summary>
public sealed class SnapshotMismatchException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SnapshotMismatchException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public SnapshotMismatchException() { }

    /// <summary>Creates the exception.</summary>
    public SnapshotMismatchException(string message, Exception inner) : base(message, inner) { }
}
