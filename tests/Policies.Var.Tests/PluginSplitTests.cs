using Microsoft.Extensions.Configuration;
using NextFlowRL.Hosting;
using NextFlowRL.Plugins;
using NextFlowRL.Policies.Var;
using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Policies.Var.Tests;

/// <summary>The policy plugin holds what sampling and RL need; its data and pretraining commands are the tools plugin.</summary>
public sealed class PluginSplitTests : IDisposable
{
    private readonly string _plugins = Directory.CreateTempSubdirectory("nf-var-plugins-").FullName;
    private readonly string _out = Directory.CreateTempSubdirectory("nf-var-images-").FullName;

    public void Dispose()
    {
        Directory.Delete(_plugins, recursive: true);
        Directory.Delete(_out, recursive: true);
    }

    [Fact]
    public void ThePolicyAssemblyCarriesNoCommandsAndNoPretraining()
    {
        var policy = typeof(VarPolicy).Assembly;
        Assert.DoesNotContain(policy.GetTypes(), t => typeof(INextFlowRLCommand).IsAssignableFrom(t));
        Assert.DoesNotContain(policy.GetTypes(), t => t.Namespace is "NextFlowRL.Policies.Var.Training" or "NextFlowRL.Policies.Var.Data");
        Assert.NotSame(policy, typeof(VarToolsPlugin).Assembly);
    }

    [Fact]
    public async Task BothPluginFoldersLoadAndTheToolsFindTheShippedModelInThePolicyPluginsFolder()
    {
        foreach (var name in new[] { "NextFlowRL.Policies.Var", "NextFlowRL.Policies.Var.Tools" })
            CopyDirectory(Repo.PluginFolder(name), Path.Combine(_plugins, name));
        Assert.False(Directory.Exists(Path.Combine(_plugins, "NextFlowRL.Policies.Var.Tools", "models")), "the tools plugin must not carry a copy of the shipped model");
        using var host = NextFlowRLHost.Build(new ConfigurationBuilder().Build(), pluginDirectories: [_plugins]);
        Assert.All(host.Plugins, p => Assert.Equal(PluginStatus.Loaded, p.Status));
        Assert.Contains(host.Plugins, p => p.Name == "NextFlowRL.Policies.Var" && p.Components.Any(c => c.Name == "var"));
        var paths = host.Commands.Select(c => string.Join(' ', c.Path)).ToList();
        Assert.Equal(["data var-images", "data var-prompts", "pretrain generator", "pretrain tokenizer"], paths.Order(StringComparer.Ordinal));

        // The default --checkpoint of data var-images is the shipped model, found beside the tools plugin's folder.
        var images = host.Commands.Single(c => string.Join(' ', c.Path) == "data var-images");
        int code = await images.InvokeAsync(["--out", _out, "--limit", "2", "--source", "reconstruction"], CancellationToken.None);
        Assert.Equal(0, code);
        Assert.Equal(2, Directory.GetFiles(_out, "*.png").Count(f => !f.EndsWith("grid.png", StringComparison.Ordinal)));
    }

    private static void CopyDirectory(string from, string to)
    {
        Assert.True(Directory.Exists(from), $"{from} is not built");
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }
}

/// <summary>The pretraining commands as a user runs them: defaults for every option not given, the host's display.</summary>
public sealed class PretrainCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nf-pretrain-cmd-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task TokenizerWithoutScalesUsesTheDefaultScheduleAndShowsRoundsOnTheDisplay()
    {
        var display = new RecordingDisplay();
        var command = new NextFlowRL.Policies.Var.Commands.PretrainTokenizerCommand(display);
        int code = await command.InvokeAsync(["--out", _dir, "--steps", "1", "--batch", "2", "--threads", "0"], CancellationToken.None);
        Assert.Equal(0, code);
        var config = NextFlowRL.Policies.Var.Model.VarModelConfig.FromJson(File.ReadAllText(Path.Combine(_dir, "config.json")), "config.json");
        Assert.Equal(new NextFlowRL.Policies.Var.Model.TokenizerConfig().Scales.Select(s => string.Join('x', s)), config.Tokenizer.Scales.Select(s => string.Join('x', s)));
        Assert.Equal(("tokenizer k-means", 1, "rounds"), Assert.Single(display.Started));
        Assert.True(display.Disposed);
    }
}
