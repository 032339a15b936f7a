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
/// Loads the native Tesseract 5 library through <see cref="NativeLibrary.SetDllImportResolver"/>, trying
/// <see cref="TesseractLocations.LibraryCandidates"/> in order (an explicit path from the reward option
/// <c>LibraryPath</c> or <c>NEXTFLOW_TESSERACT_LIBRARY</c> is the only candidate when set).
/// Before the first load on Linux and macOS, <c>OMP_THREAD_LIMIT=1</c> is set in the native environment unless already
/// set: Tesseract's OpenMP threads would otherwise fight the reward's own one-engine-per-core workers.
/// </summary>
internal static partial class TesseractLibrary
{
    private static int _installed;
    private static readonly Lock Gate = new();
    private static string? _configuredPath;
    private static string? _loadedFrom;

    internal static void EnsureResolver()
    {
        if (Interlocked.Exchange(ref _installed, 1) == 1) return;
        NativeLibrary.SetDllImportResolver(typeof(TesseractLibrary).Assembly, Resolve);
    }

    /// <summary>
    /// Sets the explicit library path (the reward option <c>LibraryPath</c>) before the library loads; the library is
    /// process-wide, so a different path after it loaded is an error rather than silently ignored.
    /// </summary>
    /// <exception cref="OcrEngineException">The library is already loaded from another file.</exception>
    internal static void UsePath(string? path)
    {
        if (string.IsNullOrWhiteSpace(path)) return;
        lock (Gate)
        {
            if (_loadedFrom is not null && !string.Equals(Path.GetFullPath(_loadedFrom), Path.GetFullPath(path), StringComparison.Ordinal))
                throw new OcrEngineException($"LibraryPath={path}, but this process already loaded Tesseract from {_loadedFrom}: every OCR reward of a process uses one library");
            _configuredPath = path;
        }
    }

    /// <summary>The candidate files for this machine, in order.</summary>
    internal static IReadOnlyList<string> Candidates()
    {
        lock (Gate) return TesseractLocations.LibraryCandidates(HostPlatform.Current, _configuredPath);
    }

    /// <summary>The language-data folder for this machine (beside the loaded library first when it was found by path).</summary>
    /// <exception cref="OcrEngineException">A language file is missing; the message says what to install.</exception>
    internal static string FindTessdata(string? configured, string language)
    {
        string? folder;
        lock (Gate) folder = _loadedFrom is not null && Path.IsPathRooted(_loadedFrom) ? Path.GetDirectoryName(_loadedFrom) : null;
        return TesseractLocations.FindTessdata(HostPlatform.Current, configured, language, folder);
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
        var candidates = Candidates();
        foreach (var candidate in candidates)
        {
            if (NativeLibrary.TryLoad(candidate, assembly, searchPath, out var handle))
            {
                lock (Gate) _loadedFrom = candidate;
                return handle;
            }
        }
        throw new OcrEngineException(
            $"the Tesseract 5 library could not be loaded (tried {string.Join(", ", candidates)}). " + InstallHint);
    }

    /// <summary>How to install Tesseract on this OS, for error messages.</summary>
    internal static string InstallHint => TesseractLocations.InstallHint(HostPlatform.Current.Os);

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
