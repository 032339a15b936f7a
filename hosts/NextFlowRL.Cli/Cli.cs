using System.CommandLine;
using NextFlowRL.Hosting;
using NextFlowRL.Imaging;
using NextFlowRL.Plugins;

namespace NextFlowRL.Cli;

/// <summary>Exit codes, error printing and plugin-command routing.</summary>
internal static class Cli
{
    public const int Ok = 0;
    public const int RuntimeError = 1;
    public const int UsageError = 2;
    public const int Cancelled = 130;

    /// <summary>Built-in command paths; everything else may be a plugin command.</summary>
    private static readonly string[][] BuiltIn = [["plugins"], ["score"], ["sample"], ["train"], ["eval"], ["ablate"], ["report"], ["bench", "train"], ["bench", "policy"], ["bench", "cluster"], ["policy", "encode"], ["policy", "decode"], ["policy", "logprobs"], ["policy", "convert"]];

    /// <summary>Length of the longest built-in command path that prefixes <paramref name="args"/> (0 when none).</summary>
    public static int BuiltInMatchLength(string[] args) =>
        BuiltIn.Where(path => path.Length <= args.Length && args.Take(path.Length).SequenceEqual(path, StringComparer.Ordinal))
            .Select(path => path.Length).DefaultIfEmpty(0).Max();

    /// <summary>The plugin command with the longest path that prefixes <paramref name="args"/>.</summary>
    public static INextFlowRLCommand? FindPluginCommand(IEnumerable<INextFlowRLCommand> commands, string[] args) =>
        commands.Where(c => c.Path.Count > 0 && c.Path.Count <= args.Length && args.Take(c.Path.Count).SequenceEqual(c.Path, StringComparer.Ordinal))
            .OrderByDescending(c => c.Path.Count)
            .FirstOrDefault();

    /// <summary>Lists plugin commands in help output (their own options are shown by '&lt;command&gt; --help').</summary>
    public static void AddPluginCommandsForHelp(RootCommand root, CliContext context, string[] args)
    {
        IReadOnlyList<INextFlowRLCommand> commands;
        try
        {
            commands = context.Host.Commands;
        }
        catch (Exception)
        {
            return; // configuration problems surface in the command that needs the host
        }
        foreach (var command in commands)
        {
            Command parent = root;
            for (int i = 0; i < command.Path.Count; i++)
            {
                var word = command.Path[i];
                var existing = parent.Subcommands.FirstOrDefault(c => c.Name == word);
                if (existing is null)
                {
                    existing = new Command(word, i == command.Path.Count - 1 ? command.Description + " (plugin command; options: --help)" : "");
                    parent.Subcommands.Add(existing);
                }
                parent = existing;
            }
        }
    }

    public static int Fail(string message, int code)
    {
        Console.Error.WriteLine($"nextflow-rl: error: {message}");
        return code;
    }

    /// <summary>Runs a command body, turning every failure into one line on standard error and an exit code.</summary>
    public static async Task<int> GuardAsync(bool verbose, Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("nextflow-rl: cancelled");
            return Cancelled;
        }
        catch (Exception e) when (e is ConfigurationException or UnknownComponentException or CliUsageException)
        {
            if (verbose) Console.Error.WriteLine(e);
            return Fail(e.Message, UsageError);
        }
        catch (Exception e) when (e is ImageFormatException or InvalidDataException or NextFlowRL.Cluster.WorkerRefusedException or FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            if (verbose) Console.Error.WriteLine(e);
            return Fail(e.Message, RuntimeError);
        }
        catch (Exception e)
        {
            if (verbose)
            {
                Console.Error.WriteLine(e);
                return Fail($"{e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}", RuntimeError);
            }
            return Fail($"{e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")} (run with --verbose for details)", RuntimeError);
        }
    }
}

/// <summary>Bad command-line input detected by a command; printed as one line, exit code 2.</summary>
internal sealed class CliUsageException : Exception
{
    public CliUsageException(string message) : base(message) { }

    public CliUsageException() { }

    public CliUsageException(string message, Exception inner) : base(message, inner) { }
}
