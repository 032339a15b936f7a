using System.Diagnostics;
using NextFlowRL.Policies;
using NextFlowRL.Torch.Adapters;
using NextFlowRL.Torch.Memory;
using TorchSharp.Modules;

namespace NextFlowRL.Torch.Benchmarks;

/// <summary>One fine-tuning mode measured by <see cref="FineTuneBench"/>.</summary>
/// <param name="Mode"><c>lora</c> or <c>full</c>.</param>
/// <param name="TrainableParameters">Parameters the optimizer updates.</param>
/// <param name="StepSeconds">Fastest measured step: the reference's forward (no gradients), the policy's teacher-forced log-probs, backward, AdamW.</param>
/// <param name="PeakGrowthBytes">Peak resident growth over the mode's set-up (the reference: a frozen copy for full, none for LoRA) and steps.</param>
public sealed record FineTuneBenchResult(string Mode, long TrainableParameters, double StepSeconds, long PeakGrowthBytes);

/// <summary>
/// Full fine-tuning against LoRA on the same policy and tokens, the way the trainer does each: full keeps a frozen
/// reference copy and AdamW moments for every weight; LoRA freezes the base, takes the reference as the base with the
/// adapters off and keeps moments for the adapters only.
/// </summary>
public static class FineTuneBench
{
    /// <summary>Measures LoRA first, then full fine-tuning (each from a trimmed heap).</summary>
    /// <exception cref="NotSupportedException">The policy takes no adapters.</exception>
    public static IReadOnlyList<FineTuneBenchResult> Run(INextScalePolicy policy, IReadOnlyList<string> prompts, int batch, int steps, int rank, double alpha)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(prompts);
        if (policy is not IAdaptablePolicy adaptable) throw new NotSupportedException($"policy '{policy.Name}' takes no LoRA adapters");
        var rows = Enumerable.Range(0, batch).Select(i => prompts.Count == 0 ? "" : prompts[i % prompts.Count]).ToArray();
        using var tokens = policy.Sample(rows, SamplingOptions.Plain(3));
        var results = new List<FineTuneBenchResult>();

        NativeHeap.Trim();
        long before = ResidentMemory.ResetPeak();
        using (var lora = LoraSet.Attach(adaptable.AdaptableModule, rank, alpha))
        {
            using var reference = new AdaptersOffPolicy(policy);
            var parameters = lora.Parameters();
            double step = Steps(policy, reference, tokens, parameters, steps);
            results.Add(new FineTuneBenchResult("lora", parameters.Sum(p => p.numel()), step, ResidentMemory.Peak() - before));
        }

        NativeHeap.Trim();
        before = ResidentMemory.ResetPeak();
        using (var reference = policy.CreateFrozenCopy())
        {
            var parameters = policy.TrainableParameters();
            double step = Steps(policy, reference, tokens, parameters, steps);
            results.Add(new FineTuneBenchResult("full", parameters.Sum(p => p.numel()), step, ResidentMemory.Peak() - before));
        }
        foreach (var p in policy.TrainableParameters()) p.grad?.zero_();
        return results;
    }

    private static double Steps(INextScalePolicy policy, INextScalePolicy reference, TokenTrajectories tokens, IReadOnlyList<Parameter> parameters, int steps)
    {
        using var optimizer = optim.AdamW(parameters, 1e-6);
        double best = double.PositiveInfinity;
        for (int i = 0; i < Math.Max(1, steps); i++)
        {
            using var scope = NewDisposeScope();
            var sw = Stopwatch.StartNew();
            IReadOnlyList<Tensor> refs;
            using (no_grad()) refs = reference.LogProbs(tokens, 0, policy.Schedule.Count);
            var logps = policy.LogProbs(tokens, 0, policy.Schedule.Count);
            var kl = stack(logps.Zip(refs, (l, r) => (l - r).pow(2).sum()).ToArray()).sum();
            var loss = -stack(logps.Select(l => l.sum()).ToArray()).sum() + 0.1 * kl;
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return best;
    }
}
