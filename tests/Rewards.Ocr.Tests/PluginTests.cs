using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using NextFlowRL.Plugins;
using NextFlowRL.Rewards.Ocr.Bench;
using Xunit;

namespace NextFlowRL.Rewards.Ocr.Tests;

public class PluginTests
{
    [Fact]
    public void EntryRegistersTheRewardsTheSecondReaderAndTheBenchCommand()
    {
        var builder = TestBuilder.With(("Rewards:ocr:Workers", "1"), ("Rewards:ocr-edit:MinConfidence", "0.3"), ("Rewards:ocr-block:UpscaleFactor", "5"));
        new OcrPlugin().Register(builder);
        Assert.Equal(["ocr", "ocr-edit", "ocr-block"], builder.Components.Select(c => c.Name));
        Assert.All(builder.Components, c => Assert.Equal(ComponentKind.Reward, c.Kind));
        using var sp = builder.Services.BuildServiceProvider();
        var ocr = Assert.IsType<OcrReward>(sp.GetRequiredKeyedService<IRewardModel>("ocr"));
        var edit = Assert.IsType<OcrReward>(sp.GetRequiredKeyedService<IRewardModel>("ocr-edit"));
        Assert.IsAssignableFrom<ISummarizingReward>(ocr);
        Assert.Equal(OcrRewardFormula.Paper, ocr.Options.Formula);
        Assert.Equal(1, ocr.Workers);
        Assert.Equal(OcrRewardFormula.Edit, edit.Options.Formula);
        Assert.Equal(0.3, edit.Options.MinConfidence);
        // The second reader: the ocr formula through another pipeline; its defaults give way to configuration.
        var second = Assert.IsType<OcrReward>(sp.GetRequiredKeyedService<IRewardModel>(OcrPlugin.SecondReader));
        Assert.Equal(OcrRewardFormula.Paper, second.Options.Formula);
        Assert.Equal(6, second.Options.PageSegmentationMode);
        Assert.Equal(512, second.Options.UpscaleBelow);
        Assert.Equal(5, second.Options.UpscaleFactor);
        Assert.Equal(11, ocr.Options.PageSegmentationMode);
        var command = Assert.Single(sp.GetServices<INextFlowRLCommand>());
        Assert.Equal(["bench", "ocr"], command.Path);
    }

    [Fact]
    public void InvalidOrMissingSettingsAreListedAtStart()
    {
        var builder = TestBuilder.With(("Rewards:ocr:TessdataPath", "/nowhere/tessdata"), ("Rewards:ocr:Workers", "-1"));
        new OcrPlugin().Register(builder);
        using var sp = builder.Services.BuildServiceProvider();
        var e = Assert.Throws<OptionsValidationException>(() => sp.GetRequiredService<IOptionsMonitor<OcrRewardOptions>>().Get("ocr"));
        var all = string.Join(" | ", e.Failures);
        Assert.Contains("/nowhere/tessdata/eng.traineddata", all);
        Assert.Contains("Workers", all);
        Assert.NotNull(sp.GetRequiredService<IOptionsMonitor<OcrRewardOptions>>().Get("ocr-edit"));
    }
}

public class BenchTests
{
    [Fact]
    public void ArgumentsParseWithSystemCommandLineAndEveryBadOneIsListed()
    {
        var bench = new OcrBenchCommand();
        var parse = bench.CreateCommand().Parse(["--images", "8", "--workers", "2", "--repeat", "1", "--size", "64"]);
        Assert.Empty(parse.Errors);
        Assert.Equal(new OcrBenchmarkSettings(8, 64, 2, 1), bench.Settings(parse));
        var unpinned = bench.CreateCommand().Parse(["--no-pin", "--repeat", "2"]);
        Assert.Equal(new OcrBenchmarkSettings(Repeat: 2, Pin: false), bench.Settings(unpinned));
        Assert.Equal(new OcrBenchmarkSettings(), bench.Settings(bench.CreateCommand().Parse([])));
        // Every problem at once: a missing value, a value out of range, an unknown option.
        var bad = bench.CreateCommand().Parse(["--size", "4", "--fast", "--images"]);
        var messages = string.Join(" | ", bad.Errors.Select(e => e.Message));
        Assert.Contains("--size must be an integer in [16, 4096], got 4", messages);
        Assert.Contains("--fast", messages);
        Assert.Contains("--images", messages);
    }

    [Fact]
    public async Task CommandReturnsTwoOnBadArgumentsAndZeroOnHelp()
    {
        var command = new OcrBenchCommand();
        Assert.Equal(2, await command.InvokeAsync(["--images", "x"], CancellationToken.None));
        Assert.Equal(0, await command.InvokeAsync(["--help"], CancellationToken.None));
    }

    [Fact]
    public async Task BenchmarkMeasuresBothPathsOnImagesItReads()
    {
        var r = await OcrBenchmark.RunAsync(new OcrBenchmarkSettings(Images: 6, Workers: 2, Repeat: 1));
        Assert.Equal(1, r.WordAccuracy);
        Assert.Equal((6, 2), (r.Images, r.Workers));
        Assert.True(r.RawImagesPerSecond > 0 && r.PluginImagesPerSecond > 0 && r.RawParallelImagesPerSecond > 0);
        // CPU time is process-wide and other test classes run meanwhile: only check it was measured.
        Assert.True(double.IsFinite(r.CpuEfficiency) && r.CpuEfficiency > 0, $"cpu efficiency {r.CpuEfficiency}");
        var text = OcrBenchCommand.Format(r);
        Assert.Contains("raw single engine:", text);
        Assert.Contains("ratio plugin / (workers x raw):", text);
        Assert.Contains("cpu efficiency", text);
        Assert.Contains("raw parallel (2 engines", text);
        Assert.Contains("machine scaling", text);
    }

    /// <summary>The derived figures on fixed measurements (what each printed ratio means), and the target flag.</summary>
    [Fact]
    public void DerivedFiguresFollowFromTheMeasurements()
    {
        var r = new OcrBenchmarkResult(Images: 8, Size: 64, Workers: 2, Cores: 4, RawImagesPerSecond: 10, PluginImagesPerSecond: 15, WordAccuracy: 1,
            RawImagesPerCpuSecond: 12.5, PluginImagesPerCpuSecond: 7.5, LoadAverage: 1, RawParallelImagesPerSecond: 16);
        Assert.Equal(0.75, r.Ratio, 12);              // 15 / (2 x 10)
        Assert.Equal(0.375, r.RatioToCores, 12);      // 15 / (4 x 10)
        Assert.Equal(0.8, r.MachineScaling, 12);      // 16 / (2 x 10)
        Assert.Equal(0.9375, r.PluginOverheadRatio, 12); // 15 / 16
        Assert.Equal(0.6, r.CpuEfficiency, 12);       // 7.5 / 12.5
        Assert.Equal(0.8, r.RawCoresUsed, 12);        // 10 / 12.5
        Assert.Equal(2.0, r.PluginCoresUsed, 12);     // 15 / 7.5
        var text = OcrBenchCommand.Format(r);
        Assert.Contains("ratio plugin / (workers x raw): 0.75 (target >= 0.90)  BELOW TARGET", text);
        Assert.Contains("machine scaling raw parallel / (workers x raw): 0.80; plugin / raw parallel: 0.94", text);
        Assert.DoesNotContain("BELOW TARGET", OcrBenchCommand.Format(r with { PluginImagesPerSecond = 19 }));
        Assert.Contains("busy machine", OcrBenchCommand.Format(r with { LoadAverage = 6 }));
    }
}
