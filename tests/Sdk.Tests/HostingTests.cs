using Microsoft.Extensions.Configuration;
using NextFlowRL.Hosting;
using NextFlowRL.Imaging;
using NextFlowRL.Plugins;
using NextFlowRL.Rewards;
using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Tests;

public sealed class HostingTests : IDisposable
{
    private readonly string _root = TestPlugins.TempDir();
    private readonly string _scratch = TestPlugins.TempDir();

    public void Dispose()
    {
        try { Directory.Delete(_root, true); Directory.Delete(_scratch, true); } catch (IOException) { }
    }

    private static IConfiguration Config(params string[] settings) =>
        NextFlowRLConfiguration.Build(settings, baseDirectory: Path.GetTempPath());

    private NextFlowRLHost Build(params string[] settings) => NextFlowRLHost.Build(Config(settings), pluginDirectories: [_root]);

    private PluginReport Report(NextFlowRLHost host, string name) => Assert.Single(host.Plugins, p => p.Name == name);

    [Fact]
    public async Task PluginCompiledAgainstTheSdkOnlyLoadsAndScores()
    {
        TestPlugins.Create(_root, "Fixture.Red", TestPlugins.RedRewardSource);
        using var host = Build();
        var report = Report(host, "Fixture.Red");
        Assert.Equal(PluginStatus.Loaded, report.Status);
        Assert.Null(report.Reason);
        Assert.Equal("1.0.0", report.Version);
        Assert.Contains(report.Components, c => c.Name == "red" && c.Kind == ComponentKind.Reward);

        var reward = host.GetReward("red");
        var image = RgbImage.Filled(4, 4, 200, 10, 10);
        var results = await reward.ScoreAsync([new RewardSample(image, "red")]);
        Assert.Equal(1.0, Assert.Single(results).Score);
    }

    [Fact]
    public void BundledPluginLoads()
    {
        using var host = NextFlowRLHost.Build(Config(), pluginDirectories: [Path.GetDirectoryName(Repo.PluginFolder("NextFlowRL.Rewards.ImageStats"))!]);
        var report = Report(host, "NextFlowRL.Rewards.ImageStats");
        Assert.Equal(PluginStatus.Loaded, report.Status);
        Assert.Equal(["brightness", "contrast"], report.Components.Select(c => c.Name).Order());
    }

    [Fact]
    public async Task AnyContainerCanHoldThePluginsAndAHostReadsThemWithoutOwningIt()
    {
        var config = Config("Rewards:brightness:Target=0.25");
        var services = new Microsoft.Extensions.DependencyInjection.ServiceCollection();
        Microsoft.Extensions.DependencyInjection.ServiceCollectionServiceExtensions.AddSingleton(services, config);
        Microsoft.Extensions.DependencyInjection.LoggingServiceCollectionExtensions.AddLogging(services);
        var registration = services.AddNextFlowRL(config, pluginDirectories: [Path.GetDirectoryName(Repo.PluginFolder("NextFlowRL.Rewards.ImageStats"))!]);
        Assert.Contains(registration.Components, c => c.Name == "brightness");
        await using var provider = Microsoft.Extensions.DependencyInjection.ServiceCollectionContainerBuilderExtensions.BuildServiceProvider(services);
        var host = NextFlowRLHost.From(provider);
        Assert.Empty(host.ValidateOptions());
        var reward = host.GetReward("brightness");
        Assert.Equal("brightness", reward.Name);
        host.Dispose(); // the container is its owner's: still usable
        Assert.Same(reward, host.GetReward("brightness"));
        var empty = Microsoft.Extensions.DependencyInjection.ServiceCollectionContainerBuilderExtensions.BuildServiceProvider(new Microsoft.Extensions.DependencyInjection.ServiceCollection());
        Assert.Contains("AddNextFlowRL", Assert.Throws<InvalidOperationException>(() => NextFlowRLHost.From(empty)).Message);
    }

    [Fact]
    public void PluginThatThrowsDuringRegistrationFailsAndKeepsNothing()
    {
        TestPlugins.Throwing(_root);
        TestPlugins.Create(_root, "Fixture.Red", TestPlugins.RedRewardSource);
        using var host = Build();
        var report = Report(host, "Fixture.Throws");
        Assert.Equal(PluginStatus.Failed, report.Status);
        Assert.Contains("the model file is missing", report.Reason);
        Assert.DoesNotContain(host.Components, c => c.Name == "half-registered");
        // The host keeps working with the other plugin.
        Assert.NotNull(host.GetReward("red"));
    }

    [Fact]
    public void PluginBuiltAgainstAnotherContractMajorVersionIsIncompatible()
    {
        TestPlugins.Incompatible(_root, _scratch);
        using var host = Build();
        var report = Report(host, "Fixture.FromTheFuture");
        Assert.Equal(PluginStatus.Incompatible, report.Status);
        Assert.Contains("NextFlowRL.Abstractions 2.0", report.Reason);
        Assert.Contains("1.1", report.Reason);
    }

    [Fact]
    public void PluginWithAMissingDependencyFailsWithItsName()
    {
        TestPlugins.MissingDependency(_root, _scratch);
        using var host = Build();
        var report = Report(host, "Fixture.NeedsHelper");
        Assert.Equal(PluginStatus.Failed, report.Status);
        Assert.Contains("Fixture.Helper", report.Reason);
    }

    [Fact]
    public void FolderWithoutAPluginFails()
    {
        TestPlugins.Empty(_root);
        using var host = Build();
        var report = Report(host, "Fixture.Empty");
        Assert.Equal(PluginStatus.Failed, report.Status);
        Assert.Contains("folder without a plugin", report.Reason);
    }

    [Fact]
    public void NonDotnetFileIsReportedNotThrown()
    {
        var folder = Path.Combine(_root, "Fixture.Garbage");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "Fixture.Garbage.dll"), "this is not an assembly");
        using var host = Build();
        Assert.Equal(PluginStatus.Failed, Report(host, "Fixture.Garbage").Status);
    }

    [Fact]
    public async Task PluginShippingItsOwnContractCopyStillSharesTheHostTypes()
    {
        var folder = TestPlugins.Create(_root, "Fixture.Red", TestPlugins.RedRewardSource);
        File.Copy(typeof(IRewardModel).Assembly.Location, Path.Combine(folder, "NextFlowRL.Abstractions.dll"));
        using var host = Build();
        Assert.Equal(PluginStatus.Loaded, Report(host, "Fixture.Red").Status);
        IRewardModel reward = host.GetReward("red"); // would throw InvalidCast if the interface were a private copy
        Assert.Single(await reward.ScoreAsync([new RewardSample(RgbImage.Filled(2, 2, 0, 0, 0), "")]));
    }

    [Fact]
    public void DuplicateComponentNameFailsTheSecondPlugin()
    {
        TestPlugins.Create(_root, "Fixture.Red", TestPlugins.RedRewardSource);
        TestPlugins.Create(_root, "Fixture.Red2", TestPlugins.RedRewardSource.Replace("namespace Fixture.Red;", "namespace Fixture.Red2;"));
        using var host = Build();
        Assert.Equal(PluginStatus.Loaded, Report(host, "Fixture.Red").Status);
        var second = Report(host, "Fixture.Red2");
        Assert.Equal(PluginStatus.Failed, second.Status);
        Assert.Contains("'red' is already provided by Fixture.Red", second.Reason);
    }

    [Fact]
    public void DisabledPluginsAreSkipped()
    {
        TestPlugins.Create(_root, "Fixture.Red", TestPlugins.RedRewardSource);
        using var host = Build("Plugins:Disabled:0=Fixture.Red");
        Assert.DoesNotContain(host.Plugins, p => p.Name == "Fixture.Red");
        // The container holds the options the plugins were loaded with.
        var options = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions
            .GetRequiredService<Microsoft.Extensions.Options.IOptions<PluginHostOptions>>(host.Services).Value;
        Assert.Equal(["Fixture.Red"], options.Disabled);
    }

    [Fact]
    public void UnknownRewardListsTheAvailableOnes()
    {
        TestPlugins.Create(_root, "Fixture.Red", TestPlugins.RedRewardSource);
        using var host = Build();
        var ex = Assert.Throws<UnknownComponentException>(() => host.GetReward("blue"));
        Assert.Equal("unknown reward 'blue'; available: red", ex.Message);
    }

    [Fact]
    public void OptionsValidationListsEveryProblemAtOnce()
    {
        using var host = NextFlowRLHost.Build(
            Config("Rewards:brightness:Target=2", "Rewards:contrast:Target=-1"),
            pluginDirectories: [Path.GetDirectoryName(Repo.PluginFolder("NextFlowRL.Rewards.ImageStats"))!]);
        var errors = host.ValidateOptions();
        Assert.Equal(2, errors.Count);
        Assert.Contains(errors, e => e.Contains("[brightness]") && e.Contains("Target"));
        Assert.Contains(errors, e => e.Contains("[contrast]") && e.Contains("Target"));
        var ex = Assert.Throws<ConfigurationException>(host.EnsureValidOptions);
        Assert.Contains("2 problems", ex.Message);
    }

    [Fact]
    public void ConfigurationLayersEnvironmentAndSetArguments()
    {
        var dir = TestPlugins.TempDir();
        File.WriteAllText(Path.Combine(dir, "appsettings.json"), """{"Rewards":{"ocr":{"Workers":1,"Language":"eng"}}}""");
        var extra = Path.Combine(dir, "extra.json");
        File.WriteAllText(extra, """{"Rewards":{"ocr":{"Workers":3}}}""");
        Environment.SetEnvironmentVariable("NEXTFLOWRL_Rewards__ocr__Language", "deu");
        try
        {
            var config = NextFlowRLConfiguration.Build(["Rewards:ocr:Psm=7"], extra, dir);
            Assert.Equal("3", config["Rewards:ocr:Workers"]);
            Assert.Equal("deu", config["Rewards:ocr:Language"]);
            Assert.Equal("7", config["Rewards:ocr:Psm"]);
            var overridden = NextFlowRLConfiguration.Build(["Rewards:ocr:Workers=5"], extra, dir);
            Assert.Equal("5", overridden["Rewards:ocr:Workers"]);
            var twice = NextFlowRLConfiguration.Build(["Rewards:ocr:Workers=5", "Rewards:ocr:Workers=6"], extra, dir);
            Assert.Equal("6", twice["Rewards:ocr:Workers"]);
        }
        finally
        {
            Environment.SetEnvironmentVariable("NEXTFLOWRL_Rewards__ocr__Language", null);
        }
    }

    [Theory]
    [InlineData("novalue")]
    [InlineData("=x")]
    [InlineData(":=x")]
    public void MalformedSetArgumentsAreRejected(string setting)
    {
        var ex = Assert.Throws<ConfigurationException>(() => NextFlowRLConfiguration.ParseSettings([setting]).ToList());
        Assert.Contains(setting, ex.Message);
    }

    [Fact]
    public void MissingConfigFileIsOneClearError()
    {
        var ex = Assert.Throws<ConfigurationException>(() => NextFlowRLConfiguration.Build([], "/nonexistent/config.json"));
        Assert.Equal("config file '/nonexistent/config.json' not found", ex.Message);
    }
}
