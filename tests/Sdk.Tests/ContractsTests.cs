using NextFlowRL.Imaging;
using NextFlowRL.Policies;
using NextFlowRL.Rewards;
using Xunit;
using static TorchSharp.torch;

namespace NextFlowRL.Tests;

public class ContractsTests
{
    [Fact]
    public void RgbImageChecksItsBuffer()
    {
        Assert.Throws<ArgumentException>(() => new RgbImage(2, 2, new byte[11]));
        Assert.Throws<ArgumentException>(() => new RgbImage(0, 2, []));
        var image = new RgbImage(2, 1, [1, 2, 3, 4, 5, 6]);
        Assert.Equal((byte)4, image[1, 0].R);
        Assert.Throws<ArgumentOutOfRangeException>(() => image[2, 0]);
    }

    [Fact]
    public void RewardResultValidity()
    {
        Assert.True(RewardResult.Of(0.5).IsValid);
        Assert.False(RewardResult.Of(double.NaN).IsValid);
        Assert.False(RewardResult.Failed("x").IsValid);
        Assert.Empty(new RewardSample(RgbImage.Filled(1, 1, 0, 0, 0), "p").Metadata);
    }

    [Fact]
    public void ScaleScheduleValidatesAndDescribes()
    {
        var s = ScaleSchedule.Square(1, 2, 3, 4, 6, 8);
        Assert.Equal(6, s.Count);
        Assert.Equal(new ScaleShape(8, 8), s.Final);
        Assert.Equal(1 + 4 + 9 + 16 + 36 + 64, s.TotalTokens);
        Assert.Equal(3, s.IndexOf(new ScaleShape(4, 4)));
        Assert.Equal("1,2,3,4,6,8", s.ToString());
        var wide = new ScaleSchedule([new ScaleShape(1, 2), new ScaleShape(2, 4)]);
        Assert.Equal("1x2,2x4", wide.ToString());
        Assert.Throws<ArgumentException>(() => ScaleSchedule.Square());
        Assert.Throws<ArgumentException>(() => ScaleSchedule.Square(2, 1));
        Assert.Throws<ArgumentException>(() => ScaleSchedule.Square(0, 1));
    }

    [Theory]
    [InlineData(-1, 0, 1.0, 1.0)]
    [InlineData(0, -1, 1.0, 1.0)]
    [InlineData(0, 0, 0.0, 1.0)]
    [InlineData(0, 0, 1.5, 1.0)]
    [InlineData(0, 0, 1.0, 0.0)]
    public void SamplingOptionsRejectOutOfRangeValues(double cfg, int topK, double topP, double temperature)
    {
        var options = new SamplingOptions { CfgScale = cfg, TopK = topK, TopP = topP, Temperature = temperature };
        Assert.Throws<ArgumentException>(options.Validate);
    }

    [Fact]
    [Trait("Category", "torch")]
    public void TokenTrajectoriesSelectRepeatPrefixAndConcat()
    {
        using var scope = NewDisposeScope();
        using var batch = new TokenTrajectories(["a", "b"], [
            tensor(new long[] { 1, 2 }).reshape(2, 1, 1),
            arange(8, dtype: ScalarType.Int64).reshape(2, 2, 2),
        ]);
        using var repeated = batch.RepeatEach(2);
        Assert.Equal(["a", "a", "b", "b"], repeated.Prompts);
        Assert.Equal(new long[] { 1, 1, 2, 2 }, repeated.Grids[0].flatten().data<long>().ToArray());
        using var selected = batch.Select([1]);
        Assert.Equal(new long[] { 4, 5, 6, 7 }, selected.Grids[1].flatten().data<long>().ToArray());
        using var prefix = batch.Prefix(1);
        Assert.Equal(1, prefix.Length);
        using var joined = TokenTrajectories.Concat([batch, selected]);
        Assert.Equal(3, joined.Count);
        Assert.Throws<ArgumentException>(() => new TokenTrajectories(["a"], [zeros(2, 1, 1, dtype: ScalarType.Int64)]));
        Assert.Throws<ArgumentException>(() => new TokenTrajectories(["a"], [zeros(1, 1, 1)]));
        Assert.Throws<ArgumentOutOfRangeException>(() => batch.Prefix(3));
    }
}
