using PuppeteerSharp;

namespace NextFlowRL.Cli.Tests;

/// <summary>What a real browser saw when it opened a page.</summary>
public sealed record PageCheck(string Title, IReadOnlyList<string> Errors, int Images, int BrokenImages, int Charts, string Screenshot);

/// <summary>
/// Opens local HTML files in the system's headless Chromium (PuppeteerSharp driving the Debian package chromium,
/// which ./build.sh test installs; NEXTFLOW_CHROMIUM overrides the path) and reports console errors, page errors,
/// failed requests and broken images; saves a full-page screenshot under artifacts/test-screenshots/.
/// </summary>
public static class Browser
{
    private static readonly string[] Candidates =
    [
        "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome", "/usr/bin/google-chrome-stable",
        "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
        @"C:\Program Files\Google\Chrome\Application\chrome.exe",
        @"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe",
        @"C:\Program Files\Microsoft\Edge\Application\msedge.exe",
    ];

    /// <summary>The browser executable.</summary>
    /// <exception cref="FileNotFoundException">No Chromium-family browser found; the message says how to install one.</exception>
    public static string Executable =>
        Environment.GetEnvironmentVariable("NEXTFLOW_CHROMIUM") is { Length: > 0 } set ? set
        : Candidates.FirstOrDefault(File.Exists)
          ?? throw new FileNotFoundException("No Chromium found for the report tests: `sudo apt-get install chromium` (./build.sh test installs it), " +
                                             "or set NEXTFLOW_CHROMIUM to a Chrome/Edge/Chromium executable.");

    /// <summary>Opens <paramref name="htmlFile"/> and checks it; the screenshot is named <paramref name="name"/>.png.</summary>
    public static async Task<PageCheck> OpenAsync(string htmlFile, string name)
    {
        var options = new LaunchOptions
        {
            Headless = true,
            ExecutablePath = Executable,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        };
        await using var browser = await Puppeteer.LaunchAsync(options);
        await using var page = await browser.NewPageAsync();
        var errors = new List<string>();
        page.Console += (_, e) => { if (e.Message.Type == ConsoleType.Error) lock (errors) errors.Add("console: " + e.Message.Text); };
        page.PageError += (_, e) => { lock (errors) errors.Add("page error: " + e.Message); };
        page.RequestFailed += (_, e) => { lock (errors) errors.Add("request failed: " + e.Request.Url); };
        await page.SetViewportAsync(new ViewPortOptions { Width = 1400, Height = 1000 });
        await page.GoToAsync(new Uri(Path.GetFullPath(htmlFile)).AbsoluteUri, WaitUntilNavigation.Load);
        int images = await page.EvaluateExpressionAsync<int>("document.images.length");
        int broken = await page.EvaluateExpressionAsync<int>("Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length");
        int charts = await page.EvaluateExpressionAsync<int>("document.querySelectorAll('svg.chart').length");
        var folder = Testing.Repo.PathOf("artifacts", "test-screenshots");
        Directory.CreateDirectory(folder);
        var shot = Path.Combine(folder, name + ".png");
        await page.ScreenshotAsync(shot, new ScreenshotOptions { FullPage = true });
        return new PageCheck(await page.GetTitleAsync(), errors, images, broken, charts, shot);
    }
}
