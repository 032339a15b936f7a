using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Newtonsoft.Json.Linq;
using Snapshooter;
using Snapshooter.Xunit;

namespace NextFlowRL.Testing;

/// <summary>
/// Snapshot assertions with the Verify workflow, on Snapshooter.Xunit.
/// <list type="bullet">
/// <item>Values are serialized to stable JSON: object keys sorted, floating-point numbers rounded to
/// <see cref="SignificantDigits"/> significant digits, so snapshots do not churn on harmless noise.</item>
/// <item>Snapshot files live beside the test source in <c>__snapshots__/&lt;Class&gt;.&lt;Method&gt;[_name].snap</c>.</item>
/// <item>A missing snapshot always fails. Outside CI it is written first, so the next run passes once it was reviewed;
/// in CI (<c>CI</c> set) nothing is written.</item>
/// <item>A changed snapshot fails and the new value lands in <c>__snapshots__/__mismatch__/</c> for diffing.</item>
/// <item>Accept every new or changed snapshot with <c>NEXTFLOW_ACCEPT_SNAPSHOTS=1 dotnet test ...</c> (see docs/testing.md).</item>
/// </list>
/// </summary>
public static class Snapshots
{
    /// <summary>Significant digits kept for floating-point numbers.</summary>
    public const int SignificantDigits = 6;

    /// <summary>True when running in CI (environment variable <c>CI</c> set to anything but false/0).</summary>
    public static bool IsCi => Environment.GetEnvironmentVariable("CI") is { Length: > 0 } ci && ci != "0" && !ci.Equals("false", StringComparison.OrdinalIgnoreCase);

    /// <summary>True when snapshots are being accepted (<c>NEXTFLOW_ACCEPT_SNAPSHOTS=1</c>).</summary>
    public static bool Accepting => Environment.GetEnvironmentVariable("NEXTFLOW_ACCEPT_SNAPSHOTS") is "1" or "true";

    /// <summary>Asserts that <paramref name="value"/> matches the test's snapshot. Call it from the test method itself.</summary>
    /// <param name="value">Any JSON-serializable value.</param>
    /// <param name="name">Distinguishes several snapshots of one test.</param>
    public static void Match(object? value, string? name = null)
    {
        var fullName = name is null ? Snapshot.FullName() : Snapshot.FullName(SnapshotNameExtension.Create(name));
        var file = SnapshotPath(fullName);
        var token = JToken.Parse(ToStableJson(value));

        if (Accepting && File.Exists(file))
            File.Delete(file);
        if (!File.Exists(file) && !Accepting)
        {
            if (IsCi)
                throw new SnapshotMissingException($"Snapshot {file} is missing (CI does not create snapshots). Run the test locally, review the new file and commit it.");
            Snapshot.Match(token, fullName);
            throw new SnapshotMissingException($"New snapshot written to {file}. Review it, commit it and run the test again.");
        }
        Snapshot.Match(token, fullName);
    }

    /// <summary>The snapshot file of a test.</summary>
    public static string SnapshotPath(SnapshotFullName fullName)
    {
        ArgumentNullException.ThrowIfNull(fullName);
        return Path.Combine(fullName.FolderPath, FileNames.SnapshotFolderName, fullName.Filename);
    }

    /// <summary>Serializes to indented JSON with sorted keys and rounded floating-point numbers.</summary>
    public static string ToStableJson(object? value)
    {
        var node = JsonSerializer.SerializeToNode(value, Options);
        return Normalize(node)?.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) ?? "null";
    }

    private static readonly JsonSerializerOptions Options = new()
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
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

/// <summary>A snapshot file does not exist yet.</summary>
public sealed class SnapshotMissingException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SnapshotMissingException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public SnapshotMissingException() { }

    /// <summary>Creates the exception.</summary>
    public SnapshotMissingException(string message, Exception inner) : base(message, inner) { }
}
