using NextFlowRL.Imaging;
using NextFlowRL.Rewards.Ocr.Scoring;
using Xunit;

namespace NextFlowRL.Rewards.Ocr.Tests;

public class TargetTests
{
    [Theory]
    [InlineData("A sign that says 'Open Now' on a door", new[] { "open", "now" })]
    [InlineData("'Coffee' above a door and 'Shop' below it", new[] { "coffee", "shop" })]
    [InlineData("A poster that reads 'don't stop'", new[] { "don't", "stop" })]
    [InlineData("The children's book titled 'Moon'", new[] { "moon" })]
    [InlineData("The kids' toys and a box labelled 'TOYS'", new[] { "toys" })]
    [InlineData("A mug with ‘Good Morning’ printed on it", new[] { "good", "morning" })]
    [InlineData("Rock 'n' roll sign saying 'LIVE'", new[] { "n", "live" })]
    [InlineData("A quiet lake at dawn", new string[0])]
    [InlineData("An unclosed 'quote", new string[0])]
    [InlineData("It's a dog's life", new string[0])]
    public void SingleQuotedFollowsCvtg(string prompt, string[] expected) =>
        Assert.Equal(expected, Targets.SingleQuoted(prompt));

    [Theory]
    [InlineData("A sign saying \"Hello World\" and \"Bye\"", new[] { "hello", "world" })]
    [InlineData("A sign saying “Big Sale”", new[] { "big", "sale" })]
    [InlineData("A sign saying 'Hello'", new string[0])]
    [InlineData("Only one \" quote", new string[0])]
    public void DoubleQuotedTakesTheFirstSpan(string prompt, string[] expected) =>
        Assert.Equal(expected, Targets.DoubleQuoted(prompt));

    [Fact]
    public void MetadataOverridesThePrompt()
    {
        var image = RgbImage.Filled(4, 4, 255, 255, 255);
        var sample = new RewardSample(image, "a sign 'ignored'", new Dictionary<string, string> { [RewardMetadataKeys.TargetWords] = "Fresh  Bread" });
        Assert.Equal(["fresh", "bread"], Targets.For(sample, TargetConvention.SingleQuoted));
        Assert.Equal(["fresh", "bread"], Targets.For(sample, TargetConvention.MetadataOnly));
        var plain = new RewardSample(image, "a sign 'used'");
        Assert.Equal(["used"], Targets.For(plain, TargetConvention.SingleQuoted));
        Assert.Empty(Targets.For(plain, TargetConvention.MetadataOnly));
    }
}
