using System.Text.Json;
using System.Text.Json.Nodes;

namespace NextFlowRL.Training;

/// <summary>Reading JSONL files (one JSON object per line) with errors that name the file and the line.</summary>
public static class JsonLines
{
    /// <summary>
    /// The objects of a JSONL file with their 1-based line numbers; blank lines are skipped. Lazily read: a bad line
    /// throws when it is reached.
    /// </summary>
    /// <exception cref="InvalidDataException">A line is not valid JSON or not an object; the message is <c>path:line: reason</c>.</exception>
    public static IEnumerable<(int Line, JsonObject Object)> ReadObjects(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        int n = 0;
        foreach (var line in File.ReadLines(path))
        {
            n++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(line);
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{path}:{n}: invalid JSON ({e.Message})");
            }
            yield return (n, node as JsonObject ?? throw new InvalidDataException($"{path}:{n}: expected a JSON object"));
        }
    }

    /// <summary>The string value of <paramref name="key"/>, or null when absent.</summary>
    /// <exception cref="InvalidDataException">Present but not a string.</exception>
    public static string? OptionalString(JsonObject obj, string key, string path, int line)
    {
        ArgumentNullException.ThrowIfNull(obj);
        var node = obj[key];
        if (node is null) return null;
        return node is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new InvalidDataException($"{path}:{line}: \"{key}\" must be a string");
    }
}
