using NextFlowRL.Imaging;

namespace NextFlowRL.Rewards.Clip;

/// <summary>
/// CLIP image preprocessing: resize so the short side is <see cref="ResizeShortestEdge"/> (bicubic, PIL-style:
/// Keys cubic with a = -0.5, antialiased when shrinking, horizontal pass then vertical pass, each rounded to 8 bits),
/// the long side becomes <c>floor(size * long / short)</c>; center crop to <see cref="CropHeight"/> x
/// <see cref="CropWidth"/> (offset <c>(resized - crop) / 2</c> rounded down, zero padding if the crop is larger);
/// scale to [0, 1]; normalize each channel with <see cref="Mean"/> and <see cref="Std"/>.
/// </summary>
public sealed class ClipImageProcessor
{
    /// <summary>OpenAI CLIP's channel means.</summary>
    public static readonly IReadOnlyList<double> OpenAiMean = [0.48145466, 0.4578275, 0.40821073];

    /// <summary>OpenAI CLIP's channel standard deviations.</summary>
    public static readonly IReadOnlyList<double> OpenAiStd = [0.26862954, 0.26130258, 0.27577711];

    /// <summary>Creates a processor.</summary>
    public ClipImageProcessor(int resizeShortestEdge, int cropHeight, int cropWidth, IReadOnlyList<double>? mean = null, IReadOnlyList<double>? std = null)
    {
        if (resizeShortestEdge <= 0 || cropHeight <= 0 || cropWidth <= 0)
            throw new ArgumentOutOfRangeException(nameof(resizeShortestEdge), "preprocessing sizes must be positive");
        ResizeShortestEdge = resizeShortestEdge;
        CropHeight = cropHeight;
        CropWidth = cropWidth;
        Mean = mean ?? OpenAiMean;
        Std = std ?? OpenAiStd;
        if (Mean.Count != 3 || Std.Count != 3 || Std.Any(s => s <= 0))
            throw new ArgumentException("image mean and std need 3 values each, std positive");
    }

    /// <summary>Target length of the short side after resizing.</summary>
    public int ResizeShortestEdge { get; }

    /// <summary>Height of the center crop (the model's input height).</summary>
    public int CropHeight { get; }

    /// <summary>Width of the center crop (the model's input width).</summary>
    public int CropWidth { get; }

    /// <summary>Per-channel mean (RGB) subtracted after scaling to [0, 1].</summary>
    public IReadOnlyList<double> Mean { get; }

    /// <summary>Per-channel standard deviation (RGB) divided by.</summary>
    public IReadOnlyList<double> Std { get; }

    /// <summary>The resized size <c>(width, height)</c> of an image of <paramref name="width"/> x <paramref name="height"/>.</summary>
    public (int Width, int Height) ResizedSize(int width, int height)
    {
        if (width <= height)
            return (ResizeShortestEdge, (int)((long)ResizeShortestEdge * height / width));
        return ((int)((long)ResizeShortestEdge * width / height), ResizeShortestEdge);
    }

    /// <summary>Preprocesses one image into normalized CHW floats (<c>3 * CropHeight * CropWidth</c> values).</summary>
    public float[] Process(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var (rw, rh) = ResizedSize(image.Width, image.Height);
        var resized = ResizeBicubic(image.Pixels.ToArray(), image.Width, image.Height, rw, rh);
        int top = (rh - CropHeight) / 2, left = (rw - CropWidth) / 2;
        var output = new float[3 * CropHeight * CropWidth];
        int plane = CropHeight * CropWidth;
        for (int y = 0; y < CropHeight; y++)
        {
            int sy = y + top;
            for (int x = 0; x < CropWidth; x++)
            {
                int sx = x + left;
                bool inside = sy >= 0 && sy < rh && sx >= 0 && sx < rw;
                for (int c = 0; c < 3; c++)
                {
                    double v = inside ? resized[(sy * rw + sx) * 3 + c] / 255.0 : 0.0;
                    output[c * plane + y * CropWidth + x] = (float)((v - Mean[c]) / Std[c]);
                }
            }
        }
        return output;
    }

    /// <summary>Preprocesses a batch into a float tensor <c>[batch, 3, CropHeight, CropWidth]</c> on the CPU.</summary>
    public Tensor ProcessBatch(IReadOnlyList<RgbImage> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        int per = 3 * CropHeight * CropWidth;
        var all = new float[images.Count * per];
        for (int i = 0; i < images.Count; i++)
            Process(images[i]).CopyTo(all, i * per);
        return torch.tensor(all, new long[] { images.Count, 3, CropHeight, CropWidth });
    }

    /// <summary>
    /// Differentiable preprocessing of image tensors <c>[batch, 3, H, W]</c> with values in [0, 1]: bicubic
    /// antialiased resize of the short side (torch's interpolate; close to, not bit-identical with, the 8-bit path),
    /// center crop, normalization. Gradients flow back to <paramref name="images"/>.
    /// </summary>
    public Tensor ProcessTensor(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4 || images.shape[1] != 3)
            throw new ArgumentException($"expected image tensors [batch, 3, H, W], got [{string.Join(", ", images.shape)}]");
        int h = (int)images.shape[2], w = (int)images.shape[3];
        var (rw, rh) = ResizedSize(w, h);
        var x = (rw == w && rh == h)
            ? images
            : nn.functional.interpolate(images, new long[] { rh, rw }, mode: InterpolationMode.Bicubic, align_corners: false, antialias: true);
        int top = (rh - CropHeight) / 2, left = (rw - CropWidth) / 2;
        if (top < 0 || left < 0)
        {
            x = nn.functional.pad(x, new long[] { Math.Max(0, -left), Math.Max(0, CropWidth - rw - Math.Max(0, -left)), Math.Max(0, -top), Math.Max(0, CropHeight - rh - Math.Max(0, -top)) });
            top = Math.Max(top, 0);
            left = Math.Max(left, 0);
        }
        x = x[.., .., top..(top + CropHeight), left..(left + CropWidth)];
        var mean = torch.tensor(Mean.Select(v => (float)v).ToArray(), new long[] { 1, 3, 1, 1 }, device: images.device);
        var std = torch.tensor(Std.Select(v => (float)v).ToArray(), new long[] { 1, 3, 1, 1 }, device: images.device);
        return (x - mean) / std;
    }

    /// <summary>
    /// PIL-style separable bicubic resize of RGB24 bytes (Keys cubic, a = -0.5, support widened by the scale when
    /// shrinking; horizontal pass first; each pass rounded and clamped to 0..255).
    /// </summary>
    public static byte[] ResizeBicubic(byte[] rgb, int width, int height, int newWidth, int newHeight)
    {
        ArgumentNullException.ThrowIfNull(rgb);
        byte[] horizontal = width == newWidth ? rgb : Pass(rgb, width, height, newWidth, horizontal: true);
        return height == newHeight ? horizontal : Pass(horizontal, newWidth, height, newHeight, horizontal: false);
    }

    /// <summary>PIL's resampling weights: for each output index, the first input index and the normalized weights.</summary>
    public static (int Start, double[] Weights)[] Coefficients(int inSize, int outSize)
    {
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = 2.0 * filterScale;
        var result = new (int, double[])[outSize];
        for (int o = 0; o < outSize; o++)
        {
            double center = (o + 0.5) * scale;
            int min = Math.Max((int)(center - support + 0.5), 0);
            int max = Math.Min((int)(center + support + 0.5), inSize);
            var w = new double[max - min];
            double sum = 0;
            for (int i = 0; i < w.Length; i++)
            {
                w[i] = Cubic((i + min - center + 0.5) / filterScale);
                sum += w[i];
            }
            if (sum != 0)
                for (int i = 0; i < w.Length; i++) w[i] /= sum;
            result[o] = (min, w);
        }
        return result;
    }

    private static double Cubic(double x)
    {
        const double a = -0.5;
        x = Math.Abs(x);
        if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
        if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
        return 0;
    }

    private static byte[] Pass(byte[] src, int width, int height, int newSize, bool horizontal)
    {
        var coeffs = Coefficients(horizontal ? width : height, newSize);
        int outW = horizontal ? newSize : width, outH = horizontal ? height : newSize;
        var dst = new byte[outW * outH * 3];
        for (int y = 0; y < outH; y++)
        {
            for (int x = 0; x < outW; x++)
            {
                var (start, w) = coeffs[horizontal ? x : y];
                for (int c = 0; c < 3; c++)
                {
                    double acc = 0;
                    for (int k = 0; k < w.Length; k++)
                    {
                        int sx = horizontal ? start + k : x, sy = horizontal ? y : start + k;
                        acc += w[k] * src[(sy * width + sx) * 3 + c];
                    }
                    dst[(y * outW + x) * 3 + c] = (byte)Math.Clamp(Math.Round(acc, MidpointRounding.AwayFromZero), 0, 255);
                }
            }
        }
        return dst;
    }
}
