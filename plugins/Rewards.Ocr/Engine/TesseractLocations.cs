namespace NextFlowRL.Rewards.Ocr.Engine;

/// <summary>An operating system family, for where Tesseract is installed.</summary>
public enum HostOs
{
    /// <summary>Linux (Debian/Ubuntu packages, other distributions' equivalents).</summary>
    Linux,

    /// <summary>macOS (Homebrew on Apple silicon or Intel).</summary>
    MacOS,

    /// <summary>Windows (the UB Mannheim installer, winget, vcpkg, MSYS2).</summary>
    Windows,
}

/// <summary>
/// The machine as the Tesseract lookup sees it: its OS, its environment variables and its files. Tests pass fakes;
/// <see cref="Current"/> is the real machine.
/// </summary>
/// <param name="Os">The OS family.</param>
/// <param name="Environment">Reads an environment variable (null when unset).</param>
/// <param name="FileExists">Whether a file exists.</param>
public sealed record HostPlatform(HostOs Os, Func<string, string?> Environment, Func<string, bool> FileExists)
{
    /// <summary>This process's machine.</summary>
    public static HostPlatform Current { get; } = new(
        OperatingSystem.IsWindows() ? HostOs.Windows : OperatingSystem.IsMacOS() ? HostOs.MacOS : HostOs.Linux,
        System.Environment.GetEnvironmentVariable, File.Exists);

    /// <summary>Joins path parts with the separator of <see cref="Os"/> (not of the machine running the lookup).</summary>
    public string Join(string folder, string name) =>
        Os == HostOs.Windows ? folder.TrimEnd('\\', '/') + "\\" + name : folder.TrimEnd('/') + "/" + name;
}

/// <summary>
/// Where the native Tesseract 5 library and its language data are looked for, per OS, in order. One place for the
/// names the common builds use:
/// <list type="bullet">
/// <item>Windows: the UB Mannheim installer (also what <c>winget install UB-Mannheim.TesseractOCR</c> installs) and
/// MSYS2 ship <c>libtesseract-5.dll</c> in <c>C:\Program Files\Tesseract-OCR</c> (per-user installs:
/// <c>%LOCALAPPDATA%\Programs\Tesseract-OCR</c>); vcpkg builds <c>tesseract55.dll</c> (the version's digits:
/// <c>tesseract54.dll</c>, <c>tesseract53.dll</c>, ...) under <c>%VCPKG_ROOT%\installed\x64-windows\bin</c>.</item>
/// <item>macOS: Homebrew's <c>libtesseract.5.dylib</c> in <c>/opt/homebrew/lib</c> (Apple silicon) or
/// <c>/usr/local/lib</c> (Intel).</item>
/// <item>Linux: <c>libtesseract.so.5</c> (Debian/Ubuntu <c>libtesseract5</c>, Fedora <c>tesseract-libs</c>), then
/// <c>libtesseract.so</c>.</item>
/// </list>
/// An explicit library path (the reward option <c>LibraryPath</c>, else <c>NEXTFLOW_TESSERACT_LIBRARY</c>) and an
/// explicit language-data folder (the option <c>TessdataPath</c>, else <c>TESSDATA_PREFIX</c>) are the only
/// candidates when given: silently taking another install would hide the mistake.
/// </summary>
public static class TesseractLocations
{
    /// <summary>Environment variable naming the native library file explicitly.</summary>
    public const string LibraryVariable = "NEXTFLOW_TESSERACT_LIBRARY";

    /// <summary>Tesseract's own environment variable for the language-data folder.</summary>
    public const string TessdataVariable = "TESSDATA_PREFIX";

    private static readonly string[] VcpkgNames = ["tesseract55.dll", "tesseract54.dll", "tesseract53.dll", "tesseract52.dll", "tesseract51.dll", "tesseract50.dll"];

    /// <summary>The folders a Windows install of Tesseract lands in (installer, winget per-machine and per-user).</summary>
    public static IReadOnlyList<string> WindowsInstallFolders(HostPlatform platform)
    {
        ArgumentNullException.ThrowIfNull(platform);
        var folders = new List<string>();
        foreach (var root in new[] { platform.Environment("ProgramFiles"), platform.Environment("ProgramFiles(x86)") })
            if (!string.IsNullOrEmpty(root)) folders.Add(platform.Join(root, "Tesseract-OCR"));
        if (platform.Environment("LOCALAPPDATA") is { Length: > 0 } local) folders.Add(platform.Join(platform.Join(local, "Programs"), "Tesseract-OCR"));
        if (folders.Count == 0) folders.Add(@"C:\Program Files\Tesseract-OCR");
        return folders;
    }

    /// <summary>
    /// The native library candidates in the order they are tried. Bare names go through the OS loader's own search
    /// (<c>PATH</c> on Windows, <c>DYLD_*</c>/the default paths on macOS, <c>ld.so.cache</c> on Linux); full paths are
    /// the usual install folders.
    /// </summary>
    /// <param name="platform">The machine.</param>
    /// <param name="configured">The reward option <c>LibraryPath</c> (null or empty: not set).</param>
    public static IReadOnlyList<string> LibraryCandidates(HostPlatform platform, string? configured = null)
    {
        ArgumentNullException.ThrowIfNull(platform);
        if (!string.IsNullOrWhiteSpace(configured)) return [configured];
        if (platform.Environment(LibraryVariable) is { Length: > 0 } explicitPath) return [explicitPath];
        var list = new List<string>();
        switch (platform.Os)
        {
            case HostOs.Windows:
                list.Add("libtesseract-5.dll");
                list.AddRange(VcpkgNames);
                foreach (var folder in WindowsInstallFolders(platform)) list.Add(platform.Join(folder, "libtesseract-5.dll"));
                if (platform.Environment("VCPKG_ROOT") is { Length: > 0 } vcpkg)
                {
                    var bin = platform.Join(platform.Join(platform.Join(vcpkg, "installed"), "x64-windows"), "bin");
                    list.AddRange(VcpkgNames.Select(n => platform.Join(bin, n)));
                }
                break;
            case HostOs.MacOS:
                list.AddRange(["libtesseract.5.dylib", "libtesseract.dylib", "/opt/homebrew/lib/libtesseract.5.dylib", "/usr/local/lib/libtesseract.5.dylib"]);
                break;
            default:
                list.AddRange(["libtesseract.so.5", "libtesseract.so"]);
                break;
        }
        return list;
    }

    /// <summary>
    /// The language-data folders in the order they are searched.
    /// </summary>
    /// <param name="platform">The machine.</param>
    /// <param name="configured">The reward option <c>TessdataPath</c> (null or empty: not set).</param>
    /// <param name="libraryFolder">The folder of the loaded library when known (Windows installs keep <c>tessdata</c> beside it).</param>
    public static IReadOnlyList<string> TessdataFolders(HostPlatform platform, string? configured = null, string? libraryFolder = null)
    {
        ArgumentNullException.ThrowIfNull(platform);
        if (!string.IsNullOrWhiteSpace(configured)) return [configured];
        if (platform.Environment(TessdataVariable) is { Length: > 0 } prefix) return [prefix];
        var list = new List<string>();
        if (!string.IsNullOrEmpty(libraryFolder)) list.Add(platform.Join(libraryFolder, "tessdata"));
        switch (platform.Os)
        {
            case HostOs.Windows:
                list.AddRange(WindowsInstallFolders(platform).Select(f => platform.Join(f, "tessdata")));
                if (platform.Environment("VCPKG_ROOT") is { Length: > 0 } vcpkg)
                    list.Add(platform.Join(platform.Join(platform.Join(platform.Join(vcpkg, "installed"), "x64-windows"), "share"), "tessdata"));
                break;
            case HostOs.MacOS:
                list.AddRange(["/opt/homebrew/share/tessdata", "/usr/local/share/tessdata"]);
                break;
            default:
                list.AddRange(["/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata", "/usr/share/tessdata", "/usr/local/share/tessdata"]);
                break;
        }
        return list.Distinct(platform.Os == HostOs.Windows ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// The first of <see cref="TessdataFolders"/> holding every language's <c>.traineddata</c>.
    /// </summary>
    /// <param name="platform">The machine.</param>
    /// <param name="configured">The reward option <c>TessdataPath</c>.</param>
    /// <param name="language">Tesseract language(s), e.g. <c>eng</c> or <c>eng+deu</c>.</param>
    /// <param name="libraryFolder">The folder of the loaded library when known.</param>
    /// <exception cref="OcrEngineException">A language's data file is missing: one line naming the file and what to install on this OS.</exception>
    public static string FindTessdata(HostPlatform platform, string? configured, string language, string? libraryFolder = null)
    {
        ArgumentNullException.ThrowIfNull(platform);
        ArgumentException.ThrowIfNullOrWhiteSpace(language);
        var langs = Languages(language);
        var folders = TessdataFolders(platform, configured, libraryFolder);
        foreach (var folder in folders)
        {
            if (langs.All(l => platform.FileExists(platform.Join(folder, l + ".traineddata")))) return folder;
        }
        var first = folders[0];
        var missing = langs.FirstOrDefault(l => !platform.FileExists(platform.Join(first, l + ".traineddata"))) ?? langs[0];
        var also = folders.Count > 1 ? $" (also searched {string.Join(", ", folders.Skip(1))})" : "";
        throw new OcrEngineException(
            $"Tesseract language data '{missing}' not found: {platform.Join(first, missing + ".traineddata")} does not exist{also}. {LanguageHint(platform.Os, language)}");
    }

    /// <summary>How to install Tesseract 5 on <paramref name="os"/>, for error messages.</summary>
    public static string InstallHint(HostOs os) => os switch
    {
        HostOs.Windows => "Install Tesseract 5 with `winget install --id UB-Mannheim.TesseractOCR` (or the UB Mannheim installer) and add " +
                          @"C:\Program Files\Tesseract-OCR to PATH, or set the reward option LibraryPath (or " + LibraryVariable + ") to its libtesseract-5.dll / vcpkg's tesseract55.dll.",
        HostOs.MacOS => "Install it with `brew install tesseract`, or set the reward option LibraryPath (or " + LibraryVariable + ").",
        _ => "Install it with `sudo apt-get install -y tesseract-ocr tesseract-ocr-eng` (Debian/Ubuntu; Fedora: `sudo dnf install tesseract`), " +
             "or set the reward option LibraryPath (or " + LibraryVariable + ").",
    };

    /// <summary>How to install the data of <paramref name="language"/> on <paramref name="os"/>, for error messages.</summary>
    public static string LanguageHint(HostOs os, string language)
    {
        var langs = Languages(language);
        var files = string.Join(", ", langs.Select(l => l + ".traineddata"));
        return os switch
        {
            HostOs.Windows => $"The UB Mannheim installer includes eng; for others pick them in its \"Additional language data\" page, or download {files} " +
                              "from https://github.com/tesseract-ocr/tessdata_fast into a folder and set the reward option TessdataPath (or TESSDATA_PREFIX) to it.",
            HostOs.MacOS => $"Install the language data with `brew install tesseract-lang` (eng comes with `brew install tesseract`), or set the reward option TessdataPath to a folder holding {files}.",
            _ => $"Install the language data with `sudo apt-get install -y {string.Join(' ', langs.Select(l => "tesseract-ocr-" + l.ToLowerInvariant().Replace('_', '-')))}` " +
                 $"(Debian/Ubuntu), or set the reward option TessdataPath to a folder holding {files}.",
        };
    }

    private static string[] Languages(string language) =>
        language.Split('+', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
