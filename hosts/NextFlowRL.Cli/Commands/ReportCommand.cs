using System.CommandLine;
using NextFlowRL.Runs.Reporting;

namespace NextFlowRL.Cli.Commands;

/// <summary>
/// <c>nextflow-rl report RUN [RUN...] [--out FILE]</c>: rebuilds a run's <c>report.html</c>, or writes one report that
/// compares several runs side by side (a folder holding runs, such as an ablation directory, stands for all of them).
/// </summary>
internal static class ReportCommand
{
    public static Command Create(CliContext context)
    {
        var runs = new Argument<string[]>("runs") { Description = "Run folders, or folders holding runs (an ablation directory).", Arity = ArgumentArity.OneOrMore };
        var outFile = new Option<string?>("--out") { Description = "The comparison's HTML file (several runs; default report-compare.html in the current folder)." };
        var command = new Command("report", "Write the self-contained HTML report of a run (RUN/report.html), or compare several runs in one report.") { runs, outFile };
        command.SetAction((parse, _) =>
        {
            var folders = parse.GetValue(runs)!.SelectMany(RunReport.FindRuns).Distinct(StringComparer.Ordinal).ToList();
            if (folders.Count == 0)
                throw new CliUsageException($"no run folders (with metrics.jsonl) in {string.Join(", ", parse.GetValue(runs)!)}");
            var output = parse.GetValue(outFile);
            string path = folders.Count == 1 && output is null
                ? RunReport.Write(folders[0])
                : RunReport.WriteComparison(folders, output ?? "report-compare.html");
            Console.Out.WriteLine(path);
            Console.Error.WriteLine($"nextflow-rl: wrote the report of {folders.Count} run{(folders.Count == 1 ? "" : "s")} to {path}");
            return Task.FromResult(Cli.Ok);
        });
        return command;
    }
}
