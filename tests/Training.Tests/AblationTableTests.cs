using Xunit;

namespace NextFlowRL.Training.Tests;

public sealed class AblationTableTests
{
    [Fact]
    public void RowsHoldMeanAndSampleStdAndOnlyColumnsSomeRunReports()
    {
        var seeds = new List<IReadOnlyDictionary<string, double>>
        {
            new Dictionary<string, double> { ["word_accuracy"] = 0.1, ["facet/heldout/word_accuracy"] = 0.2 },
            new Dictionary<string, double> { ["word_accuracy"] = 0.3, ["facet/heldout/word_accuracy"] = 0.4 },
        };
        var md = AblationTable.Markdown([("vanilla GRPO", seeds)], new Dictionary<string, double> { ["word_accuracy"] = 0.05 });
        var lines = md.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("| variant | seeds | Word Acc (eval prompts) | Word Acc (held-out words) |", lines[0]);
        Assert.Equal("| base model | - | 0.0500 | - |", lines[2]);
        Assert.Equal("| vanilla GRPO | 2 | 0.2000 ± 0.1414 | 0.3000 ± 0.1414 |", lines[3]);
    }
}
