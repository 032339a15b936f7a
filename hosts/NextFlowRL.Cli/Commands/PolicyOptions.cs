using System.CommandLine;
using NextFlowRL.Policies;
using NextFlowRL.Runs;
using NextFlowRL.Training;

namespace NextFlowRL.Cli.Commands;

/// <summary>Options shared by commands that load a policy and sample from it.</summary>
internal sealed class PolicyOptions
{
    public Option<string?> Policy { get; } = new("--policy") { Description = "Policy plugin name (default Train:Policy, else var)." };
    public Option<string?> Checkpoint { get; } = new("--checkpoint") { Description = "Policy checkpoint: a saved policy folder, a checkpoint folder or a run folder (its latest checkpoint). Default: the plugin's shipped model." };
    public Option<long> Seed { get; } = new("--seed") { Description = "Sampling seed.", DefaultValueFactory = _ => 7 };
    public Option<double?> Cfg { get; } = new("--cfg") { Description = "Classifier-free guidance scale (default Train:Rollout:CfgScale)." };
    public Option<int?> TopK { get; } = new("--top-k") { Description = "Top-k (0 = off)." };
    public Option<double?> TopP { get; } = new("--top-p") { Description = "Top-p (1 = off)." };
    public Option<double?> Temperature { get; } = new("--temperature") { Description = "Temperature." };

    public void AddTo(Command command)
    {
        command.Options.Add(Policy);
        command.Options.Add(Checkpoint);
        command.Options.Add(Seed);
        command.Options.Add(Cfg);
        command.Options.Add(TopK);
        command.Options.Add(TopP);
        command.Options.Add(Temperature);
    }

    public INextScalePolicy Load(CliContext context, ParseResult parse)
    {
        var host = context.ValidatedHost();
        var defaults = TrainingConfig.Bind(context);
        var provider = host.GetPolicyProvider(parse.GetValue(Policy) ?? defaults.Policy);
        return provider.Load(ResolveCheckpoint(parse.GetValue(Checkpoint)));
    }

    public SamplingOptions Sampling(CliContext context, ParseResult parse)
    {
        var rollout = TrainingConfig.Bind(context).Rollout;
        var options = new SamplingOptions
        {
            Seed = parse.GetValue(Seed),
            CfgScale = parse.GetValue(Cfg) ?? rollout.CfgScale,
            TopK = parse.GetValue(TopK) ?? rollout.TopK,
            TopP = parse.GetValue(TopP) ?? rollout.TopP,
            Temperature = parse.GetValue(Temperature) ?? rollout.Temperature,
        };
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw new CliUsageException(e.Message);
        }
        return options;
    }

    /// <summary>A run folder -> its latest checkpoint's policy; a checkpoint folder -> its policy; else the folder itself.</summary>
    public static string? ResolveCheckpoint(string? path)
    {
        if (path is null) return null;
        if (File.Exists(path)) return path; // a weights file (e.g. an official .pth) for plugins that take one
        if (!Directory.Exists(path)) throw new CliUsageException($"checkpoint '{path}' not found");
        var latest = new CheckpointStore(Path.Combine(path, "checkpoints"), 1).Latest();
        if (latest is not null && File.Exists(Path.Combine(latest, LoraFiles.Description)))
            throw new CliUsageException($"'{path}' is a LoRA run: its checkpoints hold adapters only; fold them into the base with " +
                                        $"`nextflow-rl policy merge --adapters {path} --out DIR` and pass --checkpoint DIR");
        if (latest is not null) return Path.Combine(latest, "policy");
        return Directory.Exists(Path.Combine(path, "policy")) ? Path.Combine(path, "policy") : path;
    }
}
