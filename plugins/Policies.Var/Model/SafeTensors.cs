using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using NextFlowRL.Imaging;

namespace NextFlowRL.Policies.Var.Model;

/// <summary>
/// Minimal safetensors reader/writer for float32 state dicts (format: 8-byte little-endian header length, JSON header
/// with dtype/shape/data_offsets per tensor and optional <c>__metadata__</c>, then the raw little-endian data).
/// </summary>
public static class SafeTensors
{
    /// <summary>Writes tensors (converted to float32, CPU) and string metadata atomically.</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new Dictionary<string, object>(StringComparer.Ordinal);
        if (metadata is not null) header["__metadata__"] = metadata;
        var blobs = new List<byte[]>();
        long offset = 0;
        foreach (var (name, t) in tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            using var c = t.detach().to(ScalarType.Float32).cpu().contiguous();
            var bytes = MemoryMarshal.AsBytes(c.data<float>().ToArray().AsSpan()).ToArray();
            header[name] = new { dtype = "F32", shape = c.shape, data_offsets = new[] { offset, offset + bytes.Length } };
            offset += bytes.Length;
            blobs.Add(bytes);
        }
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        int pad = (8 - json.Length % 8) % 8;
        var headerBytes = new byte[json.Length + pad];
        json.CopyTo(headerBytes, 0);
        for (int i = json.Length; i < headerBytes.Length; i++) headerBytes[i] = (byte)' ';
        AtomicFile.Write(path, s =>
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)headerBytes.Length);
            s.Write(len);
            s.Write(headerBytes);
            foreach (var b in blobs) s.Write(b);
        });
    }

    /// <summary>Reads all tensors (CPU float32) and the metadata of a safetensors file.</summary>
    /// <exception cref="InvalidDataException">The file is missing, truncated or malformed; the message says how.</exception>
    public static (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Metadata) Read(string path)
    {
        if (!File.Exists(path)) throw new InvalidDataException($"{path}: weights file not found.");
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 8) throw new InvalidDataException($"{path}: corrupt safetensors file (shorter than its 8-byte header length).");
        ulong hlen = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (hlen > (ulong)(bytes.Length - 8)) throw new InvalidDataException($"{path}: corrupt safetensors file (header length {hlen} exceeds the file size {bytes.Length}).");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(bytes.AsMemory(8, (int)hlen)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: corrupt safetensors header ({e.Message})."); }
        using var _ = doc;
        long dataStart = 8 + (long)hlen, dataLen = bytes.Length - dataStart;
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    foreach (var m in prop.Value.EnumerateObject()) metadata[m.Name] = m.Value.GetString() ?? "";
                    continue;
                }
                var dtype = prop.Value.GetProperty("dtype").GetString();
                if (dtype != "F32") throw new InvalidDataException($"{path}: tensor '{prop.Name}' has dtype {dtype}; only F32 is supported.");
                var shape = prop.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                var offs = prop.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                long count = shape.Aggregate(1L, (a, b) => a * b);
                if (offs.Length != 2 || offs[0] < 0 || offs[1] > dataLen || offs[1] - offs[0] != count * 4)
                    throw new InvalidDataException($"{path}: tensor '{prop.Name}' is corrupt: data offsets outside the file or not matching its shape (truncated file?).");
                var floats = MemoryMarshal.Cast<byte, float>(bytes.AsSpan((int)(dataStart + offs[0]), (int)(count * 4))).ToArray();
                tensors[prop.Name] = tensor(floats, shape);
            }
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw new InvalidDataException($"{path}: corrupt safetensors header ({e.Message}).");
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
        return (tensors, metadata);
    }

    /// <summary>
    /// Copies <paramref name="tensors"/> into a module's state, requiring exactly the same names and shapes.
    /// </summary>
    /// <exception cref="InvalidDataException">Missing, extra or mis-shaped tensors (all listed, up to a few of each).</exception>
    public static void LoadInto(nn.Module module, IReadOnlyDictionary<string, Tensor> tensors, string source)
    {
        var state = module.state_dict();
        var missing = state.Keys.Where(k => !tensors.ContainsKey(k)).ToList();
        var extra = tensors.Keys.Where(k => !state.ContainsKey(k)).ToList();
        var shaped = state.Where(kv => tensors.TryGetValue(kv.Key, out var t) && !t.shape.SequenceEqual(kv.Value.shape))
            .Select(kv => $"{kv.Key} (expected [{string.Join(",", kv.Value.shape)}], found [{string.Join(",", tensors[kv.Key].shape)}])").ToList();
        if (missing.Count + extra.Count + shaped.Count > 0)
        {
            var parts = new List<string>();
            if (missing.Count > 0) parts.Add($"missing tensors: {string.Join(", ", missing.Take(5))}{(missing.Count > 5 ? $" (+{missing.Count - 5} more)" : "")}");
            if (extra.Count > 0) parts.Add($"unexpected tensors: {string.Join(", ", extra.Take(5))}{(extra.Count > 5 ? $" (+{extra.Count - 5} more)" : "")}");
            if (shaped.Count > 0) parts.Add($"mis-shaped tensors: {string.Join(", ", shaped.Take(5))}");
            throw new InvalidDataException($"{source}: checkpoint does not match the architecture: {string.Join("; ", parts)}.");
        }
        using var _ = no_grad();
        foreach (var (k, v) in state) v.copy_(tensors[k]);
    }
}
