using NextFlowRL.Policies;
using NextFlowRL.Rewards;
using Xunit;
using static TorchSharp.torch;

namespace NextFlowRL.Training.Tests;

public class MathTests
{
    [Fact]
    public void GroupAdvantagesAreZScores()
    {
        var (adv, zero) = GrpoMath.GroupAdvantages([1.0, 2.0, 3.0, 4.0], eps: 0);
        Assert.False(zero);
        double std = Math.Sqrt(1.25);
        Assert.Equal([-1.5 / std, -0.5 / std, 0.5 / std, 1.5 / std], adv.Select(a => Math.Round(a, 12)).ToArray(), new RoundedComparer());
        Assert.Equal(0, adv.Sum(), 12);
    }

    [Fact]
    public void ZeroStdGroupsGetZeroAdvantageAndAreFlagged()
    {
        var (adv, zero) = GrpoMath.GroupAdvantages([0.7, 0.7, 0.7], 1e-4);
        Assert.True(zero);
        Assert.All(adv, a => Assert.Equal(0, a));
    }

    [Fact]
    public void MissingMembersAreIgnoredAndGetZero()
    {
        var (adv, zero) = GrpoMath.GroupAdvantages([1.0, double.NaN, 3.0], 0);
        Assert.False(zero);
        Assert.Equal([-1.0, 0.0, 1.0], adv);
        Assert.True(GrpoMath.GroupAdvantages([1.0, double.NaN], 0).ZeroStd); // one valid member: no signal
    }

    [Fact]
    public void SoftValueLimits()
    {
        double[] r = [0.1, 0.5, 0.9];
        Assert.Equal(0.9, GrpoMath.SoftValue(r, 1e-4), 3);      // eta -> 0: max
        Assert.Equal(0.5, GrpoMath.SoftValue(r, 1e6), 5);       // eta -> infinity: mean
        double v = GrpoMath.SoftValue(r, 1.0);
        Assert.Equal(Math.Log((Math.Exp(0.1) + Math.Exp(0.5) + Math.Exp(0.9)) / 3), v, 12);
        Assert.InRange(v, 0.5, 0.9);
        Assert.Equal(0.3, GrpoMath.SoftValue([0.3, double.NaN], 1.0), 12);
        Assert.True(double.IsNaN(GrpoMath.SoftValue([double.NaN], 1.0)));
        Assert.Equal(1000.0, GrpoMath.SoftValue([1000.0, 1000.0], 0.001), 9); // stable for large rewards / small eta
    }

    [Fact]
    public void PanwWeights()
    {
        Assert.Equal(1.0, GrpoMath.PanwWeight(64, 0));
        Assert.Equal(1.0 / 64, GrpoMath.PanwWeight(64, 1), 12);
        Assert.Equal(Math.Pow(16, -0.5), GrpoMath.PanwWeight(16, 0.5), 12);
    }

    [Fact]
    public void PanwLossNormalization()
    {
        using var scope = NewDisposeScope();
        // Two scales: 1 token with loss 4, 4 tokens with loss 1 each.
        Tensor[] losses = [full(1, 1, 1, 4f), ones(1, 2, 2)];
        Tensor[] masks = [ones(1, 1, 1), ones(1, 2, 2)];
        // alpha = 0: plain token mean (4 + 4) / 5.
        Assert.Equal(8.0 / 5, GrpoMath.PanwLoss(losses, masks, [1.0, 1.0]).item<float>(), 5);
        // alpha = 1: each step weighs equally: (1*4 + 0.25*4) / (1*1 + 0.25*4) = 5 / 2.
        Assert.Equal(2.5, GrpoMath.PanwLoss(losses, masks, [GrpoMath.PanwWeight(1, 1), GrpoMath.PanwWeight(4, 1)]).item<float>(), 5);
        // n_t counts active tokens only: masking three fine tokens leaves (4 + 1) / 2 at alpha = 0.
        Tensor[] partial = [ones(1, 1, 1), tensor(new float[] { 1, 0, 0, 0 }).reshape(1, 2, 2)];
        Assert.Equal(2.5, GrpoMath.PanwLoss(losses, partial, [1.0, 1.0]).item<float>(), 5);
    }

    [Fact]
    public void ClippedSurrogateAndK3()
    {
        using var scope = NewDisposeScope();
        var logp = tensor(new float[] { MathF.Log(1.5f), 0f, MathF.Log(0.5f) });
        var old = zeros(3);
        var (loss, ratio) = GrpoMath.ClippedSurrogate(logp, old, tensor(new float[] { 1, 1, -1 }), 0.2);
        Assert.Equal([1.5f, 1f, 0.5f], ratio.data<float>().ToArray().Select(x => MathF.Round(x, 5)));
        // A>0, rho=1.5: min(1.5, 1.2) = 1.2; rho=1: 1; A<0, rho=0.5: min(-0.5, -0.8) = -0.8 -> loss 0.8.
        Assert.Equal([-1.2f, -1f, 0.8f], loss.data<float>().ToArray().Select(x => MathF.Round(x, 5)));
        Assert.Equal(0f, GrpoMath.KlK3(logp, logp).abs().max().item<float>());
        var d = MathF.Log(0.5f) - MathF.Log(1.5f);
        Assert.Equal(MathF.Exp(d) - d - 1, GrpoMath.KlK3(tensor(new float[] { MathF.Log(1.5f) }), tensor(new float[] { MathF.Log(0.5f) })).item<float>(), 5);
    }

    [Fact]
    public void AnExtremePolicyReferencePairGivesAFiniteLossAndGradient()
    {
        // The reference puts all its mass where the policy puts almost none (and one token the policy rules out
        // entirely): unclamped, exp(ref - logp) overflows to inf, and inf x a zero mask is NaN, which skips the step.
        var logp = tensor(new float[] { -1e4f, float.NegativeInfinity, -0.1f, -50f }, requires_grad: true);
        var reference = tensor(new float[] { 0f, 0f, -0.1f, 0f });
        var mask = tensor(new float[] { 1f, 0f, 1f, 0f }); // the -inf token and another extreme one are masked out
        var kl = GrpoMath.KlK3(logp, reference);
        Assert.True(kl.isfinite().all().item<bool>(), string.Join(", ", kl.data<float>().ToArray()));
        Assert.Equal(MathF.Exp(20) - 21, kl[0].item<float>(), 0);
        var (surrogate, ratio) = GrpoMath.ClippedSurrogate(logp, zeros(4), tensor(new float[] { 1, 1, 1, -1 }), 0.2);
        Assert.True(ratio.isfinite().all().item<bool>());
        var loss = GrpoMath.MaskedSum(surrogate + 0.1 * kl, mask);
        Assert.True(double.IsFinite(loss.item<float>()));
        loss.backward();
        Assert.True(logp.grad!.isfinite().all().item<bool>(), string.Join(", ", logp.grad!.data<float>().ToArray()));
        Assert.Equal(0f, logp.grad![1].item<float>()); // masked-out tokens get no gradient
    }

    private sealed class RoundedComparer : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) < 1e-9;
        public int GetHashCode(double obj) => 0;
    }
}

public class MaskPropagationTests
{
    [Fact]
    public void FineToCoarseIsAnAdaptiveMaxPool()
    {
        using var scope = NewDisposeScope();
        var schedule = ScaleSchedule.Square(1, 2, 3, 4);
        var fine = zeros(1, 4, 4);
        fine[0, 3, 0] = tensor(1f); // bottom-left cell
        var masks = MaskPropagation.Propagate(fine, schedule);
        Assert.Equal(new float[] { 0, 0, 1, 0 }, masks[1].flatten().data<float>().ToArray());
        // 3x3 from 4x4: windows overlap; only the bottom-left coarse cell covers fine cell (3, 0).
        Assert.Equal(new float[] { 0, 0, 0, 0, 0, 0, 1, 0, 0 }, masks[2].flatten().data<float>().ToArray());
        Assert.Equal(1f, masks[0].item<float>());
        var empty = MaskPropagation.Propagate(zeros(1, 4, 4), schedule);
        Assert.All(empty, m => Assert.Equal(0f, m.sum().item<float>()));
    }

    [Fact]
    public void FinestMaskFromRegions()
    {
        var final = new ScaleShape(4, 4); // 64x64 image: 16 px per cell
        RewardRegion[] regions = [new(17, 1, 14, 10, 0.9, "CAT", "cat"), new(40, 40, 10, 10, 0.9, "XYZ", null)];
        var mask = MaskPropagation.FinestMask(regions, 64, 64, final, dilate: false, includeUnmatched: false)!;
        Assert.Equal(1, mask[0, 1]);
        Assert.Equal(1, Sum(mask)); // the unmatched region is ignored
        var withUnmatched = MaskPropagation.FinestMask(regions, 64, 64, final, dilate: false, includeUnmatched: true)!;
        Assert.Equal(1 + 4, Sum(withUnmatched)); // 40..50 px spans cells 2 and 3 in both directions
        var dilated = MaskPropagation.FinestMask(regions, 64, 64, final, dilate: true, includeUnmatched: false)!;
        Assert.Equal(6, Sum(dilated)); // cell (0,1) plus its neighbours inside the grid: 2 rows x 3 columns
        Assert.Null(MaskPropagation.FinestMask([new(0, 0, 5, 5, 1, "x", null)], 64, 64, final, false, false));
        Assert.Null(MaskPropagation.FinestMask([], 64, 64, final, true, true));
    }

    [Fact]
    public void RegionSpanningCellsMarksEveryTouchedCell()
    {
        var mask = MaskPropagation.FinestMask([new(15, 15, 2, 2, 1, "a", "a")], 64, 64, new ScaleShape(4, 4), false, false)!;
        Assert.Equal(4, Sum(mask)); // the box straddles the corner of four cells
    }

    private static float Sum(float[,] m) => m.Cast<float>().Sum();

    private static float[,] Cells(int h, int w, params (int I, int J)[] on)
    {
        var m = new float[h, w];
        foreach (var (i, j) in on) m[i, j] = 1;
        return m;
    }

    [Fact]
    public void RowsWithoutARegionTakeTheirGroupsUnionAndOnesOnlyWhenNobodyHasOne()
    {
        var shape = new ScaleShape(2, 2);
        // Group 0: rows 0 (region top-left), 1 (none), 2 (region bottom-right, but its reward was dropped), 3 (none).
        // Group 1: rows 4, 5 (no regions at all).
        float[,]?[] masks = [Cells(2, 2, (0, 0)), null, Cells(2, 2, (1, 1)), null, null, null];
        bool[] valid = [true, true, false, true, true, true];
        var (result, counts) = MaskPropagation.WithGroupFallback(masks, valid, [[0, 1, 2, 3], [4, 5]], shape);
        Assert.Equal(Cells(2, 2, (0, 0)), result[0]);
        Assert.Equal(Cells(2, 2, (0, 0)), result[1]); // the union of the valid members: the dropped row does not count
        Assert.Equal(new float[2, 2], result[2]);      // a dropped row takes no part and gets no loss
        Assert.Equal(Cells(2, 2, (0, 0)), result[3]);
        Assert.Equal(Cells(2, 2, (0, 0), (0, 1), (1, 0), (1, 1)), result[4]);
        Assert.Equal((2, 2, 5), (counts.Group, counts.Ones, counts.Valid));
    }

    [Fact]
    public void DilatingEveryScaleGrowsTheCoarseMasksByOneCell()
    {
        var schedule = ScaleSchedule.Square(2, 4, 8);
        using var finest = zeros(1, 8, 8);
        finest[0, 0, 0] = tensor(1f);
        var plain = MaskPropagation.Propagate(finest, schedule);
        var grown = MaskPropagation.Propagate(finest, schedule, dilateEveryScale: true);
        Assert.Equal(1f, plain[1].sum().item<float>());
        Assert.Equal(4f, grown[1].sum().item<float>()); // the 4x4 cell (0,0) and its neighbours inside the grid
        Assert.Equal(4f, grown[0].sum().item<float>()); // 2x2: everything
        Assert.Equal(1f, grown[2].sum().item<float>()); // the finest grid keeps its own (MaskOptions.Dilate) treatment
    }
}

public class ScheduleTests
{
    [Fact]
    public void FineAlternatesThreePrefixUpdatesPerSuffix()
    {
        var vmr = new VmrOptions { Schedule = AlternationSchedule.Fine, PrefixUpdatesPerSuffix = 3 };
        var kinds = Enumerable.Range(0, 8).Select(s => Alternation.KindAt(vmr, s, 8)).ToArray();
        Assert.Equal([UpdateKind.Prefix, UpdateKind.Prefix, UpdateKind.Prefix, UpdateKind.Suffix, UpdateKind.Prefix, UpdateKind.Prefix, UpdateKind.Prefix, UpdateKind.Suffix], kinds);
        vmr.PrefixUpdatesPerSuffix = 1;
        Assert.Equal(UpdateKind.Suffix, Alternation.KindAt(vmr, 1, 8));
    }

    [Fact]
    public void CoarseRunsAllPrefixUpdatesFirst()
    {
        var vmr = new VmrOptions { Schedule = AlternationSchedule.Coarse, CoarsePrefixFraction = 0.75 };
        var kinds = Enumerable.Range(0, 8).Select(s => Alternation.KindAt(vmr, s, 8)).ToArray();
        Assert.Equal(6, kinds.Count(k => k == UpdateKind.Prefix));
        Assert.True(kinds.Take(6).All(k => k == UpdateKind.Prefix) && kinds.Skip(6).All(k => k == UpdateKind.Suffix));
        Assert.Equal(1, Alternation.CoarsePrefixSteps(new VmrOptions { CoarsePrefixFraction = 0.01 }, 10));
    }

    [Fact]
    public void JointIsAlwaysJoint() =>
        Assert.All(Enumerable.Range(0, 5), s => Assert.Equal(UpdateKind.Joint, Alternation.KindAt(new VmrOptions { Schedule = AlternationSchedule.Joint }, s, 5)));

    [Fact]
    public void SplitByIndexOrResolutionAndInvalidSplitsAreRejected()
    {
        var schedule = ScaleSchedule.Square(1, 2, 4, 8, 16);
        Assert.Equal(2, Alternation.ResolveSplit(new VmrOptions { SplitScale = 2 }, schedule));
        Assert.Equal(3, Alternation.ResolveSplit(new VmrOptions { SplitResolution = "8x8" }, schedule));
        Assert.Equal(3, Alternation.ResolveSplit(new VmrOptions { SplitResolution = "8" }, schedule));
        Assert.Equal(2, Alternation.ResolveSplit(new VmrOptions(), schedule)); // default: side >= final/4
        Assert.Contains("empty prefix", Assert.Throws<ArgumentException>(() => Alternation.ResolveSplit(new VmrOptions { SplitScale = 0 }, schedule)).Message);
        Assert.Contains("empty suffix", Assert.Throws<ArgumentException>(() => Alternation.ResolveSplit(new VmrOptions { SplitScale = 5 }, schedule)).Message);
        Assert.Contains("not a scale", Assert.Throws<ArgumentException>(() => Alternation.ResolveSplit(new VmrOptions { SplitResolution = "3x3" }, schedule)).Message);
        Assert.Contains("not HxW", Assert.Throws<ArgumentException>(() => Alternation.ResolveSplit(new VmrOptions { SplitResolution = "big" }, schedule)).Message);
        Assert.Contains("empty prefix", Assert.Throws<ArgumentException>(() => Alternation.ResolveSplit(new VmrOptions { SplitResolution = "1x1" }, schedule)).Message);
    }

    [Fact]
    public void ConfigValidationListsEveryError()
    {
        var o = new TrainerOptions { Steps = 0, GroupSize = 1, LearningRate = -1, ClipEpsilon = 2, TrainPrompts = null, Rewards = [] };
        o.Vmr.Eta = 0;
        o.Rollout.TopP = 0;
        var errors = o.Validate();
        foreach (var key in new[] { "Steps", "GroupSize", "LearningRate", "ClipEpsilon", "TrainPrompts", "Rewards", "Eta", "TopP" })
            Assert.Contains(errors, e => e.Contains(key));
        Assert.Equal(8, errors.Count);
        Assert.Empty(new TrainerOptions { TrainPrompts = "p.jsonl", Rewards = [new RewardSpec { Name = "ocr" }] }.Validate());
    }

    [Fact]
    public void DataOrderIsAShuffledEpochStreamDependingOnlyOnSeedAndStep()
    {
        var set = new PromptSet(Enumerable.Range(0, 5).Select(i => new PromptRecord($"p{i}", RewardSample.EmptyMetadata)));
        var firstEpoch = Enumerable.Range(0, 5).Select(s => set.Batch(7, s, 1)[0].Prompt).ToList();
        Assert.Equal(5, firstEpoch.Distinct().Count()); // every prompt once per epoch
        Assert.Equal(set.Batch(7, 3, 2).Select(p => p.Prompt), set.Batch(7, 3, 2).Select(p => p.Prompt));
        Assert.NotEqual(Enumerable.Range(0, 5).Select(s => set.Batch(8, s, 1)[0].Prompt), firstEpoch);
    }
}
