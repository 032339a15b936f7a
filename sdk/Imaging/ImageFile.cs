using SkiaSharp;

namespace NextFlowRL.Imaging;

/// <summary>Reads and writes image files as <see cref="RgbImage"/>.</summary>
public static class ImageFile
{
    /// <summary>Largest accepted image side; bigger images are refused rather than exhausting memory.</summary>
    public const int MaxSide = 16384;

    /// <summary>
    /// Reads a PNG, JPEG, WebP, BMP or GIF file into 8-bit RGB. Grayscale, palette and 16-bit images are converted;
    /// transparent pixels are composited over white.
    /// </summary>
    /// <exception cref="ImageFormatException">The file is missing, unreadable, corrupt or too large; the message names the file.</exception>
    public static RgbImage Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
            throw new ImageFormatException($"image '{path}' not found");
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ImageFormatException($"image '{path}' cannot be read: {e.Message}", e);
        }
        return Decode(bytes, path);
    }

    /// <summary>Decodes an encoded image (PNG, JPEG, ...) held in memory.</summary>
    /// <param name="encoded">The file bytes.</param>
    /// <param name="name">A name for error messages.</param>
    /// <exception cref="ImageFormatException">Not a decodable image, or too large.</exception>
    public static RgbImage Decode(ReadOnlySpan<byte> encoded, string name = "image")
    {
        if (encoded.IsEmpty)
            throw new ImageFormatException($"image '{name}' is empty");
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data);
        if (codec is null)
            throw new ImageFormatException($"image '{name}' is not a readable image (corrupt, or not PNG/JPEG/WebP/BMP/GIF)");
        var info = codec.Info;
        if (info.Width > MaxSide || info.Height > MaxSide)
            throw new ImageFormatException($"image '{name}' is {info.Width}x{info.Height}; the largest accepted side is {MaxSide}");
        using var bitmap = new SKBitmap(new SKImageInfo(info.Width, info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        var result = codec.GetPixels(bitmap.Info, bitmap.GetPixels());
        if (result is not (SKCodecResult.Success or SKCodecResult.IncompleteInput))
            throw new ImageFormatException($"image '{name}' cannot be decoded: {result}");
        if (result == SKCodecResult.IncompleteInput)
            throw new ImageFormatException($"image '{name}' is truncated");
        return FromRgba(bitmap);
    }

    /// <summary>Encodes as PNG bytes.</summary>
    public static byte[] EncodePng(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        using var bitmap = ToBitmap(image);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>Writes a PNG atomically (temp file + rename), creating the directory when needed.</summary>
    public static void SavePng(RgbImage image, string path)
    {
        ArgumentNullException.ThrowIfNull(image);
        AtomicFile.WriteAllBytes(path, EncodePng(image));
    }

    /// <summary>Converts to an opaque Skia bitmap (RGBA8888). The caller disposes it.</summary>
    public static SKBitmap ToBitmap(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var bitmap = new SKBitmap(new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var rgba = new byte[image.Width * image.Height * 4];
        var src = image.Pixels;
        for (int i = 0, j = 0; i < src.Length; i += 3, j += 4)
        {
            rgba[j] = src[i];
            rgba[j + 1] = src[i + 1];
            rgba[j + 2] = src[i + 2];
            rgba[j + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        return bitmap;
    }

    /// <summary>Converts any Skia bitmap to RGB, compositing transparency over white.</summary>
    public static RgbImage FromBitmap(SKBitmap bitmap)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        if (bitmap.ColorType == SKColorType.Rgba8888 && bitmap.AlphaType != SKAlphaType.Premul)
            return FromRgba(bitmap);
        using var converted = new SKBitmap(new SKImageInfo(bitmap.Width, bitmap.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        if (!bitmap.CopyTo(converted, SKColorType.Rgba8888))
        {
            using var canvas = new SKCanvas(converted);
            canvas.Clear(SKColors.Transparent);
            canvas.DrawBitmap(bitmap, 0, 0);
        }
        return FromRgba(converted);
    }

    private static RgbImage FromRgba(SKBitmap rgbaUnpremul)
    {
        int w = rgbaUnpremul.Width, h = rgbaUnpremul.Height;
        var rgba = new byte[w * h * 4];
        System.Runtime.InteropServices.Marshal.Copy(rgbaUnpremul.GetPixels(), rgba, 0, rgba.Length);
        var rgb = new byte[w * h * 3];
        for (int i = 0, j = 0; j < rgba.Length; i += 3, j += 4)
        {
            int a = rgba[j + 3];
            if (a == 255)
            {
                rgb[i] = rgba[j];
                rgb[i + 1] = rgba[j + 1];
                rgb[i + 2] = rgba[j + 2];
            }
            else
            {
                // Over white: c*a + 255*(1-a).
                rgb[i] = (byte)((rgba[j] * a + 255 * (255 - a) + 127) / 255);
                rgb[i + 1] = (byte)((rgba[j + 1] * a + 255 * (255 - a) + 127) / 255);
                rgb[i + 2] = (byte)((rgba[j + 2] * a + 255 * (255 - a) + 127) / 255);
            }
        }
        return new RgbImage(w, h, rgb);
    }
}

/// <summary>An image file that cannot be used; the message is one line that names the file and the reason.</summary>
public sealed class ImageFormatException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ImageFormatException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public ImageFormatException(string message, Exception inner) : base(message, inner) { }

    /// <summary>Creates the exception.</summary>
    public ImageFormatException() { }
}
