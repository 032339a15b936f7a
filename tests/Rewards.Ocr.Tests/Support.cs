using System.IO.Compression;
using NextFlowRL.Imaging;
using NextFlowRL.Plugins;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace NextFlowRL.Rewards.Ocr.Tests;

/// <summary>Rendered test images and helpers.</summary>
internal static class Render
{
    public const string Font = "DejaVuSans-Bold";

    public static RgbImage Words(int width, int height, params (string Text, float X, float Y, float Size)[] items) =>
        TextRenderer.Render(width, height, (255, 255, 255), items.Select(i => new TextItem(i.Text, i.X, i.Y, i.Size, Font, (0, 0, 0))));

    public static RgbImage Word(string text, int side = 128, float size = 28) => Words(side, side, (text, side / 2f, side / 2f, size));

    public static RewardSample Sample(RgbImage image, string prompt) => new(image, prompt);

    /// <summary>A grayscale PNG (8 or 16 bits per sample) of an image's luma, written by hand so the bit depth is exact.</summary>
    public static byte[] GrayPng(RgbImage image, int bitDepth)
    {
        using var raw = new MemoryStream();
        int bytes = bitDepth / 8;
        for (int y = 0; y < image.Height; y++)
        {
            raw.WriteByte(0); // filter: none
            for (int x = 0; x < image.Width; x++)
            {
                var (r, g, b) = image[x, y];
                byte v = (byte)((r + g + b) / 3);
                for (int k = 0; k < bytes; k++) raw.WriteByte(v);
            }
        }
        using var compressed = new MemoryStream();
        using (var z = new ZLibStream(compressed, CompressionLevel.Fastest, leaveOpen: true)) raw.WriteTo(z);
        using var png = new MemoryStream();
        png.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        WriteBigEndian(ihdr, 0, image.Width);
        WriteBigEndian(ihdr, 4, image.Height);
        ihdr[8] = (byte)bitDepth;
        ihdr[9] = 0; // grayscale
        Chunk(png, "IHDR", ihdr);
        Chunk(png, "IDAT", compressed.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        var header = new byte[4];
        WriteBigEndian(header, 0, data.Length);
        s.Write(header);
        var body = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        s.Write(body);
        WriteBigEndian(header, 0, (int)Crc32(body));
        s.Write(header);
    }

    private static void WriteBigEndian(byte[] b, int o, int v)
    {
        b[o] = (byte)(v >> 24);
        b[o + 1] = (byte)(v >> 16);
        b[o + 2] = (byte)(v >> 8);
        b[o + 3] = (byte)v;
    }

    private static uint Crc32(byte[] data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var d in data)
        {
            crc ^= d;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }
}

/// <summary>A minimal plugin builder: what a host gives a plugin's Register.</summary>
internal sealed class TestBuilder(IConfiguration configuration) : INextFlowRLBuilder
{
    public IServiceCollection Services { get; } = new ServiceCollection();

    public IConfiguration Configuration { get; } = configuration;

    public List<ComponentDescriptor> Components { get; } = [];

    public void AddComponent(ComponentDescriptor component) => Components.Add(component);

    public static TestBuilder With(params (string Key, string Value)[] settings) =>
        new(new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => KeyValuePair.Create(s.Key, (string?)s.Value))).Build());
}

/// <summary>One <c>ocr</c> and one <c>ocr-edit</c> reward shared by a test class (engines are slow to create).</summary>
public sealed class RewardFixture : IDisposable
{
    public OcrReward Paper { get; } = new("ocr", new OcrRewardOptions { Workers = 2 });

    public OcrReward Edit { get; } = new("ocr-edit", new OcrRewardOptions { Formula = OcrRewardFormula.Edit, Workers = 2 });

    public void Dispose()
    {
        Paper.Dispose();
        Edit.Dispose();
    }
}
