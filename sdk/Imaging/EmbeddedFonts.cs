using System.Collections.Concurrent;
using SkiaSharp;

namespace NextFlowRL.Imaging;

/// <summary>
/// DejaVu fonts embedded in this assembly (license: Fonts/LICENSE-DejaVu.txt), so text renders the same on every
/// machine without fontconfig.
/// </summary>
public static class EmbeddedFonts
{
    /// <summary>Names of the embedded fonts.</summary>
    public static IReadOnlyList<string> Names { get; } =
        ["DejaVuSans", "DejaVuSans-Bold", "DejaVuSansMono-Bold", "DejaVuSerif-Bold"];

    private static readonly ConcurrentDictionary<string, SKTypeface> Cache = new(StringComparer.Ordinal);

    /// <summary>The typeface of an embedded font. Typefaces are cached and must not be disposed.</summary>
    /// <exception cref="ArgumentException">Unknown font name.</exception>
    public static SKTypeface Get(string name)
    {
        if (!Names.Contains(name))
            throw new ArgumentException($"Unknown font '{name}'. Embedded fonts: {string.Join(", ", Names)}.", nameof(name));
        return Cache.GetOrAdd(name, static n =>
        {
            using var stream = typeof(EmbeddedFonts).Assembly.GetManifestResourceStream($"NextFlowRL.Imaging.Fonts.{n}.ttf")
                ?? throw new InvalidOperationException($"Font resource {n} missing from {typeof(EmbeddedFonts).Assembly.GetName().Name}.");
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            using var data = SKData.CreateCopy(copy.ToArray());
            return SKTypeface.FromData(data) ?? throw new InvalidOperationException($"Font {n} could not be loaded.");
        });
    }
}
