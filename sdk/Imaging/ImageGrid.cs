using SkiaSharp;

namespace NextFlowRL.Imaging;

/// <summary>Lays images out in a grid, optionally with a caption under each cell.</summary>
public static class ImageGrid
{
    /// <summary>
    /// Composes <paramref name="images"/> into rows of <paramref name="columns"/> cells, each image scaled by
    /// <paramref name="scale"/> (nearest neighbour, so pixels stay visible) with up to two caption lines below it.
    /// </summary>
    public static RgbImage Compose(IReadOnlyList<RgbImage> images, int columns, IReadOnlyList<string>? captions = null, int scale = 1)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) throw new ArgumentException("No images to lay out.", nameof(images));
        if (captions is not null && captions.Count != images.Count)
            throw new ArgumentException($"{captions.Count} captions for {images.Count} images.", nameof(captions));
        ArgumentOutOfRangeException.ThrowIfLessThan(columns, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(scale, 1);

        int cellW = images.Max(i => i.Width) * scale;
        int cellH = images.Max(i => i.Height) * scale;
        const float fontSize = 11;
        int captionH = captions is null ? 0 : (int)(fontSize * 2 + 6);
        int pad = 4;
        cellW = Math.Max(cellW, captions is null ? 0 : 96);
        columns = Math.Min(columns, images.Count);
        int rows = (images.Count + columns - 1) / columns;
        int width = columns * (cellW + pad) + pad;
        int height = rows * (cellH + captionH + pad) + pad;

        using var surface = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        using var canvas = new SKCanvas(surface);
        canvas.Clear(new SKColor(32, 32, 32));
        using var font = new SKFont(EmbeddedFonts.Get("DejaVuSans"), fontSize);
        using var paint = new SKPaint { Color = SKColors.White, IsAntialias = true };
        for (int n = 0; n < images.Count; n++)
        {
            int x = pad + (n % columns) * (cellW + pad);
            int y = pad + (n / columns) * (cellH + captionH + pad);
            using var bitmap = ImageFile.ToBitmap(images[n]);
            var dest = new SKRect(x, y, x + images[n].Width * scale, y + images[n].Height * scale);
            using var image = SKImage.FromBitmap(bitmap);
            canvas.DrawImage(image, dest, new SKSamplingOptions(SKFilterMode.Nearest));
            if (captions is not null)
            {
                var lines = Wrap(captions[n], font, cellW).Take(2).ToList();
                for (int l = 0; l < lines.Count; l++)
                    canvas.DrawText(lines[l], x, y + cellH + fontSize * (l + 1) + 1, SKTextAlign.Left, font, paint);
            }
        }
        canvas.Flush();
        return ImageFile.FromBitmap(surface);
    }

    private static IEnumerable<string> Wrap(string text, SKFont font, float maxWidth)
    {
        var line = "";
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = line.Length == 0 ? word : line + " " + word;
            if (font.MeasureText(candidate) <= maxWidth || line.Length == 0)
            {
                line = candidate;
            }
            else
            {
                yield return line;
                line = word;
            }
        }
        if (line.Length > 0) yield return line;
    }
}
