using NextFlowRL.Training;

namespace NextFlowRL.Cli.Commands;

/// <summary>Reads <see cref="TrainerOptions"/> from configuration section <c>Train</c> and expands path tokens.</summary>
internal static class TrainingConfig
{
    /// <summary>Token in configured paths that stands for the directory of the nextflow-rl executable.</summary>
    public const string AppBaseToken = "$(AppBase)";

    public static TrainerOptions Bind(IConfiguration configuration)
    {
        var options = new TrainerOptions();
        IReadOnlyList<string> mistyped;
        try
        {
            mistyped = Hosting.ConfigurationChecks.Bind(configuration.GetSection(TrainerOptions.Section), options);
        }
        catch (InvalidOperationException e)
        {
            throw new Hosting.ConfigurationException($"configuration section Train: {e.Message}", e);
        }
        // Values of the wrong type and every other problem, in one message.
        if (mistyped.Count > 0) Throw([.. mistyped, .. options.Validate()]);
        options.TrainPrompts = Expand(options.TrainPrompts);
        options.EvalPrompts = Expand(options.EvalPrompts);
        options.ValidationPrompts = Expand(options.ValidationPrompts);
        options.Checkpoint = Expand(options.Checkpoint);
        foreach (var name in options.EvalSets.Keys.ToList()) options.EvalSets[name] = Expand(options.EvalSets[name]) ?? "";
        return options;
    }

    public static string? Expand(string? path) =>
        string.IsNullOrWhiteSpace(path) ? null : Path.GetFullPath(path.Replace(AppBaseToken, AppContext.BaseDirectory.TrimEnd('/', '\\'), StringComparison.Ordinal));

    /// <summary>Throws with every problem listed when the options are invalid.</summary>
    public static void EnsureValid(TrainerOptions options)
    {
        var errors = options.Validate();
        if (errors.Count > 0) Throw(errors);
    }

    private static void Throw(IReadOnlyList<string> errors) =>
        throw new Hosting.ConfigurationException($"invalid training configuration ({errors.Count} problem{(errors.Count == 1 ? "" : "s")}):\n  " + string.Join("\n  ", errors));
}
