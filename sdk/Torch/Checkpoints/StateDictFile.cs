using System.Buffers.Binary;
using System.Collections;
using System.Text.Json;
using NextFlowRL.Imaging;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace NextFlowRL.Torch.Checkpoints;

/// <summary>The on-disk formats of a state dict.</summary>
public enum StateDictFormat
{
    /// <summary>PyTorch's zip format (<c>torch.save(model.state_dict(), f)</c>, PyTorch 1.6 and later).</summary>
    PyTorchZip,

    /// <summary>safetensors (8-byte header length, JSON header, raw little-endian data).</summary>
    Safetensors,
}

/// <summary>
/// The project's one checkpoint IO path: reads state dicts from PyTorch zip files (TorchSharp.PyBridge's restricted
/// unpickler: tensors, dicts and primitives only, no pickle code runs) and safetensors files, writes safetensors
/// atomically, and copies a state dict into a module with every mismatch named. Half-precision tensors are widened to
/// float32 when read, so a checkpoint saved in fp16/bf16 loads into float32 modules.
/// </summary>
public static class StateDictFile
{
    /// <summary>Which format <paramref name="path"/> holds, judged from its first bytes.</summary>
    /// <exception cref="InvalidDataException">Missing file, a legacy (non-zip) PyTorch file, or neither format.</exception>
    public static StateDictFormat DetectFormat(string path)
    {
        if (!File.Exists(path)) throw new InvalidDataException($"{path}: weights file not found.");
        Span<byte> head = stackalloc byte[9];
        int n;
        using (var s = File.OpenRead(path)) n = s.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        if (n >= 4 && head[0] == 0x50 && head[1] == 0x4b && head[2] == 0x03 && head[3] == 0x04) return StateDictFormat.PyTorchZip;
        if (n >= 2 && head[0] == 0x80 && head[1] <= 5)
            throw new InvalidDataException($"{path}: a legacy (non-zip) PyTorch file, which cannot be read without running pickle code; " +
                "re-save it in the zip format with PyTorch 1.6 or later: torch.save(torch.load(OLD), NEW)");
        if ((n >= 9 && head[8] == (byte)'{') || path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)) return StateDictFormat.Safetensors;
        if (n < 8) throw new InvalidDataException($"{path}: not a state dict file (shorter than 8 bytes).");
        throw new InvalidDataException($"{path}: neither a PyTorch zip state dict (.pth) nor a safetensors file.");
    }

    /// <summary>Reads every tensor of a PyTorch zip or safetensors state dict onto the CPU (half precision widened to float32).</summary>
    /// <exception cref="InvalidDataException">The file is missing, corrupt, or not a flat state dict; the message says what to do.</exception>
    public static Dictionary<string, Tensor> Read(string path) => DetectFormat(path) switch
    {
        StateDictFormat.PyTorchZip => ReadPyTorch(path),
        _ => ReadSafetensors(path),
    };

    private static Dictionary<string, Tensor> ReadPyTorch(string path)
    {
        Hashtable table;
        try
        {
            using var stream = File.OpenRead(path);
            table = PyTorchUnpickler.UnpickleStateDict(stream);
        }
        catch (InvalidCastException)
        {
            throw new InvalidDataException($"{path}: holds a pickled object, not a state dict (a whole-model pickle?); save the weights with torch.save(model.state_dict(), PATH)");
        }
        catch (NotImplementedException e) when (e.Message.Contains("entire model", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidDataException($"{path}: holds a whole pickled model, not a state dict; save the weights with torch.save(model.state_dict(), PATH)");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Includes the zip reader's own InvalidDataException for a truncated or corrupt archive.
            throw new InvalidDataException($"{path}: not a readable PyTorch state dict, truncated or corrupt? ({e.Message.ReplaceLineEndings(" ")})", e);
        }
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var nested = new List<string>();
        var other = new List<string>();
        foreach (DictionaryEntry entry in table)
        {
            var key = entry.Key as string ?? entry.Key?.ToString() ?? "";
            switch (entry.Value)
            {
                case Tensor t: result[key] = Widen(t); break;
                case IDictionary: nested.Add(key); break;
                default: other.Add(key); break;
            }
        }
        if (nested.Count > 0 || (result.Count == 0 && other.Count > 0))
        {
            foreach (var t in result.Values) t.Dispose();
            var keys = string.Join(", ", nested.Concat(other).Order(StringComparer.Ordinal).Take(6));
            throw new InvalidDataException($"{path}: a nested dict (top-level keys: {keys}), not a flat state dict; " +
                $"save the inner state dict, e.g. torch.save(ckpt['{(nested.Count > 0 ? nested.Order(StringComparer.Ordinal).First() : "model")}'], PATH)");
        }
        return result;
    }

    /// <summary>Reads a safetensors file after checking its header (offsets inside the file, sizes matching shapes).</summary>
    private static Dictionary<string, Tensor> ReadSafetensors(string path)
    {
        var name = Path.GetFileName(path);
        using var stream = File.OpenRead(path);
        Span<byte> lenBytes = stackalloc byte[8];
        if (stream.Length < 8 || stream.Read(lenBytes) != 8)
            throw new InvalidDataException($"{name} is not a safetensors file or is corrupt (shorter than its 8-byte header length)");
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (headerLen == 0 || headerLen > 100_000_000 || 8 + (long)headerLen > stream.Length)
            throw new InvalidDataException($"{name} is not a safetensors file or is corrupt (header length {headerLen} is impossible for a file of {stream.Length} bytes)");
        var header = new byte[headerLen];
        stream.ReadExactly(header);
        long dataLen = stream.Length - 8 - (long)headerLen;
        try
        {
            using var doc = JsonDocument.Parse(header);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__") continue;
                var dtype = prop.Value.GetProperty("dtype").GetString() ?? "";
                int size = dtype switch
                {
                    "F64" or "I64" => 8,
                    "F32" or "I32" => 4,
                    "F16" or "BF16" or "I16" => 2,
                    "I8" or "U8" or "BOOL" => 1,
                    _ => throw new InvalidDataException($"{name}: tensor '{prop.Name}' has unsupported dtype {dtype} (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)"),
                };
                var shape = prop.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                var offs = prop.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                long count = shape.Aggregate(1L, (a, b) => a * b);
                if (offs.Length != 2 || offs[0] < 0 || offs[1] < offs[0] || offs[1] > dataLen)
                    throw new InvalidDataException($"{name}: tensor '{prop.Name}' is corrupt: data offsets outside the file (truncated file?)");
                if (offs[1] - offs[0] != count * size)
                    throw new InvalidDataException($"{name}: tensor '{prop.Name}' has {offs[1] - offs[0]} bytes but shape [{string.Join(", ", shape)}] of {dtype} needs {count * size}");
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{name} is not a safetensors file or is corrupt (header: {e.Message})");
        }
        stream.Position = 0;
        var loaded = Safetensors.LoadStateDict(stream, leaveOpen: true);
        return loaded.ToDictionary(kv => kv.Key, kv => Widen(kv.Value), StringComparer.Ordinal);
    }

    private static Tensor Widen(Tensor t)
    {
        if (t.dtype is not (ScalarType.Float16 or ScalarType.BFloat16)) return t;
        var f = t.to(ScalarType.Float32);
        t.Dispose();
        return f;
    }

    /// <summary>Writes tensors (moved to the CPU, contiguous, dtype kept) as a safetensors file, atomically (temp file + rename).</summary>
    public static void WriteSafetensors(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        using var scope = NewDisposeScope();
        var dict = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (key, t) in tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            dict[key] = t.detach().cpu().contiguous();
        AtomicFile.Write(path, s => Safetensors.SaveStateDict(s, dict, leaveOpen: true));
    }

    /// <summary>
    /// Copies <paramref name="tensors"/> into <paramref name="module"/>'s state, requiring exactly the same names and
    /// shapes. Values are converted to each destination's dtype and device.
    /// </summary>
    /// <exception cref="InvalidDataException">Missing, unexpected or mis-shaped tensors, all counted and the first of each named.</exception>
    public static void LoadInto(nn.Module module, IReadOnlyDictionary<string, Tensor> tensors, string source)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(tensors);
        var state = module.state_dict();
        var problems = Mismatches(state.ToDictionary(kv => kv.Key, kv => kv.Value.shape), tensors);
        if (problems is not null) throw new InvalidDataException($"{source}: checkpoint does not match the architecture: {problems}.");
        using var _ = no_grad();
        foreach (var (k, v) in state) v.copy_(tensors[k]);
    }

    /// <summary>
    /// The differences between the expected names/shapes and a state dict, as one sentence (null when they agree):
    /// missing, unexpected and mis-shaped tensors, up to five of each named.
    /// </summary>
    public static string? Mismatches(IReadOnlyDictionary<string, long[]> expected, IReadOnlyDictionary<string, Tensor> tensors)
    {
        var missing = expected.Keys.Where(k => !tensors.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        var extra = tensors.Keys.Where(k => !expected.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        var shaped = expected.Where(kv => tensors.TryGetValue(kv.Key, out var t) && !t.shape.SequenceEqual(kv.Value))
            .OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => $"{kv.Key} (expected [{string.Join(",", kv.Value)}], found [{string.Join(",", tensors[kv.Key].shape)}])").ToList();
        if (missing.Count + extra.Count + shaped.Count == 0) return null;
        var parts = new List<string>();
        if (missing.Count > 0) parts.Add($"missing tensors: {List(missing)}");
        if (extra.Count > 0) parts.Add($"unexpected tensors: {List(extra)}");
        if (shaped.Count > 0) parts.Add($"mis-shaped tensors: {List(shaped)}");
        return string.Join("; ", parts);

        static string List(List<string> items) =>
            string.Join(", ", items.Take(5)) + (items.Count > 5 ? $" (+{items.Count - 5} more)" : "");
    }
}
