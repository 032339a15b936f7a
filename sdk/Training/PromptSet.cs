using System.Text.Json;
using System.Text.Json.Nodes;

namespace NextFlowRL.Training;

/// <summary>A prompt with the per-sample metadata rewards may use (e.g. <c>target_words</c>, <c>bin</c>).</summary>
public sealed record PromptRecord(string Prompt, IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// Prompts read from JSONL: one object per line with a string <c>prompt</c>; every other field becomes metadata
/// (strings as they are, arrays of strings joined with spaces, other values as JSON). Blank lines are skipped.
/// </summary>
public sealed class PromptSet
{
    private readonly PromptRecord[] _records;

    /// <summary>Creates a set from records.</summary>
    public PromptSet(IEnumerable<PromptRecord> records)
    {
        _records = records.ToArray();
        if (_records.Length == 0) throw new ArgumentException("A prompt set needs at least one prompt.", nameof(records));
    }

    /// <summary>The prompts in file order.</summary>
    public IReadOnlyList<PromptRecord> Records => _records;

    /// <summary>Number of prompts.</summary>
    public int Count => _records.Length;

    /// <summary>Reads a JSONL file.</summary>
    /// <exception cref="InvalidDataException">Missing file or a malformed line (the message names the line).</exception>
    public static PromptSet Load(string path)
    {
        if (!File.Exists(path)) throw new InvalidDataException($"prompt file '{path}' not found");
        var records = new List<PromptRecord>();
        foreach (var (n, obj) in JsonLines.ReadObjects(path))
        {
            var prompt = JsonLines.OptionalString(obj, "prompt", path, n);
            if (string.IsNullOrWhiteSpace(prompt)) throw new InvalidDataException($"{path}:{n}: missing string \"prompt\"");
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (key, value) in obj)
            {
                if (key == "prompt" || value is null) continue;
                metadata[key] = value switch
                {
                    JsonValue v when v.TryGetValue<string>(out var s) => s,
                    JsonArray a when a.All(x => x is JsonValue xv && xv.TryGetValue<string>(out _)) => string.Join(" ", a.Select(x => x!.GetValue<string>())),
                    _ => value.ToJsonString(),
                };
            }
            records.Add(new PromptRecord(prompt, metadata));
        }
        if (records.Count == 0) throw new InvalidDataException($"prompt file '{path}' has no prompts");
        return new PromptSet(records);
    }

    /// <summary>
    /// The prompts of update <paramref name="step"/>: positions <c>step*count .. step*count+count-1</c> of an endless
    /// stream that visits every prompt once per epoch in an order shuffled by (seed, epoch). Depends only on its
    /// arguments, so a resumed run sees the same data.
    /// </summary>
    public IReadOnlyList<PromptRecord> Batch(long seed, int step, int count)
    {
        var batch = new PromptRecord[count];
        for (int i = 0; i < count; i++)
        {
            long position = (long)step * count + i;
            long epoch = position / _records.Length;
            var order = Order(seed, epoch);
            batch[i] = _records[order[(int)(position % _records.Length)]];
        }
        return batch;
    }

    private readonly Dictionary<(long Seed, long Epoch), int[]> _orders = [];

    private int[] Order(long seed, long epoch)
    {
        if (_orders.TryGetValue((seed, epoch), out var cached)) return cached;
        var order = Enumerable.Range(0, _records.Length).ToArray();
        var rng = new Random(unchecked((int)Seeds.Mix(seed, 0x5eed_da7aL, epoch)));
        rng.Shuffle(order);
        if (_orders.Count > 4) _orders.Clear();
        _orders[(seed, epoch)] = order;
        return order;
    }
}

/// <summary>Deterministic seed derivation (SplitMix64 over the inputs).</summary>
public static class Seeds
{
    /// <summary>Mixes values into one well-spread 63-bit seed.</summary>
    public static long Mix(params long[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        ulong h = 0x9E3779B97F4A7C15UL;
        foreach (var v in values)
        {
            h ^= unchecked((ulong)v);
            h = unchecked(h + 0x9E3779B97F4A7C15UL);
            h = unchecked((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9UL);
            h = unchecked((h ^ (h >> 27)) * 0x94D049BB133111EBUL);
            h ^= h >> 31;
        }
        return (long)(h & 0x7FFFFFFFFFFFFFFFUL);
    }
}
