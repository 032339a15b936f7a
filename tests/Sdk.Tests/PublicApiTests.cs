using NextFlowRL.Testing;
using PublicApiGenerator;
using Xunit;

namespace NextFlowRL.Tests;

/// <summary>
/// The public API of the contract assemblies is snapshotted: any change to what plugins compile against shows up as
/// a snapshot diff to review (and, when breaking, as a contract version bump).
/// </summary>
public class PublicApiTests
{
    private static string[] Api(Type marker) =>
        marker.Assembly.GeneratePublicApi(new ApiGeneratorOptions { IncludeAssemblyAttributes = false })
            .ReplaceLineEndings("\n").Split('\n');

    [Fact]
    public void AbstractionsApi() => Snapshots.Match(Api(typeof(NextFlowRL.Rewards.IRewardModel)));

    [Fact]
    public void PolicyAbstractionsApi() => Snapshots.Match(Api(typeof(NextFlowRL.Policies.INextScalePolicy)));

    [Fact]
    public void ImagingApi() => Snapshots.Match(Api(typeof(NextFlowRL.Imaging.ImageFile)));

    [Fact]
    public void ContractVersionsAreTheReleasedOnes()
    {
        // Additions since the 0.1.0 baseline, each a minor version: Abstractions 1.1 (CommandLineCommand, the progress
        // display), Abstractions.Policies 1.1 (SamplingOptions.RowSeeds, SamplingRandom); Imaging is unchanged.
        Assert.Equal(new Version(1, 1, 0, 0), typeof(NextFlowRL.Rewards.IRewardModel).Assembly.GetName().Version);
        Assert.Equal(new Version(1, 1, 0, 0), typeof(NextFlowRL.Policies.INextScalePolicy).Assembly.GetName().Version);
        Assert.Equal(new Version(1, 0, 0, 0), typeof(NextFlowRL.Imaging.ImageFile).Assembly.GetName().Version);
        Assert.Equal(3, NextFlowRL.Hosting.PluginLoader.ContractAssemblies.Count);
    }
}
