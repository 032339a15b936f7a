using NextFlowRL.Torch.Checkpoints;
using System.Text.Json;
using NextFlowRL.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace NextFlowRL.Rewards.Clip.Tests;

/// <summary>
/// Both layouts against features computed by PyTorch's own building blocks (nn.TransformerEncoderLayer with
/// norm_first, nn.MultiheadAttention, F.conv2d, F.layer_norm): Fixtures/make_torch_reference.py, run once with
/// Debian 12's python3-torch 1.13; the weights, configs and expected features are committed in Fixtures/torch-reference.
/// </summary>
[Collection(TorchCollection.Name)]
public sealed class TorchReferenceTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private sealed record Features(double[] Image, double[] Text);

    private sealed record Expected(double[] Pixels, long[] Ids, long[] Ends, Features Hf, Features Oc);

    private static string Fixture(string name) => Repo.PathOf("tests", "Rewards.Clip.Tests", "Fixtures", "torch-reference", name);

    private static readonly Expected Reference = JsonSerializer.Deserialize<Expected>(
        File.ReadAllText(Fixture("expected.json")), new JsonSerializerOptions { PropertyNameCaseInsensitive = true })!;

    [Fact]
    public void Hugging_face_layout_matches_pytorch()
    {
        using var model = new HfClipModel(ClipConfigReader.ReadHuggingFace(Fixture("hf-config.json")));
        ClipScorer.LoadWeights(model, StateDictFile.Read(Fixture("hf.safetensors")), "hf.safetensors");
        Check(model, Reference.Hf, output);
    }

    [Fact]
    public void Open_clip_layout_matches_pytorch()
    {
        var (arch, _, _) = ClipConfigReader.ReadOpenClip(Fixture("oc-config.json"));
        using var model = new OpenClipModel(arch);
        ClipScorer.LoadWeights(model, StateDictFile.Read(Fixture("oc.safetensors")), "oc.safetensors");
        Check(model, Reference.Oc, output);
    }

    private static void Check(IClipEncoder model, Features expected, Xunit.Abstractions.ITestOutputHelper output)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        int s = model.Architecture.ImageSize, ctx = model.Architecture.ContextLength;
        var pixels = torch.tensor(Reference.Pixels.Select(v => (float)v).ToArray(), new long[] { 2, 3, s, s });
        var ids = torch.tensor(Reference.Ids, new long[] { 2, ctx });
        var image = model.EncodeImage(pixels).flatten().data<float>().ToArray();
        var text = model.EncodeText(ids, torch.tensor(Reference.Ends)).flatten().data<float>().ToArray();
        Assert.Equal(expected.Image.Length, image.Length);
        Assert.Equal(expected.Text.Length, text.Length);
        double maxImage = expected.Image.Zip(image, (e, a) => Math.Abs(e - a)).Max();
        double maxText = expected.Text.Zip(text, (e, a) => Math.Abs(e - a)).Max();
        double scale = expected.Image.Concat(expected.Text).Max(Math.Abs);
        output.WriteLine($"max |diff| image {maxImage:E2}, text {maxText:E2} (largest feature magnitude {scale:F3})");
        Assert.True(maxImage < 1e-4, $"image features differ by up to {maxImage}");
        Assert.True(maxText < 1e-4, $"text features differ by up to {maxText}");
    }
}
