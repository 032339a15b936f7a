using NextFlowRL.Plugins;
using NextFlowRL.Testing;

namespace NextFlowRL.Tests;

/// <summary>Builds plugin folders for loader tests: good ones and each kind of broken one.</summary>
internal static class TestPlugins
{
    public const string RedRewardSource = """
        using Microsoft.Extensions.DependencyInjection;
        using NextFlowRL.Plugins;
        using NextFlowRL.Rewards;
        namespace Fixture.Red;
        public sealed class RedReward : IRewardModel
        {
            public string Name => "red";
            public Task<IReadOnlyList<RewardResult>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellationToken = default)
            {
                var results = samples.Select(s =>
                {
                    var p = s.Image.Pixels;
                    int red = 0;
                    for (int i = 0; i < p.Length; i += 3) if (p[i] > 128 && p[i + 1] < 128 && p[i + 2] < 128) red++;
                    return RewardResult.Of((double)red / (s.Image.Width * s.Image.Height));
                }).ToList();
                return Task.FromResult<IReadOnlyList<RewardResult>>(results);
            }
        }
        public sealed class RedPlugin : INextFlowRLPlugin
        {
            public void Register(INextFlowRLBuilder builder) => builder.AddReward("red", "fraction of red pixels", (_, _) => new RedReward());
        }
        """;

    /// <summary>A plugin folder <c>root/name/name.dll</c> compiled from source against the SDK only.</summary>
    public static string Create(string root, string name, params string[] sources)
    {
        var folder = Path.Combine(root, name);
        PluginCompiler.Compile(name, Path.Combine(folder, name + ".dll"), sources);
        return folder;
    }

    public static string Throwing(string root) => Create(root, "Fixture.Throws", """
        using NextFlowRL.Plugins;
        namespace Fixture.Throws;
        public sealed class ThrowingPlugin : INextFlowRLPlugin
        {
            public void Register(INextFlowRLBuilder builder)
            {
                builder.AddReward("half-registered", "never kept", (_, _) => throw new InvalidOperationException());
                throw new InvalidOperationException("the model file is missing");
            }
        }
        """);

    /// <summary>A plugin built against a fake NextFlowRL.Abstractions 2.0.</summary>
    public static string Incompatible(string root, string scratch)
    {
        var fakeContracts = PluginCompiler.Compile("NextFlowRL.Abstractions", Path.Combine(scratch, "v2", "NextFlowRL.Abstractions.dll"), ["""
            namespace NextFlowRL.Plugins;
            public interface INextFlowRLBuilder { }
            public interface INextFlowRLPlugin { void Register(INextFlowRLBuilder builder); }
            """], version: new Version(2, 0, 0, 0));
        var folder = Path.Combine(root, "Fixture.FromTheFuture");
        PluginCompiler.Compile("Fixture.FromTheFuture", Path.Combine(folder, "Fixture.FromTheFuture.dll"), ["""
            using NextFlowRL.Plugins;
            namespace Fixture.FromTheFuture;
            public sealed class FuturePlugin : INextFlowRLPlugin { public void Register(INextFlowRLBuilder builder) { } }
            """], replace: [fakeContracts]);
        return folder;
    }

    /// <summary>A plugin whose entry type derives from a class in an assembly that is not in its folder.</summary>
    public static string MissingDependency(string root, string scratch)
    {
        var helper = PluginCompiler.Compile("Fixture.Helper", Path.Combine(scratch, "helper", "Fixture.Helper.dll"), ["""
            namespace Fixture.Helper;
            public abstract class PluginBase { }
            """]);
        var folder = Path.Combine(root, "Fixture.NeedsHelper");
        PluginCompiler.Compile("Fixture.NeedsHelper", Path.Combine(folder, "Fixture.NeedsHelper.dll"), ["""
            using NextFlowRL.Plugins;
            namespace Fixture.NeedsHelper;
            public sealed class NeedsHelperPlugin : Fixture.Helper.PluginBase, INextFlowRLPlugin { public void Register(INextFlowRLBuilder builder) { } }
            """], replace: [helper]);
        return folder;
    }

    public static string Empty(string root)
    {
        var folder = Path.Combine(root, "Fixture.Empty");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "README.txt"), "not a plugin");
        return folder;
    }

    public static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "nextflow-tests", Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    public static ComponentDescriptor Reward(string name) => new(name, ComponentKind.Reward, "");
}
