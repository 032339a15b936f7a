using NextFlowRL.Imaging;

namespace NextFlowRL.Testing;

/// <summary>
/// Fixed inputs for reward tests: rendered with the embedded fonts (identical on every machine), so a reward's scores
/// on them can be snapshotted.
/// </summary>
public static class TestImages
{
    /// <summary>Black text centred on white, its cap height a third of the image height.</summary>
    public static RgbImage Text(string text, int width = 256, int height = 64, string font = "DejaVuSans")
    {
        ArgumentException.ThrowIfNullOrEmpty(text);
        return TextRenderer.Render(width, height, (255, 255, 255), [new TextItem(text, width / 2f, height / 2f, height * 0.45f, font, (0, 0, 0))]);
    }

    /// <summary>One colour everywhere.</summary>
    public static RgbImage Solid(byte r, byte g, byte b, int width = 64, int height = 64) => RgbImage.Filled(width, height, r, g, b);

    /// <summary>A horizontal gray ramp from black (left) to white (right).</summary>
    public static RgbImage Ramp(int width = 64, int height = 64)
    {
        var pixels = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                byte v = (byte)(width == 1 ? 0 : 255 * x / (width - 1));
                int i = (y * width + x) * 3;
                pixels[i] = pixels[i + 1] = pixels[i + 2] = v;
            }
        return new RgbImage(width, height, pixels);
    }
}
