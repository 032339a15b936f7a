using System.Text.Json;
using NextFlowRL.Testing;
using Xunit;

namespace NextFlowRL.Cli.Tests;

/// <summary>Training defaults live in one place, the code (TrainerOptions); the shipped appsettings.json adds only what depends on the install.</summary>
public sealed class DefaultsTests
{
    // Names and paths only: the policy, the rewards, the prompt files and the rewards' own metrics to draw and report.
    private static readonly string[] HostSpecific = ["Policy", "Rewards", "TrainPrompts", "EvalPrompts", "ValidationPrompts", "EvalSets", "EvalReaders", "PlotMetrics", "ReportMetrics"];

    [Fact]
    public void TheShippedAppsettingsSetsNoTrainingValueOfItsOwn()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Repo.PathOf("hosts", "NextFlowRL.Cli", "appsettings.json")));
        var keys = doc.RootElement.GetProperty("Train").EnumerateObject().Select(p => p.Name).ToList();
        Assert.All(keys, k => Assert.Contains(k, HostSpecific));
    }
}
