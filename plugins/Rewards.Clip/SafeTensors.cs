using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace NextFlowRL.Rewards.Clip;

/// <summary>
/// Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON header mapping tensor names
/// to <c>{dtype, shape, data_offsets}</c> (plus an optional <c>__metadata__</c> entry), then the raw little-endian data.
/// Supports F32, F16 and BF16 (all loaded as float32) and F64/I64/I32 (loaded as their own type).
/// </summary>
public static class SafeTensors
{
    /// <summary>Reads every tensor of <paramref name="path"/> on the CPU.</summary>
    /// <exception cref="InvalidDataException">The file is not a valid safetensors file (the message says why).</exception>
    public static Dictionary<string, Tensor> Load(string path)
    {
        using var stream = File.OpenRead(path);
        var name = Path.GetFileName(path);
        Span<byte> lenBytes = stackalloc byte[8];
        if (stream.Length < 8 || stream.Read(lenBytes) != 8)
            throw new InvalidDataException($"{name} is not a safetensors file (shorter than 8 bytes)");
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (headerLen == 0 || headerLen > 100_000_000 || 8 + (long)headerLen > stream.Length)
            throw new InvalidDataException($"{name} is not a safetensors file (header length {headerLen} is impossible)");
        var headerBytes = new byte[headerLen];
        stream.ReadExactly(headerBytes);
        JsonObject header;
        try
        {
            header = JsonNode.Parse(headerBytes)?.AsObject() ?? throw new InvalidDataException($"{name}: empty safetensors header");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new InvalidDataException($"{name} is not a safetensors file (header is not a JSON object: {e.Message})");
        }
        long dataStart = 8 + (long)headerLen;
        long dataLen = stream.Length - dataStart;
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (key, node) in header)
        {
            if (key == "__metadata__") continue;
            if (node is not JsonObject entry)
                throw new InvalidDataException($"{name}: header entry '{key}' is not an object");
            string dtype = entry["dtype"]?.GetValue<string>() ?? throw new InvalidDataException($"{name}: '{key}' has no dtype");
            long[] shape = entry["shape"]?.AsArray().Select(s => s!.GetValue<long>()).ToArray() ?? throw new InvalidDataException($"{name}: '{key}' has no shape");
            var offsets = entry["data_offsets"]?.AsArray().Select(s => s!.GetValue<long>()).ToArray();
            if (offsets is not { Length: 2 } || offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] > dataLen)
                throw new InvalidDataException($"{name}: '{key}' has invalid data_offsets");
            long count = shape.Aggregate(1L, (a, b) => a * b);
            int elemSize = ElementSize(dtype) ?? throw new InvalidDataException($"{name}: '{key}' has unsupported dtype {dtype} (supported: F32, F16, BF16, F64, I64, I32)");
            if (count * elemSize != offsets[1] - offsets[0])
                throw new InvalidDataException($"{name}: '{key}' has {offsets[1] - offsets[0]} bytes but shape [{string.Join(", ", shape)}] of {dtype} needs {count * elemSize}");
            var bytes = new byte[offsets[1] - offsets[0]];
            stream.Position = dataStart + offsets[0];
            stream.ReadExactly(bytes);
            result[key] = ToTensor(bytes, dtype, shape);
        }
        return result;
    }

    /// <summary>Writes <paramref name="tensors"/> (float32, float64, int64 or int32, any device) to <paramref name="path"/>.</summary>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var header = new JsonObject();
        var blobs = new List<byte[]>();
        long offset = 0;
        foreach (var (key, t) in tensors.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            using var cpu = t.detach().cpu().contiguous();
            (string dtype, byte[] bytes) = cpu.dtype switch
            {
                ScalarType.Float32 => ("F32", MemoryMarshal.AsBytes(cpu.data<float>().ToArray().AsSpan()).ToArray()),
                ScalarType.Float64 => ("F64", MemoryMarshal.AsBytes(cpu.data<double>().ToArray().AsSpan()).ToArray()),
                ScalarType.Int64 => ("I64", MemoryMarshal.AsBytes(cpu.data<long>().ToArray().AsSpan()).ToArray()),
                ScalarType.Int32 => ("I32", MemoryMarshal.AsBytes(cpu.data<int>().ToArray().AsSpan()).ToArray()),
                _ => throw new ArgumentException($"tensor '{key}' has unsupported dtype {cpu.dtype}"),
            };
            header[key] = new JsonObject
            {
                ["dtype"] = dtype,
                ["shape"] = new JsonArray(cpu.shape.Select(s => (JsonNode)JsonValue.Create(s)).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes.Length),
            };
            offset += bytes.Length;
            blobs.Add(bytes);
        }
        var headerBytes = JsonSerializer.SerializeToUtf8Bytes(header);
        int pad = (8 - headerBytes.Length % 8) % 8;
        using var stream = File.Create(path);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)(headerBytes.Length + pad));
        stream.Write(len);
        stream.Write(headerBytes);
        for (int i = 0; i < pad; i++) stream.WriteByte((byte)' ');
        foreach (var b in blobs) stream.Write(b);
    }

    private static int? ElementSize(string dtype) => dtype switch
    {
        "F32" or "I32" => 4,
        "F16" or "BF16" => 2,
        "F64" or "I64" => 8,
        _ => null,
    };

    private static Tensor ToTensor(byte[] bytes, string dtype, long[] shape)
    {
        switch (dtype)
        {
            case "F32":
                return torch.tensor(MemoryMarshal.Cast<byte, float>(bytes).ToArray(), shape);
            case "F64":
                return torch.tensor(MemoryMarshal.Cast<byte, double>(bytes).ToArray(), shape);
            case "I64":
                return torch.tensor(MemoryMarshal.Cast<byte, long>(bytes).ToArray(), shape);
            case "I32":
                return torch.tensor(MemoryMarshal.Cast<byte, int>(bytes).ToArray(), shape);
            case "F16":
            {
                var halves = MemoryMarshal.Cast<byte, Half>(bytes);
                var f = new float[halves.Length];
                for (int i = 0; i < f.Length; i++) f[i] = (float)halves[i];
                return torch.tensor(f, shape);
            }
            case "BF16":
            {
                var raw = MemoryMarshal.Cast<byte, ushort>(bytes);
                var f = new float[raw.Length];
                for (int i = 0; i < f.Length; i++) f[i] = BitConverter.Int32BitsToSingle(raw[i] << 16);
                return torch.tensor(f, shape);
            }
            default:
                throw new InvalidDataException($"unsupported dtype {dtype}");
        }
    }
}
