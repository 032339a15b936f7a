using System.CommandLine;
using System.CommandLine.Invocation;
using NextFlowRL.Cli;
using NextFlowRL.Cli.Commands;
using NextFlowRL.Hosting;

GlobalOptions globals;
string[] rest;
try
{
    (globals, rest) = GlobalOptions.Extract(args);
}
catch (ConfigurationException e)
{
    return Cli.Fail(e.Message, Cli.UsageError);
}

// Before the first tensor: glibc arenas sized for libtorch (peak memory; see NextFlowRL.Torch.Memory.NativeHeap).
NextFlowRL.Torch.Memory.NativeHeap.Configure();
NextFlowRL.Torch.Determinism.NativeNumerics.Configure(); // MKL_CBWR: the same bits in every process
// Tables written to a file or a pipe keep each row on one line (Spectre assumes 80 columns when no terminal tells it).
if (Console.IsOutputRedirected) Spectre.Console.AnsiConsole.Profile.Width = 240;
using var context = new CliContext(globals);
using var cancellation = new CancellationTokenSource();
// Ctrl-C (SIGINT) or SIGTERM: stop gracefully (training writes a checkpoint); a second signal terminates at once.
void OnStopSignal(System.Runtime.InteropServices.PosixSignalContext signal)
{
    if (cancellation.IsCancellationRequested) return; // second signal: default handling kills the process
    signal.Cancel = true;
    Console.Error.WriteLine("nextflow-rl: stopping (send the signal again to kill)...");
    cancellation.Cancel();
}
using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, OnStopSignal);
using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, OnStopSignal);

return await Cli.GuardAsync(globals.Verbose, async () =>
{
    // Plugin commands (e.g. "bench ocr", "pretrain tokenizer") are routed before parsing: they parse their own options.
    // A plugin command wins over a built-in one when its path is longer ("bench policy" vs the built-in "bench").
    if (rest.Length > 0 && !rest[0].StartsWith('-'))
    {
        var command = Cli.FindPluginCommand(context.Host.Commands, rest);
        if (command is not null && command.Path.Count > Cli.BuiltInMatchLength(rest))
            return await command.InvokeAsync(rest[command.Path.Count..], cancellation.Token);
    }

    var root = new RootCommand("nextflow-rl: reinforcement learning for visual autoregressive image generators.\n\n" + GlobalOptions.Help);
    root.Subcommands.Add(PluginsCommand.Create(context));
    root.Subcommands.Add(ScoreCommand.Create(context));
    root.Subcommands.Add(SampleCommand.Create(context));
    root.Subcommands.Add(TrainCommand.Create(context));
    root.Subcommands.Add(EvalCommand.Create(context));
    root.Subcommands.Add(AblateCommand.Create(context));
    root.Subcommands.Add(ReportCommand.Create(context));
    root.Subcommands.Add(PolicyCommand.Create(context));
    root.Subcommands.Add(new Command("bench", "Benchmarks (plugins add more, e.g. bench ocr).") { BenchTrainCommand.Create(context), BenchPolicyCommand.Create(context), BenchClusterCommand.Create(context) });
    Cli.AddPluginCommandsForHelp(root, context, rest);

    var parsed = root.Parse(rest);
    if (parsed.Errors.Count > 0)
    {
        var where = parsed.CommandResult.Command == root ? "nextflow-rl" : "nextflow-rl " + string.Join(" ", CommandPath(parsed.CommandResult));
        var message = string.Join(" ", parsed.Errors[0].Message.Split(['\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries).Select(s => s.Trim()));
        return Cli.Fail($"{message} (see '{where} --help')", Cli.UsageError);
    }
    return await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null }, cancellation.Token);
});

static IEnumerable<string> CommandPath(System.CommandLine.Parsing.CommandResult result)
{
    var names = new Stack<string>();
    for (var r = result; r is not null && r.Parent is System.CommandLine.Parsing.CommandResult; r = r.Parent as System.CommandLine.Parsing.CommandResult)
        names.Push(r.Command.Name);
    return names;
}
