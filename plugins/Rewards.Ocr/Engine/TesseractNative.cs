using System.Reflection;
using System.Runtime.InteropServices;

namespace NextFlowRL.Rewards.Ocr.Engine;

/// <summary>
/// The parts of Tesseract 5's C API (<c>tesseract/capi.h</c>) this plugin calls. The library name <c>tesseract</c> is
/// resolved per platform by <see cref="TesseractLibrary"/>.
/// </summary>
internal static partial class TesseractNative
{
    internal const string Library = "tesseract";

    /// <summary><c>TessPageIteratorLevel</c>.</summary>
    internal const int RilWord = 3;

    static TesseractNative() => TesseractLibrary.EnsureResolver();

    [LibraryImport(Library)]
    internal static partial IntPtr TessVersion();

    [LibraryImport(Library)]
    internal static partial IntPtr TessBaseAPICreate();

    [LibraryImport(Library)]
    internal static partial void TessBaseAPIDelete(IntPtr handle);

    [LibraryImport(Library)]
    internal static partial void TessBaseAPIEnd(IntPtr handle);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int TessBaseAPIInit3(IntPtr handle, string? dataPath, string language);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int TessBaseAPISetVariable(IntPtr handle, string name, string value);

    [LibraryImport(Library)]
    internal static partial void TessBaseAPISetPageSegMode(IntPtr handle, int mode);

    [LibraryImport(Library)]
    internal static unsafe partial void TessBaseAPISetImage(IntPtr handle, byte* data, int width, int height, int bytesPerPixel, int bytesPerLine);

    [LibraryImport(Library)]
    internal static partial void TessBaseAPISetSourceResolution(IntPtr handle, int ppi);

    [LibraryImport(Library)]
    internal static partial int TessBaseAPIRecognize(IntPtr handle, IntPtr monitor);

    [LibraryImport(Library)]
    internal static partial IntPtr TessBaseAPIGetIterator(IntPtr handle);

    [LibraryImport(Library)]
    internal static partial void TessBaseAPIClear(IntPtr handle);

    [LibraryImport(Library)]
    internal static partial void TessResultIteratorDelete(IntPtr iterator);

    [LibraryImport(Library)]
    internal static partial int TessResultIteratorNext(IntPtr iterator, int level);

    [LibraryImport(Library)]
    internal static partial IntPtr TessResultIteratorGetUTF8Text(IntPtr iterator, int level);

    [LibraryImport(Library)]
    internal static partial float TessResultIteratorConfidence(IntPtr iterator, int level);

    [LibraryImport(Library)]
    internal static partial IntPtr TessResultIteratorGetPageIteratorConst(IntPtr iterator);

    [LibraryImport(Library)]
    internal static partial int TessPageIteratorBoundingBox(IntPtr pageIterator, int level, out int left, out int top, out int right, out int bottom);

    [LibraryImport(Library)]
    internal static partial void TessDeleteText(IntPtr text);
}

/// <summary>
/// Finds the native Tesseract 5 library. Names tried, in order:
/// <list type="bullet">
/// <item>only the file named by the environment variable <c>NEXTFLOW_TESSERACT_LIBRARY</c>, when set;</item>
/// <item>Linux: <c>libtesseract.so.5</c>, <c>libtesseract.so</c> (Debian/Ubuntu package <c>libtesseract5</c>);</item>
/// <item>macOS: <c>libtesseract.5.dylib</c>, <c>libtesseract.dylib</c>, also under <c>/opt/homebrew/lib</c> and
/// <c>/usr/local/lib</c> (Homebrew <c>tesseract</c>);</item>
/// <item>Windows: <c>tesseract55.dll</c>, <c>tesseract54.dll</c>, <c>tesseract53.dll</c>, <c>tesseract50.dll</c>,
/// <c>libtesseract-5.dll</c> (vcpkg / MSYS2 / UB Mannheim builds; put the folder on <c>PATH</c>).</item>
/// </list>
/// Before the first load on Linux and macOS, <c>OMP_THREAD_LIMIT=1</c> is set in the native environment unless already
/// set: Tesseract's OpenMP threads would otherwise fight the reward's own one-engine-per-core workers.
/// </summary>
internal static partial class TesseractLibrary
{
    /// <summary>Environment variable naming the native library file explicitly.</summary>
    internal const string PathVariable = "NEXTFLOW_TESSERACT_LIBRARY";

    private static int _installed;

    internal static void EnsureResolver()
    {
        if (Interlocked.Exchange(ref _installed, 1) == 1) return;
        NativeLibrary.SetDllImportResolver(typeof(TesseractLibrary).Assembly, Resolve);
    }

    /// <summary>The candidate file names for the current platform.</summary>
    internal static IReadOnlyList<string> Candidates()
    {
        // An explicit path is the only candidate: silently loading another library would hide the mistake.
        if (Environment.GetEnvironmentVariable(PathVariable) is { Length: > 0 } explicitPath) return [explicitPath];
        var list = new List<string>();
        if (OperatingSystem.IsWindows())
            list.AddRange(["tesseract55.dll", "tesseract54.dll", "tesseract53.dll", "tesseract50.dll", "libtesseract-5.dll"]);
        else if (OperatingSystem.IsMacOS())
            list.AddRange(["libtesseract.5.dylib", "libtesseract.dylib", "/opt/homebrew/lib/libtesseract.5.dylib", "/usr/local/lib/libtesseract.5.dylib"]);
        else
            list.AddRange(["libtesseract.so.5", "libtesseract.so"]);
        return list;
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name == "c")
        {
            if (OperatingSystem.IsMacOS()) return NativeLibrary.Load("libSystem.dylib");
            return NativeLibrary.TryLoad("libc.so.6", out var libc) ? libc : IntPtr.Zero;
        }
        if (name != TesseractNative.Library) return IntPtr.Zero;
        LimitOpenMpThreads();
        foreach (var candidate in Candidates())
        {
            if (NativeLibrary.TryLoad(candidate, assembly, searchPath, out var handle)) return handle;
        }
        throw new OcrEngineException(
            $"the Tesseract 5 library could not be loaded (tried {string.Join(", ", Candidates())}). " + InstallHint);
    }

    /// <summary>How to install Tesseract, for error messages.</summary>
    internal static string InstallHint =>
        OperatingSystem.IsWindows() ? "Install Tesseract 5 (e.g. the UB Mannheim build) and add its folder to PATH, or set " + PathVariable + "."
        : OperatingSystem.IsMacOS() ? "Install it with `brew install tesseract`, or set " + PathVariable + "."
        : "Install it with `sudo apt-get install -y tesseract-ocr tesseract-ocr-eng` (Debian/Ubuntu packages libtesseract5, tesseract-ocr-eng), or set " + PathVariable + ".";

    private static void LimitOpenMpThreads()
    {
        if (OperatingSystem.IsWindows() || Environment.GetEnvironmentVariable("OMP_THREAD_LIMIT") is not null) return;
        try
        {
            _ = setenv("OMP_THREAD_LIMIT", "1", 0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Without libc's setenv Tesseract still works, only with its own thread count.
        }
    }

    /// <summary>A variable of the native (libc) environment, which .NET's <see cref="Environment"/> does not write on Unix.</summary>
    internal static string? NativeEnvironmentVariable(string name)
    {
        EnsureResolver();
        return OperatingSystem.IsWindows() ? Environment.GetEnvironmentVariable(name) : Marshal.PtrToStringUTF8(getenv(name));
    }

    [LibraryImport("c", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int setenv(string name, string value, int overwrite);

    [LibraryImport("c", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr getenv(string name);

    [LibraryImport("c", SetLastError = true)]
    private static partial int sched_setaffinity(int pid, nint cpusetsize, ref ulong mask);

    /// <summary>
    /// Linux: binds the calling thread to processor <paramref name="cpu"/> (of the first 64) so that each OCR worker
    /// keeps its own core and its cache, until the returned object is disposed (then the thread may run on every
    /// processor again). Elsewhere, or when the call fails, nothing happens and null is returned.
    /// </summary>
    internal static IDisposable? PinCurrentThread(int cpu)
    {
        if (!OperatingSystem.IsLinux() || cpu is < 0 or >= 64) return null;
        EnsureResolver();
        return SetCurrentThreadAffinity(1UL << cpu) ? new ThreadPin() : null;
    }

    private static bool SetCurrentThreadAffinity(ulong mask)
    {
        try
        {
            return sched_setaffinity(0, sizeof(ulong), ref mask) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    private sealed class ThreadPin : IDisposable
    {
        public void Dispose() =>
            SetCurrentThreadAffinity(Environment.ProcessorCount >= 64 ? ulong.MaxValue : (1UL << Environment.ProcessorCount) - 1);
    }
}
