using SkiaSharp;

namespace NextFlowRL.Imaging;

/// <summary>One piece of text to draw.</summary>
/// <param name="Text">The text.</param>
/// <param name="CenterX">Horizontal centre of the text in pixels.</param>
/// <param name="CenterY">Vertical centre of the text's cap height in pixels.</param>
/// <param name="Size">Font size in pixels.</param>
/// <param name="Font">An <see cref="EmbeddedFonts"/> name.</param>
/// <param name="Color">Fill colour (r, g, b).</param>
public sealed record TextItem(string Text, float CenterX, float CenterY, float Size, string Font, (byte R, byte G, byte B) Color);

/// <summary>Deterministic anti-aliased text rendering with the embedded fonts.</summary>
public static class TextRenderer
{
    /// <summary>Renders text items onto a solid background.</summary>
    public static RgbImage Render(int width, int height, (byte R, byte G, byte B) background, IEnumerable<TextItem> items)
    {
        ArgumentNullException.ThrowIfNull(items);
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(new SKColor(background.R, background.G, background.B));
        foreach (var item in items)
        {
            using var font = new SKFont(EmbeddedFonts.Get(item.Font), item.Size) { Edging = SKFontEdging.Antialias, Subpixel = false };
            using var paint = new SKPaint { Color = new SKColor(item.Color.R, item.Color.G, item.Color.B), IsAntialias = true };
            var (w, capHeight) = Measure(item.Text, item.Font, item.Size);
            canvas.DrawText(item.Text, item.CenterX - w / 2, item.CenterY + capHeight / 2, SKTextAlign.Left, font, paint);
        }
        canvas.Flush();
        return ImageFile.FromBitmap(bitmap);
    }

    /// <summary>Advance width and cap height of <paramref name="text"/> in pixels.</summary>
    public static (float Width, float CapHeight) Measure(string text, string font, float size)
    {
        using var f = new SKFont(EmbeddedFonts.Get(font), size);
        return (f.MeasureText(text), f.Metrics.CapHeight);
    }
}
