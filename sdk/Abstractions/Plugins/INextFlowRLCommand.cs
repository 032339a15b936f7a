namespace NextFlowRL.Plugins;

/// <summary>
/// A command a plugin adds to host command lines, e.g. <c>nextflow-rl pretrain tokenizer</c> or
/// <c>nextflow-rl bench ocr</c>. The host matches <see cref="Path"/> and hands over the remaining arguments
/// unparsed; the command parses them, writes to the console and returns an exit code. Register with
/// <see cref="NextFlowRLBuilderExtensions.AddCommand"/>.
/// </summary>
public interface INextFlowRLCommand
{
    /// <summary>Command words, e.g. <c>["bench", "ocr"]</c>.</summary>
    IReadOnlyList<string> Path { get; }

    /// <summary>One line for <c>--help</c> listings.</summary>
    string Description { get; }

    /// <summary>
    /// Runs the command with the arguments after its path. Bad arguments should print one clear line to standard
    /// error and return a non-zero code (2 by convention); <c>--help</c> should print the command's options.
    /// </summary>
    Task<int> InvokeAsync(IReadOnlyList<string> args, CancellationToken cancellationToken);
}
