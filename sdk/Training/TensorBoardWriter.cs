namespace NextFlowRL.Training;

/// <summary>
/// Writes TensorBoard event files (scalars only): TFRecord framing (length, masked CRC-32C of the length, payload,
/// masked CRC-32C of the payload) around hand-encoded <c>Event</c> protocol buffers. Appends are flushed per step.
/// </summary>
public sealed class TensorBoardWriter : IDisposable
{
    private readonly FileStream _stream;

    /// <summary>Creates <c>events.out.tfevents.&lt;unix time&gt;.nextflow-rl</c> in <paramref name="directory"/>.</summary>
    public TensorBoardWriter(string directory)
    {
        Directory.CreateDirectory(directory);
        var now = DateTimeOffset.UtcNow;
        Path = System.IO.Path.Combine(directory, $"events.out.tfevents.{now.ToUnixTimeSeconds()}.{Guid.NewGuid().ToString("N")[..6]}.nextflow-rl");
        _stream = new FileStream(Path, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
        var version = new List<byte>();
        Double(version, 1, now.ToUnixTimeMilliseconds() / 1000.0);
        Bytes(version, 3, System.Text.Encoding.UTF8.GetBytes("brain.Event:2"));
        WriteRecord(version.ToArray());
    }

    /// <summary>The event file.</summary>
    public string Path { get; }

    /// <summary>Writes one scalar per finite value of <paramref name="scalars"/> at <paramref name="step"/>.</summary>
    public void WriteScalars(long step, IReadOnlyDictionary<string, double> scalars)
    {
        ArgumentNullException.ThrowIfNull(scalars);
        var summary = new List<byte>();
        foreach (var (tag, value) in scalars)
        {
            if (!double.IsFinite(value)) continue;
            var v = new List<byte>();
            Bytes(v, 1, System.Text.Encoding.UTF8.GetBytes(tag));
            Float(v, 2, (float)value);
            Bytes(summary, 1, v.ToArray());
        }
        var e = new List<byte>();
        Double(e, 1, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0);
        Varint(e, 2 << 3, (ulong)step);
        Bytes(e, 5, summary.ToArray());
        WriteRecord(e.ToArray());
        _stream.Flush(flushToDisk: true);
    }

    private void WriteRecord(byte[] payload)
    {
        var length = BitConverter.GetBytes((ulong)payload.Length);
        _stream.Write(length);
        _stream.Write(BitConverter.GetBytes(Masked(Crc32C(length))));
        _stream.Write(payload);
        _stream.Write(BitConverter.GetBytes(Masked(Crc32C(payload))));
    }

    private static void Varint(List<byte> o, int key, ulong v)
    {
        WriteVarint(o, (ulong)key);
        WriteVarint(o, v);
    }

    private static void WriteVarint(List<byte> o, ulong v)
    {
        while (v >= 0x80)
        {
            o.Add((byte)(v | 0x80));
            v >>= 7;
        }
        o.Add((byte)v);
    }

    private static void Double(List<byte> o, int field, double v)
    {
        WriteVarint(o, (ulong)((field << 3) | 1));
        o.AddRange(BitConverter.GetBytes(v));
    }

    private static void Float(List<byte> o, int field, float v)
    {
        WriteVarint(o, (ulong)((field << 3) | 5));
        o.AddRange(BitConverter.GetBytes(v));
    }

    private static void Bytes(List<byte> o, int field, byte[] v)
    {
        WriteVarint(o, (ulong)((field << 3) | 2));
        WriteVarint(o, (ulong)v.Length);
        o.AddRange(v);
    }

    private static readonly uint[] Table = BuildTable();

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        return table;
    }

    /// <summary>CRC-32C (Castagnoli).</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data) crc = Table[(crc ^ b) & 0xff] ^ (crc >> 8);
        return ~crc;
    }

    private static uint Masked(uint crc) => unchecked(((crc >> 15) | (crc << 17)) + 0xa282ead8u);

    /// <inheritdoc/>
    public void Dispose() => _stream.Dispose();
}
