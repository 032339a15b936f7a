using NextFlowRL.Imaging;
using TorchSharp;

namespace NextFlowRL.Rewards.Clip.Tests;

[Collection(TorchCollection.Name)]
public sealed class PreprocessingTests
{
    // Keys cubic (a = -0.5) at the taps of a 2x downscale, computed by hand:
    // k(0.25) = (1.5*0.25 - 2.5)*0.25^2 + 1 = 0.8671875; k(0.75) = (1.5*0.75 - 2.5)*0.75^2 + 1 = 0.2265625;
    // k(1.25) = -0.5*(((1.25 - 5)*1.25 + 8)*1.25 - 4) = -0.0703125; their sum over 4 taps = 1.890625.
    private static readonly double[] Down2 = [0.8671875 / 1.890625, 0.8671875 / 1.890625, 0.2265625 / 1.890625, -0.0703125 / 1.890625];

    [Fact]
    public void Downscale_weights_are_the_antialiased_keys_cubic()
    {
        var c = ClipImageProcessor.Coefficients(4, 2);
        // Output 0 has center 1.0: inputs 0..3 sit at -0.25, 0.25, 0.75, 1.25 filter units.
        Assert.Equal(0, c[0].Start);
        double[] expected0 = [Down2[0], Down2[1], Down2[2], Down2[3]];
        // Output 1 has center 3.0: inputs 0..3 sit at -1.25, -0.75, -0.25, 0.25.
        double[] expected1 = [Down2[3], Down2[2], Down2[1], Down2[0]];
        Assert.Equal(0, c[1].Start);
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(expected0[i], c[0].Weights[i], 12);
            Assert.Equal(expected1[i], c[1].Weights[i], 12);
        }
    }

    [Fact]
    public void Upscale_weights_interpolate_without_widening()
    {
        // 2 -> 4: scale 0.5, support 2 input pixels; output 0 has center 0.25 (input coordinates), input pixel 0 has
        // center 0.5 (distance 0.25), pixel 1 center 1.5 (distance 1.25); taps outside the image are dropped and the
        // rest renormalized: k(0.25) = 0.8671875, k(1.25) = -0.0703125.
        var c = ClipImageProcessor.Coefficients(2, 4);
        Assert.Equal(0, c[0].Start);
        Assert.Equal(2, c[0].Weights.Length);
        Assert.Equal(0.8671875 / (0.8671875 - 0.0703125), c[0].Weights[0], 12);
        Assert.Equal(-0.0703125 / (0.8671875 - 0.0703125), c[0].Weights[1], 12);
    }

    [Fact]
    public void Downscale_matches_hand_computed_pixels()
    {
        // Columns 0, 100, 200, 40 in every row and channel; 4x4 -> 2x2.
        double k25 = 0.8671875, k75 = 0.2265625, k125 = -0.0703125, sum = 1.890625;
        double left = (k25 * 0 + k25 * 100 + k75 * 200 + k125 * 40) / sum;     // taps at -0.25, 0.25, 0.75, 1.25
        double right = (k125 * 0 + k75 * 100 + k25 * 200 + k25 * 40) / sum;    // taps at -1.25, -0.75, -0.25, 0.25
        var cols = new byte[] { 0, 100, 200, 40 };
        var px = new byte[4 * 4 * 3];
        for (int i = 0; i < px.Length; i++) px[i] = cols[i / 3 % 4];
        var output = ClipImageProcessor.ResizeBicubic(px, 4, 4, 2, 2);
        Assert.Equal((byte)Math.Round(left, MidpointRounding.AwayFromZero), output[0]);
        Assert.Equal((byte)Math.Round(right, MidpointRounding.AwayFromZero), output[3]);
        Assert.Equal(output[0], output[6]); // the vertical pass of constant columns keeps them
        Assert.Equal(output[3], output[9]);
    }

    [Fact]
    public void Resize_keeps_aspect_with_the_short_side_at_the_target()
    {
        var p = new ClipImageProcessor(224, 224, 224);
        Assert.Equal((298, 224), p.ResizedSize(640, 480));
        Assert.Equal((224, 298), p.ResizedSize(480, 640));
        Assert.Equal((224, 224), p.ResizedSize(512, 512));
    }

    [Fact]
    public void Normalizes_with_mean_and_std()
    {
        var p = new ClipImageProcessor(4, 4, 4);
        var values = p.Process(RgbImage.Filled(4, 4, 255, 0, 128));
        Assert.Equal(48, values.Length);
        Assert.Equal((1.0 - 0.48145466) / 0.26862954, values[0], 5);
        Assert.Equal((0.0 - 0.4578275) / 0.26130258, values[16], 5);
        Assert.Equal((128 / 255.0 - 0.40821073) / 0.27577711, values[47], 5);
    }

    [Fact]
    public void Center_crops_the_long_side()
    {
        // 8 wide x 4 high: columns 0-1 black, 2-3 red, 4-5 blue, 6-7 black; short side already 4 -> crop columns 2..5.
        var px = new byte[8 * 4 * 3];
        for (int y = 0; y < 4; y++)
        for (int x = 0; x < 8; x++)
        {
            int o = (y * 8 + x) * 3;
            if (x is 2 or 3) px[o] = 255;
            if (x is 4 or 5) px[o + 2] = 255;
        }
        var p = new ClipImageProcessor(4, 4, 4, [0, 0, 0], [1, 1, 1]);
        var v = p.Process(new RgbImage(8, 4, px));
        Assert.Equal([1f, 1f, 0f, 0f], v[..4]);          // red plane, row 0
        Assert.Equal([0f, 0f, 1f, 1f], v[32..36]);       // blue plane, row 0
    }

    [Fact]
    public void Tensor_path_equals_byte_path_without_resize_and_is_differentiable()
    {
        var image = TinyModels.Picture(16, 16, 1);
        var p = new ClipImageProcessor(16, 16, 16);
        using var scope = torch.NewDisposeScope();
        var bytes = torch.tensor(image.Pixels.ToArray().Select(b => b / 255f).ToArray(), new long[] { 1, 16, 16, 3 }).permute(0, 3, 1, 2).contiguous();
        bytes.requires_grad = true;
        var t = p.ProcessTensor(bytes);
        var expected = p.Process(image);
        var actual = t.detach().flatten().data<float>().ToArray();
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 4);
        t.sum().backward();
        Assert.True(bytes.grad is not null && bytes.grad.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void Tensor_path_resizes_close_to_the_byte_path()
    {
        var image = TinyModels.Picture(48, 32, 2);
        var p = new ClipImageProcessor(16, 16, 16, [0, 0, 0], [1, 1, 1]);
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(image.Pixels.ToArray().Select(b => b / 255f).ToArray(), new long[] { 1, 32, 48, 3 }).permute(0, 3, 1, 2).contiguous();
        var t = p.ProcessTensor(x).flatten().data<float>().ToArray();
        var b = p.Process(image);
        double meanAbs = t.Zip(b, (u, v) => Math.Abs(u - v)).Average();
        Assert.True(meanAbs < 0.02, $"mean |tensor - bytes| = {meanAbs}");
    }
}
