using NextFlowRL.Policies;
using TorchSharp;
using static TorchSharp.torch;

namespace NextFlowRL.Testing;

/// <summary>
/// The guarantees of <see cref="INextScalePolicy"/> that the trainer relies on (docs/swapping-a-backbone.md), as
/// checks any policy's tests can run: each throws <see cref="PolicyContractException"/> naming what broke.
/// Use a tiny random configuration of the backbone: the checks sample and score a handful of rows.
/// </summary>
public static class PolicyContract
{
    /// <summary>Runs every check: <paramref name="load"/> loads a checkpoint directory written by <see cref="INextScalePolicy.Save"/>.</summary>
    public static void CheckAll(INextScalePolicy policy, Func<string, INextScalePolicy> load, IReadOnlyList<string> prompts, double tolerance = 1e-5)
    {
        SamplesMatchTheSchedule(policy, prompts);
        SamplingIsReproducible(policy, prompts);
        RowSeedsMakeRowsIndependentOfTheBatch(policy, prompts);
        ContinueKeepsThePrefix(policy, prompts);
        LogProbsAreNormalizedAndSliceable(policy, prompts, tolerance);
        DecodeGivesOneImageOfTheInfoSizePerRow(policy, prompts);
        FrozenCopyScoresAlikeAndDoesNotTrain(policy, prompts, tolerance);
        SaveAndLoadRoundTrip(policy, load, prompts, tolerance);
    }

    /// <summary>Sample returns one int64 grid per scale of the schedule, one row per prompt.</summary>
    public static void SamplesMatchTheSchedule(INextScalePolicy policy, IReadOnlyList<string> prompts)
    {
        using var _ = NewDisposeScope();
        using var t = policy.Sample(prompts, SamplingOptions.Plain(1));
        Require(t.Length == policy.Schedule.Count, $"Sample returned {t.Length} scales, the schedule has {policy.Schedule.Count}");
        Require(t.Count == prompts.Count, $"Sample returned {t.Count} rows for {prompts.Count} prompts");
        for (int k = 0; k < t.Length; k++)
        {
            var shape = policy.Schedule[k];
            Require(t.Grids[k].shape.SequenceEqual(new long[] { prompts.Count, shape.Height, shape.Width }),
                $"scale {k}: grid [{string.Join(",", t.Grids[k].shape)}], the schedule says [{prompts.Count},{shape.Height},{shape.Width}]");
            Require(t.Grids[k].min().item<long>() >= 0, $"scale {k}: negative token ids");
        }
    }

    /// <summary>The same seed gives the same tokens.</summary>
    public static void SamplingIsReproducible(INextScalePolicy policy, IReadOnlyList<string> prompts)
    {
        using var _ = NewDisposeScope();
        var o = new SamplingOptions { Seed = 7, TopK = 0, Temperature = 1 };
        using var a = policy.Sample(prompts, o);
        using var b = policy.Sample(prompts, o);
        for (int k = 0; k < a.Length; k++)
            Require(Same(a.Grids[k], b.Grids[k]), $"scale {k}: two samples with seed 7 differ");
    }

    /// <summary>
    /// With <see cref="SamplingOptions.RowSeeds"/>, a row's tokens depend on its own seed, not on the rows beside it: the
    /// last prompt sampled alone gives what it gives as the last row of the whole batch (what splitting a step's rollouts
    /// over workers relies on), from scratch and when continuing a prefix.
    /// </summary>
    public static void RowSeedsMakeRowsIndependentOfTheBatch(INextScalePolicy policy, IReadOnlyList<string> prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        Require(prompts.Count >= 2, "RowSeedsMakeRowsIndependentOfTheBatch needs at least two prompts");
        using var _ = NewDisposeScope();
        var seeds = Enumerable.Range(0, prompts.Count).Select(i => 1000L + 17 * i).ToArray();
        var o = new SamplingOptions { CfgScale = 1.5, TopK = 0, Temperature = 1, RowSeeds = seeds };
        using var all = policy.Sample(prompts, o);
        using var alone = policy.Sample([prompts[^1]], o with { RowSeeds = [seeds[^1]] });
        for (int k = 0; k < all.Length; k++)
            Require(Same(all.Grids[k].narrow(0, prompts.Count - 1, 1), alone.Grids[k]),
                $"scale {k}: the last row sampled with its row seed in a batch of {prompts.Count} differs from the same row sampled alone (are SamplingOptions.RowSeeds ignored? draw through NextFlowRL.Policies.SamplingRandom)");
        int split = Math.Max(1, all.Length / 2);
        using var prefix = all.Prefix(split);
        using var continued = policy.Continue(prefix, o with { RowSeeds = seeds.Select(s => s + 1).ToArray() });
        using var lastPrefix = prefix.Select([prompts.Count - 1]);
        using var continuedAlone = policy.Continue(lastPrefix, o with { RowSeeds = [seeds[^1] + 1] });
        for (int k = split; k < all.Length; k++)
            Require(Same(continued.Grids[k].narrow(0, prompts.Count - 1, 1), continuedAlone.Grids[k]),
                $"scale {k}: continuing the last prefix with its row seed in a batch differs from continuing it alone");
    }

    /// <summary>Continue keeps every prefix grid and completes the trajectory, for every split.</summary>
    public static void ContinueKeepsThePrefix(INextScalePolicy policy, IReadOnlyList<string> prompts)
    {
        using var _ = NewDisposeScope();
        using var full = policy.Sample(prompts, SamplingOptions.Plain(2));
        for (int split = 1; split < full.Length; split++)
        {
            using var prefix = full.Prefix(split);
            using var cont = policy.Continue(prefix, SamplingOptions.Plain(3));
            Require(cont.Length == full.Length, $"Continue from {split} scales returned {cont.Length} scales, expected {full.Length}");
            for (int k = 0; k < split; k++)
                Require(Same(cont.Grids[k], full.Grids[k]), $"Continue from {split} scales changed prefix scale {k}");
        }
    }

    /// <summary>
    /// LogProbs gives finite log-probabilities (at most 0) of shape [rows, h, w] per scale, and a sub-range equals the
    /// matching slice of the full range.
    /// </summary>
    public static void LogProbsAreNormalizedAndSliceable(INextScalePolicy policy, IReadOnlyList<string> prompts, double tolerance = 1e-5)
    {
        using var _ = NewDisposeScope();
        using var no = no_grad();
        using var t = policy.Sample(prompts, SamplingOptions.Plain(4));
        var all = policy.LogProbs(t, 0, t.Length);
        Require(all.Count == t.Length, $"LogProbs(0, {t.Length}) returned {all.Count} tensors");
        for (int k = 0; k < all.Count; k++)
        {
            Require(all[k].shape.SequenceEqual(t.Grids[k].shape), $"scale {k}: log-probs [{string.Join(",", all[k].shape)}] for grid [{string.Join(",", t.Grids[k].shape)}]");
            Require(all[k].dtype == ScalarType.Float32, $"scale {k}: log-probs are {all[k].dtype}, the contract says float32");
            Require(all[k].isfinite().all().item<bool>(), $"scale {k}: log-probs are not finite");
            Require(all[k].max().item<float>() <= 1e-6, $"scale {k}: a log-prob above 0 ({all[k].max().item<float>()})");
        }
        int mid = t.Length / 2;
        var part = policy.LogProbs(t, mid, t.Length);
        Require(part.Count == t.Length - mid, $"LogProbs({mid}, {t.Length}) returned {part.Count} tensors");
        RequireClose(part, all.Skip(mid).ToList(), tolerance, $"LogProbs({mid}, end) differs from LogProbs(0, end)", firstScale: mid);
    }

    /// <summary>Decode gives one image per row, of the size in <see cref="INextScalePolicy.Info"/>.</summary>
    public static void DecodeGivesOneImageOfTheInfoSizePerRow(INextScalePolicy policy, IReadOnlyList<string> prompts)
    {
        using var _ = NewDisposeScope();
        using var t = policy.Sample(prompts, SamplingOptions.Plain(5));
        var images = policy.Decode(t);
        Require(images.Count == prompts.Count, $"Decode returned {images.Count} images for {prompts.Count} rows");
        foreach (var image in images)
            Require((image.Width, image.Height) == (policy.Info.ImageWidth, policy.Info.ImageHeight),
                $"Decode returned a {image.Width}x{image.Height} image, Info says {policy.Info.ImageWidth}x{policy.Info.ImageHeight}");
    }

    /// <summary>The frozen copy scores like the original, has no trainable parameters, and does not follow later updates.</summary>
    public static void FrozenCopyScoresAlikeAndDoesNotTrain(INextScalePolicy policy, IReadOnlyList<string> prompts, double tolerance = 1e-5)
    {
        using var _ = NewDisposeScope();
        using var no = no_grad();
        using var frozen = policy.CreateFrozenCopy();
        Require(frozen.TrainableParameters().All(p => !p.requires_grad), "the frozen copy has parameters that require gradients");
        using var t = policy.Sample(prompts, SamplingOptions.Plain(6));
        var a = policy.LogProbs(t, 0, t.Length);
        RequireClose(a, frozen.LogProbs(t, 0, t.Length), tolerance, "the frozen copy's log-probs differ");
        var trainable = policy.TrainableParameters();
        Require(trainable.Count > 0, "the policy has no trainable parameters");
        var first = trainable[0];
        using var before = first.detach().clone();
        using (var generator = new Generator(11))
        using (var noise = randn(first.shape, dtype: first.dtype, generator: generator).to(first.device))
            first.add_(noise); // random, not constant: a constant shift of a bias or embedding can leave softmax unchanged
        try
        {
            var c = frozen.LogProbs(t, 0, t.Length);
            bool same = a.Zip(c).All(p => (p.First - p.Second).abs().max().item<float>() <= tolerance);
            Require(same, "the frozen copy changed when the policy's parameters changed: it shares weights");
        }
        finally
        {
            first.copy_(before);
        }
    }

    /// <summary>Save then load gives the same log-probs.</summary>
    public static void SaveAndLoadRoundTrip(INextScalePolicy policy, Func<string, INextScalePolicy> load, IReadOnlyList<string> prompts, double tolerance = 1e-5)
    {
        ArgumentNullException.ThrowIfNull(load);
        var dir = Directory.CreateTempSubdirectory("nextflow-contract-").FullName;
        try
        {
            using var _ = NewDisposeScope();
            using var no = no_grad();
            policy.Save(dir);
            using var loaded = load(dir);
            using var t = policy.Sample(prompts, SamplingOptions.Plain(8));
            RequireClose(policy.LogProbs(t, 0, t.Length), loaded.LogProbs(t, 0, t.Length), tolerance, "log-probs after Save and load differ");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void RequireClose(IReadOnlyList<Tensor> a, IReadOnlyList<Tensor> b, double tolerance, string what, int firstScale = 0)
    {
        Require(a.Count == b.Count, $"{what}: {a.Count} scales against {b.Count}");
        for (int k = 0; k < a.Count; k++)
        {
            double d = (a[k] - b[k]).abs().max().item<float>();
            Require(d <= tolerance, $"scale {firstScale + k}: {what} by {d:G3} (tolerance {tolerance:G3})");
        }
    }

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    private static void Require(bool condition, string message)
    {
        if (!condition) throw new PolicyContractException(message);
    }
}

/// <summary>A policy broke a guarantee of the <see cref="INextScalePolicy"/> contract.</summary>
public sealed class PolicyContractException : Exception
{
    /// <summary>Creates the exception.</summary>
    public PolicyContractException(string message) : base("policy contract: " + message) { }

    /// <summary>Creates the exception.</summary>
    public PolicyContractException() { }

    /// <summary>Creates the exception.</summary>
    public PolicyContractException(string message, Exception inner) : base(message, inner) { }
}
