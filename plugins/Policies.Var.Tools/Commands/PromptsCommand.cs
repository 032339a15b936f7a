using System.CommandLine;
using NextFlowRL.Plugins;
using NextFlowRL.Policies.Var.Data;

namespace NextFlowRL.Policies.Var.Commands;

/// <summary>
/// <c>nextflow-rl data var-prompts</c>: writes the fixed evaluation prompts (<c>eval_prompts.jsonl</c>, bins by region
/// count and seen/held-out words), the validation prompts (<c>validation_prompts.jsonl</c>), the out-of-distribution
/// prompts (<c>ood_prompts.jsonl</c>, <see cref="TextDataset.OutOfDistributionPrompts"/>) and RL training prompts
/// (<c>train_prompts.jsonl</c>, training vocabulary only).
/// </summary>
public sealed class PromptsCommand : CommandLineCommand
{
    /// <inheritdoc/>
    public override IReadOnlyList<string> Path { get; } = ["data", "var-prompts"];

    /// <inheritdoc/>
    public override string Description => "Write the VAR text-rendering evaluation, validation, out-of-distribution and training prompt files (JSONL).";

    /// <inheritdoc/>
    public override Command CreateCommand()
    {
        var outDir = new Option<string>("--out") { Description = "Directory to write the prompt files to.", Required = true };
        var perBin = Integer("--per-bin", "Evaluation (and validation) prompts per bin.", 25, 1, 100000);
        var oodPerBin = Integer("--ood-per-bin", "Out-of-distribution prompts per bin.", 20, 1, 100000);
        var trainCount = Integer("--train", "Training prompts.", 2000, 1, 10000000);
        var seed = Integer("--seed", "Base seed (evaluation; training +1, validation +101, out-of-distribution +1102).", 20260101);
        var command = new Command(Path[^1], Description) { outDir, perBin, oodPerBin, trainCount, seed };
        command.SetAction(parse =>
        {
            var dir = parse.GetValue(outDir)!;
            int s = parse.GetValue(seed);
            Directory.CreateDirectory(dir);
            var eval = TextDataset.EvaluationPrompts(WordLists.Default, parse.GetValue(perBin), s);
            var train = TextDataset.TrainingPrompts(WordLists.Default, parse.GetValue(trainCount), s + 1);
            var validation = TextDataset.ValidationPrompts(WordLists.Default, eval, parse.GetValue(perBin), s + 101);
            var ood = TextDataset.OutOfDistributionPrompts(WordLists.Default, parse.GetValue(oodPerBin), s + 1102);
            TextDataset.WriteJsonl(System.IO.Path.Combine(dir, "eval_prompts.jsonl"), eval);
            TextDataset.WriteJsonl(System.IO.Path.Combine(dir, "train_prompts.jsonl"), train);
            TextDataset.WriteJsonl(System.IO.Path.Combine(dir, "validation_prompts.jsonl"), validation);
            TextDataset.WriteJsonl(System.IO.Path.Combine(dir, "ood_prompts.jsonl"), ood);
            Console.WriteLine($"wrote {eval.Count} evaluation prompts ({Bins(eval)}), {validation.Count} validation prompts (no word of the evaluation set), " +
                              $"{ood.Count} out-of-distribution prompts ({Bins(ood)}) and {train.Count} training prompts to {dir}");
            return 0;
        });
        return command;
    }

    private static string Bins(IEnumerable<PromptRecord> records) => string.Join(", ", records.GroupBy(r => r.Bin).Select(g => $"{g.Key}: {g.Count()}"));
}
