using Microsoft.Extensions.Options;
using NextFlowRL.Hosting;
using NextFlowRL.Training;

namespace NextFlowRL.Cli.Commands;

/// <summary>
/// <see cref="TrainerOptions"/> as validated <c>IOptions</c> of the CLI's host: bound from section <c>Train</c> with
/// every value of the wrong type and every other problem listed at once, path tokens expanded.
/// </summary>
internal static class TrainingConfig
{
    /// <summary>Token in configured paths that stands for the directory of the nextflow-rl executable.</summary>
    public const string AppBaseToken = "$(AppBase)";

    /// <summary>
    /// Registers the options. Not validated on start: commands that do not train (<c>score</c>, <c>plugins</c>) must not
    /// fail on the training section; the commands that read it validate it on first use (<see cref="Bind"/>).
    /// </summary>
    public static void Add(IServiceCollection services, IConfiguration configuration) =>
        services.AddOptions<TrainerOptions>()
            .BindReportingProblems(configuration.GetSection(TrainerOptions.Section), o => o.Validate())
            .PostConfigure(ExpandPaths);

    /// <summary>A copy of the configured options, for a command to adjust (<c>--steps</c>, <c>--seed</c>).</summary>
    /// <exception cref="ConfigurationException">Every problem of the section, listed.</exception>
    public static TrainerOptions Bind(CliContext context)
    {
        var configured = context.Host.Services.GetRequiredService<IOptions<TrainerOptions>>(); // outside: host problems are not the Train section's
        try
        {
            return configured.Value.Clone();
        }
        catch (OptionsValidationException e)
        {
            throw Invalid(e.Failures.ToList());
        }
        catch (InvalidOperationException e)
        {
            throw new ConfigurationException($"configuration section Train: {e.Message}", e);
        }
    }

    private static void ExpandPaths(TrainerOptions options)
    {
        options.TrainPrompts = Expand(options.TrainPrompts);
        options.EvalPrompts = Expand(options.EvalPrompts);
        options.ValidationPrompts = Expand(options.ValidationPrompts);
        options.Checkpoint = Expand(options.Checkpoint);
        foreach (var name in options.EvalSets.Keys.ToList()) options.EvalSets[name] = Expand(options.EvalSets[name]) ?? "";
    }

    public static string? Expand(string? path) =>
        string.IsNullOrWhiteSpace(path) ? null : Path.GetFullPath(path.Replace(AppBaseToken, AppContext.BaseDirectory.TrimEnd('/', '\\'), StringComparison.Ordinal));

    /// <summary>Throws with every problem listed when options a command adjusted are invalid.</summary>
    public static void EnsureValid(TrainerOptions options)
    {
        var errors = options.Validate();
        if (errors.Count > 0) throw Invalid(errors);
    }

    private static ConfigurationException Invalid(IReadOnlyList<string> errors) =>
        new($"invalid training configuration ({errors.Count} problem{(errors.Count == 1 ? "" : "s")}):\n  " + string.Join("\n  ", errors));
}
