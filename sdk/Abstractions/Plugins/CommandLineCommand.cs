using System.CommandLine;
using System.Globalization;

namespace NextFlowRL.Plugins;

/// <summary>
/// A plugin command whose options System.CommandLine declares and parses: derive from this instead of implementing
/// <see cref="INextFlowRLCommand.InvokeAsync"/> by hand. <see cref="CreateCommand"/> builds the command (options with
/// descriptions, defaults and validators, and its action); the host's arguments are parsed by it, every problem is
/// listed at once on standard error with exit code 2, <c>--help</c> prints the generated help, and an
/// <see cref="ArgumentException"/>, <see cref="InvalidDataException"/> or <see cref="IOException"/> from the action
/// is one line on standard error with exit code 2 (no stack trace).
/// </summary>
public abstract class CommandLineCommand : INextFlowRLCommand
{
    /// <inheritdoc/>
    public abstract IReadOnlyList<string> Path { get; }

    /// <inheritdoc/>
    public abstract string Description { get; }

    /// <summary>Builds the command: its options and its action (<see cref="Command.SetAction(Func{ParseResult, CancellationToken, Task{int}})"/>). Called once per invocation.</summary>
    public abstract Command CreateCommand();

    /// <inheritdoc/>
    public async Task<int> InvokeAsync(IReadOnlyList<string> args, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        var command = CreateCommand();
        if (!command.Options.Any(o => o is System.CommandLine.Help.HelpOption)) command.Options.Add(new System.CommandLine.Help.HelpOption());
        var parse = command.Parse(args);
        string name = "nextflow-rl " + string.Join(' ', Path);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors) await Console.Error.WriteLineAsync($"{name}: error: {error.Message}").ConfigureAwait(false);
            await Console.Error.WriteLineAsync($"{name}: see {name} --help").ConfigureAwait(false);
            return 2;
        }
        try
        {
            return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or IOException)
        {
            await Console.Error.WriteLineAsync($"{name}: error: {e.Message}").ConfigureAwait(false);
            return 2;
        }
    }

    /// <summary>An integer option with a default and an inclusive range, checked at parse time (the message names the option and the range).</summary>
    protected static Option<int> Integer(string name, string description, int defaultValue, int min = int.MinValue, int max = int.MaxValue)
    {
        var option = new Option<int>(name) { Description = description, DefaultValueFactory = _ => defaultValue };
        option.Validators.Add(result =>
        {
            // A token that is not a number is the parser's own error; the range is checked on numbers.
            if (result.Tokens.Count == 1 && !int.TryParse(result.Tokens[0].Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out _)) return;
            int v = result.GetValueOrDefault<int>();
            if (v < min || v > max) result.AddError(string.Create(CultureInfo.InvariantCulture, $"{name} must be an integer in [{min}, {max}], got {v}"));
        });
        return option;
    }

    /// <summary>A floating-point option with a default and an inclusive range, checked at parse time.</summary>
    protected static Option<double> Number(string name, string description, double defaultValue, double min = double.MinValue, double max = double.MaxValue)
    {
        var option = new Option<double>(name) { Description = description, DefaultValueFactory = _ => defaultValue };
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count == 1 && !double.TryParse(result.Tokens[0].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out _)) return;
            double v = result.GetValueOrDefault<double>();
            if (!(v >= min && v <= max)) result.AddError(string.Create(CultureInfo.InvariantCulture, $"{name} must be a number in [{min}, {max}], got {v}"));
        });
        return option;
    }
}
