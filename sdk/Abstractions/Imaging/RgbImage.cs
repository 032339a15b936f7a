namespace NextFlowRL.Imaging;

/// <summary>
/// An immutable 8-bit RGB image: <see cref="Width"/> x <see cref="Height"/> pixels stored row-major as
/// R, G, B bytes (no alpha, no padding). The currency of rewards and policies.
/// </summary>
public sealed class RgbImage
{
    private readonly byte[] _pixels;

    /// <summary>Creates an image from RGB24 row-major bytes (copied).</summary>
    /// <exception cref="ArgumentException">The size is not positive or the buffer length is not width*height*3.</exception>
    public RgbImage(int width, int height, ReadOnlySpan<byte> rgb)
    {
        if (width <= 0 || height <= 0)
            throw new ArgumentException($"Image size must be positive, got {width}x{height}.");
        if (rgb.Length != checked(width * height * 3))
            throw new ArgumentException($"Expected {width * height * 3} RGB bytes for {width}x{height}, got {rgb.Length}.");
        Width = width;
        Height = height;
        _pixels = rgb.ToArray();
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>RGB24 bytes, row-major, <c>Width*Height*3</c> long.</summary>
    public ReadOnlySpan<byte> Pixels => _pixels;

    /// <summary>Creates an image filled with one colour.</summary>
    public static RgbImage Filled(int width, int height, byte r, byte g, byte b)
    {
        var data = new byte[checked(width * height * 3)];
        for (int i = 0; i < data.Length; i += 3)
        {
            data[i] = r;
            data[i + 1] = g;
            data[i + 2] = b;
        }
        return new RgbImage(width, height, data);
    }

    /// <summary>The (r, g, b) value at pixel (x, y).</summary>
    public (byte R, byte G, byte B) this[int x, int y]
    {
        get
        {
            if ((uint)x >= (uint)Width || (uint)y >= (uint)Height)
                throw new ArgumentOutOfRangeException(nameof(x), $"Pixel ({x},{y}) is outside {Width}x{Height}.");
            int o = (y * Width + x) * 3;
            return (_pixels[o], _pixels[o + 1], _pixels[o + 2]);
        }
    }
}
