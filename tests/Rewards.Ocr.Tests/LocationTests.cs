using NextFlowRL.Rewards.Ocr.Engine;
using Xunit;

namespace NextFlowRL.Rewards.Ocr.Tests;

/// <summary>Where Tesseract and its language data are looked for on each OS, with fake environments and files.</summary>
public class LocationTests
{
    private static HostPlatform Fake(HostOs os, IReadOnlyDictionary<string, string>? env = null, params string[] files)
    {
        var set = new HashSet<string>(files, os == HostOs.Windows ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal);
        return new HostPlatform(os, name => env is not null && env.TryGetValue(name, out var v) ? v : null, set.Contains);
    }

    private static readonly Dictionary<string, string> WindowsEnv = new()
    {
        ["ProgramFiles"] = @"C:\Program Files",
        ["LOCALAPPDATA"] = @"C:\Users\ada\AppData\Local",
        ["VCPKG_ROOT"] = @"D:\vcpkg",
    };

    [Fact]
    public void WindowsTriesTheLoaderSearchThenInstallerThenVcpkgFolders()
    {
        var names = TesseractLocations.LibraryCandidates(Fake(HostOs.Windows, WindowsEnv));
        Assert.Equal("libtesseract-5.dll", names[0]); // UB Mannheim / MSYS2 name, found on PATH
        Assert.Equal("tesseract55.dll", names[1]); // vcpkg name, found on PATH
        int installer = names.ToList().IndexOf(@"C:\Program Files\Tesseract-OCR\libtesseract-5.dll");
        int perUser = names.ToList().IndexOf(@"C:\Users\ada\AppData\Local\Programs\Tesseract-OCR\libtesseract-5.dll");
        int vcpkg = names.ToList().IndexOf(@"D:\vcpkg\installed\x64-windows\bin\tesseract55.dll");
        Assert.True(installer > 1 && perUser > installer && vcpkg > perUser, string.Join(", ", names));
    }

    [Fact]
    public void MacAndLinuxUseHomebrewAndDistributionNames()
    {
        var mac = TesseractLocations.LibraryCandidates(Fake(HostOs.MacOS));
        Assert.Equal(["libtesseract.5.dylib", "libtesseract.dylib", "/opt/homebrew/lib/libtesseract.5.dylib", "/usr/local/lib/libtesseract.5.dylib"], mac);
        Assert.Equal(["libtesseract.so.5", "libtesseract.so"], TesseractLocations.LibraryCandidates(Fake(HostOs.Linux)));
    }

    [Theory]
    [InlineData(HostOs.Linux)]
    [InlineData(HostOs.MacOS)]
    [InlineData(HostOs.Windows)]
    public void AnExplicitLibraryIsTheOnlyCandidateAndTheOptionBeatsTheVariable(HostOs os)
    {
        var env = new Dictionary<string, string>(WindowsEnv) { [TesseractLocations.LibraryVariable] = "/from/variable/lib" };
        Assert.Equal(["/from/variable/lib"], TesseractLocations.LibraryCandidates(Fake(os, env)));
        Assert.Equal(["/from/option/lib"], TesseractLocations.LibraryCandidates(Fake(os, env), "/from/option/lib"));
    }

    [Fact]
    public void TessdataOrderIsOptionThenVariableThenBesideTheLibraryThenInstallFolders()
    {
        var env = new Dictionary<string, string>(WindowsEnv);
        var files = new[]
        {
            @"E:\opt\tessdata\eng.traineddata", @"E:\prefix\eng.traineddata", @"E:\lib\tessdata\eng.traineddata",
            @"C:\Program Files\Tesseract-OCR\tessdata\eng.traineddata",
        };
        Assert.Equal(@"E:\opt\tessdata", TesseractLocations.FindTessdata(Fake(HostOs.Windows, env, files), @"E:\opt\tessdata", "eng", @"E:\lib"));
        env[TesseractLocations.TessdataVariable] = @"E:\prefix";
        Assert.Equal(@"E:\prefix", TesseractLocations.FindTessdata(Fake(HostOs.Windows, env, files), null, "eng", @"E:\lib"));
        env.Remove(TesseractLocations.TessdataVariable);
        Assert.Equal(@"E:\lib\tessdata", TesseractLocations.FindTessdata(Fake(HostOs.Windows, env, files), null, "eng", @"E:\lib"));
        Assert.Equal(@"C:\Program Files\Tesseract-OCR\tessdata", TesseractLocations.FindTessdata(Fake(HostOs.Windows, env, files), null, "eng"));
    }

    [Fact]
    public void TessdataNeedsEveryLanguageInOneFolder()
    {
        var platform = Fake(HostOs.Linux, null,
            "/usr/share/tesseract-ocr/5/tessdata/eng.traineddata", "/usr/share/tessdata/eng.traineddata", "/usr/share/tessdata/deu.traineddata");
        Assert.Equal("/usr/share/tesseract-ocr/5/tessdata", TesseractLocations.FindTessdata(platform, null, "eng"));
        Assert.Equal("/usr/share/tessdata", TesseractLocations.FindTessdata(platform, null, "eng+deu"));
        Assert.Equal("/opt/homebrew/share/tessdata",
            TesseractLocations.FindTessdata(Fake(HostOs.MacOS, null, "/opt/homebrew/share/tessdata/eng.traineddata"), null, "eng"));
    }

    [Theory]
    [InlineData(HostOs.Linux, "sudo apt-get install -y tesseract-ocr-deu")]
    [InlineData(HostOs.MacOS, "brew install tesseract-lang")]
    [InlineData(HostOs.Windows, "tessdata_fast")]
    public void AMissingLanguageIsOneLineSayingWhatToInstallOnThatOs(HostOs os, string hint)
    {
        var e = Assert.Throws<OcrEngineException>(() => TesseractLocations.FindTessdata(Fake(os, WindowsEnv), null, "deu"));
        Assert.Contains("deu.traineddata does not exist", e.Message);
        Assert.Contains(hint, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData(HostOs.Linux, "apt-get install")]
    [InlineData(HostOs.MacOS, "brew install tesseract")]
    [InlineData(HostOs.Windows, "winget install --id UB-Mannheim.TesseractOCR")]
    public void InstallHintsNameTheOsPackageManager(HostOs os, string hint)
    {
        Assert.Contains(hint, TesseractLocations.InstallHint(os));
        Assert.Contains("LibraryPath", TesseractLocations.InstallHint(os));
    }

    [Fact]
    public void ADifferentLibraryPathAfterLoadingIsRefused()
    {
        _ = TesseractEngine.NativeVersion; // the test process loaded the system library
        var e = Assert.Throws<OcrEngineException>(() => TesseractLibrary.UsePath("/elsewhere/libtesseract.so.5"));
        Assert.Contains("already loaded Tesseract from", e.Message);
    }

    [Fact]
    public void WorkerPinningIsLinuxOnlyAndReleases()
    {
        using var pin = TesseractLibrary.PinCurrentThread(0);
        Assert.Equal(OperatingSystem.IsLinux(), pin is not null);
        Assert.Null(TesseractLibrary.PinCurrentThread(-1));
    }
}
