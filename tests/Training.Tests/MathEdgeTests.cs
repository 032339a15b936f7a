using NextFlowRL.Policies;
using NextFlowRL.Rewards;
using Xunit;
using static TorchSharp.torch;

namespace NextFlowRL.Training.Tests;

/// <summary>
/// Boundaries and argument checks of the core math that the behaviour tests (MathTests) do not pin down: each test
/// here fails for a concrete wrong variant of the code (found by mutation testing, docs/testing.md).
/// </summary>
public class MathEdgeTests
{
    private static readonly ScaleShape Grid4 = new(4, 4);

    [Fact]
    public void NullArgumentsAreRefusedByName()
    {
        Assert.Equal("rewards", Assert.Throws<ArgumentNullException>(() => GrpoMath.GroupAdvantages(null!, 1e-4)).ParamName);
        Assert.Equal("rewards", Assert.Throws<ArgumentNullException>(() => GrpoMath.SoftValue(null!, 1)).ParamName);
        Assert.Equal("tokenLosses", Assert.Throws<ArgumentNullException>(() => GrpoMath.PanwLoss(null!, [], [])).ParamName);
        Assert.Equal("regions", Assert.Throws<ArgumentNullException>(() => MaskPropagation.FinestMask(null!, 8, 8, Grid4, false, false)).ParamName);
        Assert.Equal("mask", Assert.Throws<ArgumentNullException>(() => MaskPropagation.Dilate(null!)).ParamName);
        Assert.Equal("masks", Assert.Throws<ArgumentNullException>(() => MaskPropagation.Union(null!)).ParamName);
        Assert.Equal("masks", Assert.Throws<ArgumentNullException>(() => MaskPropagation.WithGroupFallback(null!, [], [], Grid4)).ParamName);
        Assert.Equal("valid", Assert.Throws<ArgumentNullException>(() => MaskPropagation.WithGroupFallback([], null!, [], Grid4)).ParamName);
        Assert.Equal("groups", Assert.Throws<ArgumentNullException>(() => MaskPropagation.WithGroupFallback([], [], null!, Grid4)).ParamName);
        Assert.Equal("finest", Assert.Throws<ArgumentNullException>(() => MaskPropagation.Propagate(null!, ScaleSchedule.Square(1, 2))).ParamName);
        using var t = zeros(1, 2, 2);
        Assert.Equal("schedule", Assert.Throws<ArgumentNullException>(() => MaskPropagation.Propagate(t, null!)).ParamName);
        var vmr = new VmrOptions();
        Assert.Equal("vmr", Assert.Throws<ArgumentNullException>(() => Alternation.KindAt(null!, 0, 10)).ParamName);
        Assert.Equal("vmr", Assert.Throws<ArgumentNullException>(() => Alternation.UpdatesAt(null!, 0, 10)).ParamName);
        Assert.Equal("vmr", Assert.Throws<ArgumentNullException>(() => Alternation.CoarsePrefixSteps(null!, 10)).ParamName);
        Assert.Equal("vmr", Assert.Throws<ArgumentNullException>(() => Alternation.ResolveSplit(null!, ScaleSchedule.Square(1, 2))).ParamName);
        Assert.Equal("schedule", Assert.Throws<ArgumentNullException>(() => Alternation.ResolveSplit(vmr, null!)).ParamName);
        Assert.Equal("schedule", Assert.Throws<ArgumentNullException>(() => Alternation.DefaultSplit(null!)).ParamName);
    }

    [Fact]
    public void AdvantagesDivideByStdPlusEps()
    {
        // Rewards 0 and 1: mean 0.5, population std 0.5; with eps 0.5 the advantages are -+0.5 / 1.
        var (a, zero) = GrpoMath.GroupAdvantages([0.0, 1.0], eps: 0.5);
        Assert.False(zero);
        Assert.Equal(-0.5, a[0], 12);
        Assert.Equal(0.5, a[1], 12);
    }

    [Fact]
    public void SoftValueRefusesANonPositiveEta()
    {
        Assert.Contains("eta must be > 0", Assert.Throws<ArgumentOutOfRangeException>(() => GrpoMath.SoftValue([1.0], 0)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => GrpoMath.SoftValue([1.0], double.NaN));
    }

    [Fact]
    public void K3OfAMinusInfinityReferenceIsClampedFromBelow()
    {
        using var logp = tensor(new float[] { 0f });
        using var reference = tensor(new float[] { float.NegativeInfinity });
        using var kl = GrpoMath.KlK3(logp, reference);
        // d = -inf -> -MaxLogRatio: exp(-20) + 20 - 1, not exp(+20) - 20 - 1.
        Assert.Equal(Math.Exp(-GrpoMath.MaxLogRatio) + GrpoMath.MaxLogRatio - 1, kl.item<float>(), 3);
    }

    [Fact]
    public void MaskedSumIgnoresWhatMaskedOutEntriesHold()
    {
        using var values = tensor(new float[] { float.PositiveInfinity, 2f, float.NaN });
        using var mask = tensor(new float[] { 0f, 1f, 0f });
        Assert.Equal(2f, GrpoMath.MaskedSum(values, mask).item<float>());
    }

    [Fact]
    public void PanwLossWithoutScalesIsAnError() =>
        Assert.Contains("No scales to weigh", Assert.Throws<ArgumentException>(() => GrpoMath.PanwLoss([], [], [])).Message);

    [Fact]
    public void EmptyOrOffImageRegionsGiveNoMask()
    {
        var target = "CAT";
        // A zero-width or zero-height box inside a cell, and a box entirely outside the image: no usable region.
        Assert.Null(MaskPropagation.FinestMask([new RewardRegion(3, 3, 0, 2, 1, "w", target)], 16, 16, Grid4, false, false));
        Assert.Null(MaskPropagation.FinestMask([new RewardRegion(3, 3, 2, 0, 1, "w", target)], 16, 16, Grid4, false, false));
        Assert.Null(MaskPropagation.FinestMask([new RewardRegion(100, 100, 5, 5, 1, "w", target)], 16, 16, Grid4, false, false));
    }

    [Fact]
    public void DilatingACornerCellStaysInsideTheGrid()
    {
        var mask = new float[3, 3];
        mask[2, 2] = 1;
        var d = MaskPropagation.Dilate(mask);
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
                Assert.Equal(i >= 1 && j >= 1 ? 1f : 0f, d[i, j]);
    }

    [Fact]
    public void UnionIsTheCellwiseMaxAndLeavesItsInputsAlone()
    {
        var a = new float[,] { { 1, 0 }, { 0, 0 } };
        var b = new float[,] { { 0, 0 }, { 0, 1 } };
        var u = MaskPropagation.Union([null, a, b])!;
        Assert.Equal(new float[,] { { 1, 0 }, { 0, 1 } }, u);
        Assert.Equal(new float[,] { { 1, 0 }, { 0, 0 } }, a);
        Assert.Null(MaskPropagation.Union([null, null]));
    }

    [Fact]
    public void ARowInNoGroupIsNamed()
    {
        var e = Assert.Throws<ArgumentException>(() => MaskPropagation.WithGroupFallback([null, null, null], [true, true, true], [[0, 1]], Grid4));
        Assert.Contains("row 2 belongs to no group", e.Message);
    }

    [Fact]
    public void CoarseKeepsOneStepOfEachKindAtTheEdges()
    {
        Assert.Equal(1, Alternation.CoarsePrefixSteps(new VmrOptions { CoarsePrefixFraction = 0.75 }, 2));
        Assert.Equal(3, Alternation.CoarsePrefixSteps(new VmrOptions { CoarsePrefixFraction = 1.0 }, 4));
        Assert.Equal(1, Alternation.CoarsePrefixSteps(new VmrOptions { CoarsePrefixFraction = 0.0 }, 4));
        Assert.Equal(1, Alternation.CoarsePrefixSteps(new VmrOptions { CoarsePrefixFraction = 0.75 }, 1));
    }

    [Fact]
    public void SplitsCoverTheLastScaleNonSquareResolutionsAndListTheChoices()
    {
        var schedule = new ScaleSchedule([new(1, 1), new(4, 4), new(4, 8), new(8, 8)]);
        Assert.Equal(3, Alternation.ResolveSplit(new VmrOptions { SplitScale = 3 }, schedule));
        Assert.Equal(2, Alternation.ResolveSplit(new VmrOptions { SplitResolution = "4x8" }, schedule));
        Assert.Equal(1, Alternation.ResolveSplit(new VmrOptions { SplitResolution = "4" }, schedule));
        var bad = Assert.Throws<ArgumentException>(() => Alternation.ResolveSplit(new VmrOptions { SplitResolution = "4xq" }, schedule));
        Assert.Contains("is not HxW or S", bad.Message);
        Assert.Contains("valid: index 1..3 or a resolution among 4x4, 4x8, 8x8", bad.Message);
    }

    [Fact]
    public void TheDefaultSplitNeedsBothSidesToReachAQuarter()
    {
        // Height reaches a quarter of the final side at scale 1 but width only at scale 2.
        var schedule = new ScaleSchedule([new(1, 1), new(4, 2), new(4, 4), new(16, 16)]);
        Assert.Equal(2, Alternation.DefaultSplit(schedule));
    }

    [Fact]
    public void AnUnknownScheduleIsNamed()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Alternation.KindAt(new VmrOptions { Schedule = (AlternationSchedule)99 }, 0, 10));
        Assert.Contains("unknown schedule", e.Message);
    }
}
