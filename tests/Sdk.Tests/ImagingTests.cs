using System.IO.Compression;
using NextFlowRL.Imaging;
using Xunit;

namespace NextFlowRL.Tests;

public class ImagingTests
{
    /// <summary>A minimal PNG encoder for formats Skia will not write: bit depth 8/16, colour types 0 (gray), 2 (RGB), 4 (gray+alpha), 6 (RGBA).</summary>
    internal static byte[] Png(int w, int h, int bitDepth, int colorType, Func<int, int, int[]> pixel)
    {
        int channels = colorType switch { 0 => 1, 2 => 3, 4 => 2, 6 => 4, _ => throw new ArgumentException("colour type") };
        using var raw = new MemoryStream();
        for (int y = 0; y < h; y++)
        {
            raw.WriteByte(0);
            for (int x = 0; x < w; x++)
            {
                var v = pixel(x, y);
                for (int c = 0; c < channels; c++)
                {
                    if (bitDepth == 16) raw.WriteByte((byte)(v[c] >> 8));
                    raw.WriteByte((byte)(bitDepth == 16 ? v[c] & 0xff : v[c]));
                }
            }
        }
        using var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 13, 10, 26, 10]);
        void Chunk(string type, byte[] data)
        {
            var t = System.Text.Encoding.ASCII.GetBytes(type);
            png.Write(BigEndian((uint)data.Length));
            png.Write(t);
            png.Write(data);
            png.Write(BigEndian(Crc32([.. t, .. data])));
        }
        Chunk("IHDR", [.. BigEndian((uint)w), .. BigEndian((uint)h), (byte)bitDepth, (byte)colorType, 0, 0, 0]);
        using var z = new MemoryStream();
        using (var deflate = new ZLibStream(z, CompressionLevel.Optimal, leaveOpen: true)) raw.WriteTo(deflate);
        Chunk("IDAT", z.ToArray());
        Chunk("IEND", []);
        return png.ToArray();
    }

    private static uint Crc32(byte[] data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        return ~crc;
    }

    private static byte[] BigEndian(uint v) => [(byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v];

    [Fact]
    public void RoundTripsRgbThroughPng()
    {
        var image = new RgbImage(3, 2, [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
        var decoded = ImageFile.Decode(ImageFile.EncodePng(image));
        Assert.Equal(image.Pixels.ToArray(), decoded.Pixels.ToArray());
    }

    [Fact]
    public void SixteenBitGrayscaleAndAlphaAreConverted()
    {
        var gray16 = ImageFile.Decode(Png(2, 1, 16, 0, (x, _) => [x == 0 ? 0 : 65535]));
        Assert.Equal(new byte[] { 0, 0, 0, 255, 255, 255 }, gray16.Pixels.ToArray());
        var rgb16 = ImageFile.Decode(Png(1, 1, 16, 2, (_, _) => [65535, 32896, 0]));
        Assert.Equal((byte)255, rgb16[0, 0].R);
        Assert.InRange(rgb16[0, 0].G, (byte)127, (byte)129);
        // Fully transparent black over white is white; half-transparent red is pink.
        var rgba = ImageFile.Decode(Png(2, 1, 8, 6, (x, _) => x == 0 ? [0, 0, 0, 0] : [255, 0, 0, 128]));
        Assert.Equal((byte)255, rgba[0, 0].R);
        Assert.Equal((byte)255, rgba[0, 0].B);
        Assert.Equal((255, 127, 127), ((int)rgba[1, 0].R, (int)rgba[1, 0].G, (int)rgba[1, 0].B));
    }

    [Fact]
    public void BadFilesGiveOneClearLine()
    {
        var dir = TestPlugins.TempDir();
        var corrupt = Path.Combine(dir, "corrupt.png");
        File.WriteAllText(corrupt, "definitely not a png");
        var truncated = Path.Combine(dir, "truncated.png");
        var full = Png(16, 16, 8, 2, (x, y) => [x * 10, y * 10, 0]);
        File.WriteAllBytes(truncated, full[..(full.Length - 30)]);
        var empty = Path.Combine(dir, "empty.png");
        File.WriteAllBytes(empty, []);

        Assert.Contains("not found", Assert.Throws<ImageFormatException>(() => ImageFile.Load(Path.Combine(dir, "missing.png"))).Message);
        Assert.Contains("not a readable image", Assert.Throws<ImageFormatException>(() => ImageFile.Load(corrupt)).Message);
        Assert.Contains("truncated", Assert.Throws<ImageFormatException>(() => ImageFile.Load(truncated)).Message);
        Assert.Contains("empty", Assert.Throws<ImageFormatException>(() => ImageFile.Load(empty)).Message);
        foreach (var message in new[] { corrupt, truncated, empty }.Select(p => Assert.Throws<ImageFormatException>(() => ImageFile.Load(p)).Message))
            Assert.DoesNotContain("\n", message);
    }

    [Fact]
    public void HugeDimensionsAreRefusedBeforeDecoding()
    {
        var huge = Png(ImageFile.MaxSide + 1, 1, 8, 0, (_, _) => [0]);
        var ex = Assert.Throws<ImageFormatException>(() => ImageFile.Decode(huge, "huge.png"));
        Assert.Contains("largest accepted side", ex.Message);
    }

    [Fact]
    public void AtomicWriteLeavesNoTemporaryFiles()
    {
        var dir = TestPlugins.TempDir();
        var path = Path.Combine(dir, "sub", "a.png");
        ImageFile.SavePng(RgbImage.Filled(2, 2, 1, 2, 3), path);
        ImageFile.SavePng(RgbImage.Filled(2, 2, 4, 5, 6), path);
        Assert.Equal((byte)4, ImageFile.Load(path)[0, 0].R);
        Assert.Equal(["a.png"], Directory.GetFiles(Path.Combine(dir, "sub")).Select(Path.GetFileName));
    }

    [Fact]
    public void TextRenderingIsDeterministicAndGridsHaveCaptions()
    {
        var items = new[] { new TextItem("HELLO", 32, 32, 14, "DejaVuSans-Bold", (0, 0, 0)) };
        var a = TextRenderer.Render(64, 64, (255, 255, 255), items);
        var b = TextRenderer.Render(64, 64, (255, 255, 255), items);
        Assert.Equal(a.Pixels.ToArray(), b.Pixels.ToArray());
        Assert.Contains(a.Pixels.ToArray(), v => v < 64); // ink was drawn
        var grid = ImageGrid.Compose([a, b, a], columns: 2, captions: ["one", "two", "three"]);
        Assert.True(grid.Width >= 2 * 64 && grid.Height >= 2 * 64);
        Assert.Throws<ArgumentException>(() => EmbeddedFonts.Get("Comic Sans"));
    }
}
