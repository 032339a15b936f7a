using System.Runtime.InteropServices;
using NextFlowRL.Imaging;

namespace NextFlowRL.Rewards.Ocr.Engine;

/// <summary>A word Tesseract recognized: text, confidence in [0, 1] and its box in the scored image's pixels.</summary>
/// <param name="Text">The recognized text as Tesseract returned it (not normalized).</param>
/// <param name="Confidence">Tesseract's word confidence divided by 100, clamped to [0, 1].</param>
/// <param name="X">Left edge in pixels of the original image.</param>
/// <param name="Y">Top edge in pixels of the original image.</param>
/// <param name="Width">Width in pixels (at least 1).</param>
/// <param name="Height">Height in pixels (at least 1).</param>
public sealed record RecognizedWord(string Text, double Confidence, int X = 0, int Y = 0, int Width = 1, int Height = 1);

/// <summary>How a <see cref="TesseractEngine"/> reads images.</summary>
/// <param name="Language">Tesseract language(s), e.g. <c>eng</c> or <c>eng+deu</c>.</param>
/// <param name="TessdataPath">Folder holding <c>&lt;language&gt;.traineddata</c>; null finds the system folder.</param>
/// <param name="PageSegmentationMode">Tesseract page segmentation mode (0-13).</param>
/// <param name="UpscaleBelow">Images whose longest side is below this many pixels are upscaled.</param>
/// <param name="UpscaleFactor">Upscaling factor for small images.</param>
/// <param name="MaxSide">Images whose longest side is above this are downscaled to it before recognition.</param>
public sealed record TesseractSettings(
    string Language = "eng",
    string? TessdataPath = null,
    int PageSegmentationMode = 11,
    int UpscaleBelow = 256,
    double UpscaleFactor = 3,
    int MaxSide = 4096);

/// <summary>
/// One Tesseract engine (a <c>TessBaseAPI</c> handle) with its language data loaded. Not thread-safe: use one per
/// thread (<see cref="OcrEnginePool"/> does). Creating one loads the language data (tens to hundreds of milliseconds);
/// reuse it.
/// </summary>
/// <remarks>
/// Images are converted to 8-bit luma, rescaled (small images up by <see cref="TesseractSettings.UpscaleFactor"/>, huge
/// ones down to <see cref="TesseractSettings.MaxSide"/>) and framed by a 10-pixel border of the image's edge colour
/// before recognition; word boxes are mapped back to the original image's pixels.
/// </remarks>
public sealed class TesseractEngine : IDisposable
{
    private const int Border = 10;
    private IntPtr _handle;

    /// <summary>Creates an engine and loads its language data.</summary>
    /// <exception cref="OcrEngineException">The native library or the language data is missing or cannot be loaded.</exception>
    public TesseractEngine(TesseractSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        Settings = settings;
        TessdataPath = TesseractLibrary.FindTessdata(settings.TessdataPath, settings.Language);
        IntPtr handle;
        try
        {
            handle = TesseractNative.TessBaseAPICreate();
        }
        catch (DllNotFoundException e)
        {
            throw new OcrEngineException($"the Tesseract 5 library could not be loaded: {e.Message}. {TesseractLibrary.InstallHint}", e);
        }
        catch (TypeInitializationException e) when (e.InnerException is OcrEngineException inner)
        {
            throw new OcrEngineException(inner.Message, inner);
        }
        if (handle == IntPtr.Zero) throw new OcrEngineException("Tesseract could not create an engine (TessBaseAPICreate returned null).");
        if (TesseractNative.TessBaseAPIInit3(handle, TessdataPath, settings.Language) != 0)
        {
            TesseractNative.TessBaseAPIDelete(handle);
            throw new OcrEngineException(
                $"Tesseract could not load language '{settings.Language}' from '{TessdataPath}'. {TesseractLocations.LanguageHint(HostPlatform.Current.Os, settings.Language)}");
        }
        // Tesseract prints diagnostics ("Empty page!!", resolution guesses) to stderr; send them nowhere.
        TesseractNative.TessBaseAPISetVariable(handle, "debug_file", OperatingSystem.IsWindows() ? "NUL" : "/dev/null");
        TesseractNative.TessBaseAPISetPageSegMode(handle, settings.PageSegmentationMode);
        _handle = handle;
    }

    /// <summary>The settings the engine was created with.</summary>
    public TesseractSettings Settings { get; }

    /// <summary>The language-data folder in use.</summary>
    public string TessdataPath { get; }

    /// <summary>The native library's version string, e.g. <c>5.3.0</c>.</summary>
    /// <exception cref="OcrEngineException">The native library cannot be loaded.</exception>
    public static string NativeVersion
    {
        get
        {
            try
            {
                return Marshal.PtrToStringUTF8(TesseractNative.TessVersion()) ?? "";
            }
            catch (DllNotFoundException e)
            {
                throw new OcrEngineException($"the Tesseract 5 library could not be loaded: {e.Message}. {TesseractLibrary.InstallHint}", e);
            }
        }
    }

    /// <summary>The scale applied to an image of this size before recognition (1 = unchanged).</summary>
    public static double ScaleFor(int width, int height, TesseractSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        int longest = Math.Max(width, height);
        if (longest > settings.MaxSide) return settings.MaxSide / (double)longest;
        if (longest < settings.UpscaleBelow && settings.UpscaleFactor > 1) return settings.UpscaleFactor;
        return 1;
    }

    /// <summary>Recognizes the words of an image (word level, reading order as Tesseract gives it).</summary>
    /// <returns>The words; empty for a blank image or one without readable text.</returns>
    /// <exception cref="OcrEngineException">Tesseract failed on this image.</exception>
    public IReadOnlyList<RecognizedWord> Recognize(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        ObjectDisposedException.ThrowIf(_handle == IntPtr.Zero, this);
        double scale = ScaleFor(image.Width, image.Height, Settings);
        var (gray, w, h) = Preprocess(image, scale);
        var words = new List<RecognizedWord>();
        unsafe
        {
            fixed (byte* p = gray)
            {
                TesseractNative.TessBaseAPISetImage(_handle, p, w, h, 1, w);
                TesseractNative.TessBaseAPISetSourceResolution(_handle, 300);
                try
                {
                    if (TesseractNative.TessBaseAPIRecognize(_handle, IntPtr.Zero) != 0)
                        throw new OcrEngineException($"Tesseract failed to recognize a {image.Width}x{image.Height} image.");
                    ReadWords(image, scale, words);
                }
                finally
                {
                    TesseractNative.TessBaseAPIClear(_handle);
                }
            }
        }
        return words;
    }

    private void ReadWords(RgbImage image, double scale, List<RecognizedWord> words)
    {
        IntPtr it = TesseractNative.TessBaseAPIGetIterator(_handle);
        if (it == IntPtr.Zero) return;
        try
        {
            do
            {
                IntPtr textPtr = TesseractNative.TessResultIteratorGetUTF8Text(it, TesseractNative.RilWord);
                if (textPtr == IntPtr.Zero) continue;
                string text;
                try
                {
                    text = (Marshal.PtrToStringUTF8(textPtr) ?? "").Trim();
                }
                finally
                {
                    TesseractNative.TessDeleteText(textPtr);
                }
                if (text.Length == 0) continue;
                double confidence = Math.Clamp(TesseractNative.TessResultIteratorConfidence(it, TesseractNative.RilWord) / 100.0, 0, 1);
                IntPtr page = TesseractNative.TessResultIteratorGetPageIteratorConst(it);
                int x = 0, y = 0, bw = image.Width, bh = image.Height;
                if (page != IntPtr.Zero && TesseractNative.TessPageIteratorBoundingBox(page, TesseractNative.RilWord, out int l, out int t, out int r, out int b) != 0)
                    (x, y, bw, bh) = ToOriginal(l, t, r, b, scale, image.Width, image.Height);
                words.Add(new RecognizedWord(text, confidence, x, y, bw, bh));
            }
            while (TesseractNative.TessResultIteratorNext(it, TesseractNative.RilWord) != 0);
        }
        finally
        {
            TesseractNative.TessResultIteratorDelete(it);
        }
    }

    /// <summary>Maps a box of the preprocessed image (scaled, with border) back to the original image, clamped to it.</summary>
    internal static (int X, int Y, int Width, int Height) ToOriginal(int left, int top, int right, int bottom, double scale, int width, int height)
    {
        int x0 = Math.Clamp((int)Math.Floor((left - Border) / scale), 0, width - 1);
        int y0 = Math.Clamp((int)Math.Floor((top - Border) / scale), 0, height - 1);
        int x1 = Math.Clamp((int)Math.Ceiling((right - Border) / scale), x0 + 1, width);
        int y1 = Math.Clamp((int)Math.Ceiling((bottom - Border) / scale), y0 + 1, height);
        return (x0, y0, x1 - x0, y1 - y0);
    }

    /// <summary>Luma, bilinear rescale by <paramref name="scale"/>, and a border of the edge colour.</summary>
    internal static (byte[] Pixels, int Width, int Height) Preprocess(RgbImage image, double scale)
    {
        int sw = image.Width, sh = image.Height;
        var luma = new byte[sw * sh];
        var rgb = image.Pixels;
        long edgeSum = 0;
        int edgeCount = 0;
        for (int y = 0; y < sh; y++)
        {
            for (int x = 0; x < sw; x++)
            {
                int o = (y * sw + x) * 3;
                byte v = (byte)((299 * rgb[o] + 587 * rgb[o + 1] + 114 * rgb[o + 2] + 500) / 1000);
                luma[y * sw + x] = v;
                if (x == 0 || y == 0 || x == sw - 1 || y == sh - 1)
                {
                    edgeSum += v;
                    edgeCount++;
                }
            }
        }
        byte edge = (byte)(edgeSum / edgeCount);
        int dw = Math.Max(1, (int)Math.Round(sw * scale)), dh = Math.Max(1, (int)Math.Round(sh * scale));
        int w = dw + 2 * Border, h = dh + 2 * Border;
        var output = new byte[w * h];
        Array.Fill(output, edge);
        double fx = (double)sw / dw, fy = (double)sh / dh;
        for (int y = 0; y < dh; y++)
        {
            double sy = Math.Clamp((y + 0.5) * fy - 0.5, 0, sh - 1);
            int y0 = (int)sy, y1 = Math.Min(y0 + 1, sh - 1);
            double wy = sy - y0;
            int row = (y + Border) * w + Border;
            for (int x = 0; x < dw; x++)
            {
                double sx = Math.Clamp((x + 0.5) * fx - 0.5, 0, sw - 1);
                int x0 = (int)sx, x1 = Math.Min(x0 + 1, sw - 1);
                double wx = sx - x0;
                double top = luma[y0 * sw + x0] * (1 - wx) + luma[y0 * sw + x1] * wx;
                double bottom = luma[y1 * sw + x0] * (1 - wx) + luma[y1 * sw + x1] * wx;
                output[row + x] = (byte)Math.Round(top * (1 - wy) + bottom * wy);
            }
        }
        return (output, w, h);
    }

    /// <summary>Releases the native engine.</summary>
    public void Dispose()
    {
        var handle = Interlocked.Exchange(ref _handle, IntPtr.Zero);
        if (handle == IntPtr.Zero) return;
        TesseractNative.TessBaseAPIEnd(handle);
        TesseractNative.TessBaseAPIDelete(handle);
    }
}

/// <summary>Tesseract is missing, misconfigured, or failed; the message says what to do.</summary>
public sealed class OcrEngineException : Exception
{
    /// <summary>Creates the exception.</summary>
    public OcrEngineException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public OcrEngineException(string message, Exception inner) : base(message, inner) { }

    /// <summary>Creates the exception.</summary>
    public OcrEngineException() { }
}
