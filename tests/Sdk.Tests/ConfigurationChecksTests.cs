using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using NextFlowRL.Hosting;
using Xunit;

namespace NextFlowRL.Tests;

/// <summary>Binding that lists every value of the wrong type and binds the rest.</summary>
public sealed class ConfigurationChecksTests
{
    private enum Mode { Fast, Slow }

    private sealed class Inner
    {
        public int Count { get; set; }

        public Mode Mode { get; set; }
    }

    private sealed class Options
    {
        public double Rate { get; set; } = 0.5;

        public bool? Flag { get; set; }

        public string Name { get; set; } = "";

        public Inner Inner { get; set; } = new();

        public List<Inner> Items { get; set; } = [];

        public Dictionary<string, double> Weights { get; set; } = [];

        public TimeSpan Every { get; set; }
    }

    private static IConfigurationSection Section(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>("S:" + v.Key, v.Value))).Build().GetSection("S");

    [Fact]
    public void EveryMistypedValueIsListedAndTheOthersAreBound()
    {
        var o = new Options();
        var problems = ConfigurationChecks.Bind(Section(("Rate", "fast"), ("Flag", "maybe"), ("Name", "n"), ("Inner:Count", "2.5"), ("Inner:Mode", "slow"),
            ("Items:0:Count", "3"), ("Items:1:Mode", "Sideways"), ("Weights:a", "x"), ("Weights:b", "2"), ("Every", "00:00:05"), ("Unknown:Key", "ignored")), o);
        Assert.Equal([
            "S:Flag: 'maybe' is not true or false",
            "S:Inner:Count: '2.5' is not a whole number",
            "S:Items:1:Mode: 'Sideways' is not one of Fast, Slow",
            "S:Rate: 'fast' is not a number",
            "S:Weights:a: 'x' is not a number",
        ], problems);
        Assert.Equal(0.5, o.Rate); // left at its default
        Assert.Null(o.Flag);
        Assert.Equal("n", o.Name);
        Assert.Equal(Mode.Slow, o.Inner.Mode);
        Assert.Equal(3, o.Items[0].Count);
        Assert.Equal(2, o.Weights["b"]);
        Assert.False(o.Weights.ContainsKey("a"));
        Assert.Equal(TimeSpan.FromSeconds(5), o.Every);
    }

    [Fact]
    public void AValidSectionBindsAsTheBinderDoes()
    {
        var section = Section(("Rate", "1e-3"), ("Flag", "true"), ("Items:0:Mode", "Fast"));
        var checkedBind = new Options();
        Assert.Empty(ConfigurationChecks.Bind(section, checkedBind));
        var plain = new Options();
        section.Bind(plain);
        Assert.Equal((plain.Rate, plain.Flag, plain.Items.Count), (checkedBind.Rate, checkedBind.Flag, checkedBind.Items.Count));
    }

    /// <summary>The options as a container gives them, bound with <see cref="ConfigurationChecks.BindReportingProblems"/>.</summary>
    private static IOptions<Options> Validated(IConfigurationSection section, Func<Options, IEnumerable<string>> validate)
    {
        var services = new ServiceCollection();
        services.AddOptions<Options>().BindReportingProblems(section, validate);
        return services.BuildServiceProvider().GetRequiredService<IOptions<Options>>();
    }

    [Fact]
    public void ValidatedOptionsListTypeErrorsAndTheOtherProblemsTogetherOnFirstUse()
    {
        var options = Validated(Section(("Rate", "abc"), ("Inner:Count", "many"), ("Name", "x")), o => o.Name.Length < 2 ? [$"S:Name: '{o.Name}' is too short"] : []);
        var e = Assert.Throws<OptionsValidationException>(() => options.Value);
        Assert.Equal(["S:Inner:Count: 'many' is not a whole number", "S:Name: 'x' is too short", "S:Rate: 'abc' is not a number"], e.Failures.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void ValidatedOptionsBindWhenEverythingIsRight()
    {
        var value = Validated(Section(("Rate", "0.25"), ("Name", "ok")), o => o.Name.Length < 2 ? ["too short"] : []).Value;
        Assert.Equal(0.25, value.Rate);
        Assert.Equal("ok", value.Name);
    }
}
