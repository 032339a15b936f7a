using NextFlowRL.Runs;
using Xunit;

namespace NextFlowRL.Training.Tests;

/// <summary>The algorithm assembly stays free of run bookkeeping (docs/architecture.md, Layers).</summary>
public sealed class LayeringTests
{
    [Fact]
    public void TheEngineReferencesNeitherRunBookkeepingNorPlottingNorPlugins()
    {
        var references = typeof(GrpoTrainer).Assembly.GetReferencedAssemblies().Select(a => a.Name!).ToList();
        Assert.DoesNotContain(references, n => n.StartsWith("ScottPlot", StringComparison.Ordinal));
        Assert.DoesNotContain(references, n => n.StartsWith("NextFlowRL.Rewards.", StringComparison.Ordinal) || n.StartsWith("NextFlowRL.Policies.", StringComparison.Ordinal));
        Assert.DoesNotContain(typeof(GrpoTrainer).Assembly.GetExportedTypes(), t => t.Name is nameof(RunFolder) or nameof(CheckpointStore) or nameof(TrainingRun));
    }

    [Fact]
    public void RunBookkeepingLivesInItsOwnAssembly()
    {
        var runs = typeof(TrainingRun).Assembly;
        Assert.Equal("NextFlowRL.Runs", runs.GetName().Name);
        Assert.Contains(runs.GetReferencedAssemblies(), a => a.Name == "NextFlowRL.Training");
        Assert.All(new[] { typeof(RunFolder), typeof(CheckpointStore), typeof(EvalFile), typeof(AblationTable), typeof(TrainBenchmark), typeof(NextFlowRL.Runs.Reporting.RunReport) },
            t => Assert.Same(runs, t.Assembly));
    }
}
