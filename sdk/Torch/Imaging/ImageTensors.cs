using NextFlowRL.Imaging;
using TorchSharp;
using static TorchSharp.torch;

namespace NextFlowRL.Torch.Imaging;

/// <summary>Conversions between images and float tensors <c>[B, 3, H, W]</c> in [-1, 1] (the range VQ-VAEs work in).</summary>
public static class ImageTensors
{
    /// <summary>Images (all the same size) to a float32 tensor <c>[B, 3, H, W]</c> in [-1, 1]: <c>v / 127.5 - 1</c>.</summary>
    /// <exception cref="ArgumentException">No images, or images of different sizes.</exception>
    public static Tensor FromImages(IReadOnlyList<RgbImage> images, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) throw new ArgumentException("No images.", nameof(images));
        int h = images[0].Height, w = images[0].Width;
        var data = new float[images.Count * 3 * h * w];
        for (int b = 0; b < images.Count; b++)
        {
            var p = images[b].Pixels;
            if (images[b].Width != w || images[b].Height != h)
                throw new ArgumentException($"All images must have the same size: image {b} is {images[b].Width}x{images[b].Height}, image 0 is {w}x{h}.");
            int plane = h * w, baseAt = b * 3 * plane;
            for (int i = 0; i < plane; i++)
            {
                data[baseAt + i] = p[3 * i] / 127.5f - 1f;
                data[baseAt + plane + i] = p[3 * i + 1] / 127.5f - 1f;
                data[baseAt + 2 * plane + i] = p[3 * i + 2] / 127.5f - 1f;
            }
        }
        return tensor(data, [images.Count, 3, h, w], device: device);
    }

    /// <summary>A tensor <c>[B, 3, H, W]</c> in [-1, 1] to images: <c>round((clamp(x) + 1) * 127.5)</c> per channel.</summary>
    public static IReadOnlyList<RgbImage> ToImages(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        var c = ((x.detach().clamp(-1, 1) + 1) * 127.5).round().to(ScalarType.Byte).permute(0, 2, 3, 1).contiguous().cpu();
        var bytes = c.data<byte>().ToArray();
        int b = (int)c.shape[0], h = (int)c.shape[1], w = (int)c.shape[2], n = h * w * 3;
        return Enumerable.Range(0, b).Select(i => new RgbImage(w, h, bytes.AsSpan(i * n, n))).ToArray();
    }
}
