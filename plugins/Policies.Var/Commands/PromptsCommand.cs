using NextFlowRL.Plugins;
using NextFlowRL.Policies.Var.Data;

namespace NextFlowRL.Policies.Var.Commands;

/// <summary>
/// <c>nextflow-rl data var-prompts</c>: writes the fixed evaluation prompts (<c>eval_prompts.jsonl</c>, bins by region
/// count and seen/held-out words), the validation prompts (<c>validation_prompts.jsonl</c>), the out-of-distribution
/// prompts (<c>ood_prompts.jsonl</c>, <see cref="TextDataset.OutOfDistributionPrompts"/>) and RL training prompts
/// (<c>train_prompts.jsonl</c>, training vocabulary only).
/// </summary>
public sealed class PromptsCommand : INextFlowRLCommand
{
    private const string Usage = "nextflow-rl data var-prompts --out DIR [--per-bin N] [--ood-per-bin N] [--train N] [--seed S]";

    /// <inheritdoc/>
    public IReadOnlyList<string> Path { get; } = ["data", "var-prompts"];

    /// <inheritdoc/>
    public string Description => "Write the VAR text-rendering evaluation and training prompt files (JSONL).";

    /// <inheritdoc/>
    public Task<int> InvokeAsync(IReadOnlyList<string> args, CancellationToken cancellationToken) =>
        PretrainArgs.Run(Usage, args, ["per-bin", "ood-per-bin", "train"], a =>
        {
            var outDir = a.String("out") ?? throw new ArgumentException("--out DIR is required");
            Directory.CreateDirectory(outDir);
            var eval = TextDataset.EvaluationPrompts(WordLists.Default, a.Int("per-bin", 25, 1, 100000), a.Int("seed", 20260101));
            var train = TextDataset.TrainingPrompts(WordLists.Default, a.Int("train", 2000, 1, 10000000), a.Int("seed", 20260101) + 1);
            var validation = TextDataset.ValidationPrompts(WordLists.Default, eval, a.Int("per-bin", 25, 1, 100000), a.Int("seed", 20260101) + 101);
            TextDataset.WriteJsonl(System.IO.Path.Combine(outDir, "eval_prompts.jsonl"), eval);
            TextDataset.WriteJsonl(System.IO.Path.Combine(outDir, "train_prompts.jsonl"), train);
            TextDataset.WriteJsonl(System.IO.Path.Combine(outDir, "validation_prompts.jsonl"), validation);
            var ood = TextDataset.OutOfDistributionPrompts(WordLists.Default, a.Int("ood-per-bin", 20, 1, 100000), a.Int("seed", 20260101) + 1102);
            TextDataset.WriteJsonl(System.IO.Path.Combine(outDir, "ood_prompts.jsonl"), ood);
            Console.WriteLine($"wrote {eval.Count} evaluation prompts ({Bins(eval)}), {validation.Count} validation prompts (no word of the evaluation set), " +
                              $"{ood.Count} out-of-distribution prompts ({Bins(ood)}) and {train.Count} training prompts to {outDir}");
            return 0;
        });

    private static string Bins(IEnumerable<PromptRecord> records) => string.Join(", ", records.GroupBy(r => r.Bin).Select(g => $"{g.Key}: {g.Count()}"));
}
