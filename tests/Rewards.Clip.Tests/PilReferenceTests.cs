using System.Text.Json;
using NextFlowRL.Testing;
using Xunit.Abstractions;

namespace NextFlowRL.Rewards.Clip.Tests;

/// <summary>
/// The 8-bit bicubic resize against Pillow's own output (Fixtures/pil-bicubic.json, made with Debian 12's
/// python3-pil 9.4.0: random RGB images resized with Image.BICUBIC, the resample CLIP's preprocessing uses).
/// </summary>
public sealed class PilReferenceTests(ITestOutputHelper output)
{
    private sealed record Case(int Width, int Height, int NewWidth, int NewHeight, string Input, string Pil);

    private sealed record Fixture(string Generator, Case[] Cases);

    [Fact]
    public void Bicubic_resize_matches_pillow_within_one_level()
    {
        var fixture = JsonSerializer.Deserialize<Fixture>(
            File.ReadAllText(Repo.PathOf("tests", "Rewards.Clip.Tests", "Fixtures", "pil-bicubic.json")),
            new JsonSerializerOptions { PropertyNameCaseInsensitive = true })!;
        Assert.Equal(3, fixture.Cases.Length);
        foreach (var c in fixture.Cases)
        {
            var ours = ClipImageProcessor.ResizeBicubic(Convert.FromBase64String(c.Input), c.Width, c.Height, c.NewWidth, c.NewHeight);
            var pil = Convert.FromBase64String(c.Pil);
            Assert.Equal(pil.Length, ours.Length);
            int maxDiff = 0, exact = 0;
            for (int i = 0; i < pil.Length; i++)
            {
                int d = Math.Abs(pil[i] - ours[i]);
                maxDiff = Math.Max(maxDiff, d);
                if (d == 0) exact++;
            }
            output.WriteLine($"{c.Width}x{c.Height} -> {c.NewWidth}x{c.NewHeight}: max |diff| {maxDiff}, exact {100.0 * exact / pil.Length:0.0}%");
            Assert.True(maxDiff <= 1, $"{c.Width}x{c.Height} -> {c.NewWidth}x{c.NewHeight}: max difference {maxDiff}");
            Assert.True(exact >= 0.95 * pil.Length, $"only {exact} of {pil.Length} values identical");
        }
    }
}
