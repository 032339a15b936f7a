using NextFlowRL.Training;
using Xunit;

namespace NextFlowRL.Training.Tests;

public sealed class PromptFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nfrl-jsonl-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string text)
    {
        var path = Path.Combine(_dir, $"{Guid.NewGuid():N}.jsonl");
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void ObjectsComeWithTheirLineNumbersAndBlankLinesAreSkipped()
    {
        var path = Write("{\"a\":\"x\"}\n\n   \n{\"a\":\"y\"}\n");
        var rows = JsonLines.ReadObjects(path).Select(r => (r.Line, JsonLines.OptionalString(r.Object, "a", path, r.Line))).ToArray();
        Assert.Equal([(1, "x"), (4, "y")], rows);
    }

    [Theory]
    [InlineData("{\"a\":1}\n{oops\n", ":2: invalid JSON")]
    [InlineData("[1,2]\n", ":1: expected a JSON object")]
    public void BadLinesNameFileAndLine(string text, string expected)
    {
        var path = Write(text);
        var e = Assert.Throws<InvalidDataException>(() => JsonLines.ReadObjects(path).ToArray());
        Assert.StartsWith(path, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void PromptFilesTurnOtherFieldsIntoMetadataAndRejectBadPrompts()
    {
        var set = PromptSet.Load(Write("{\"prompt\":\"A sign 'CAT'\",\"target_words\":[\"CAT\",\"DOG\"],\"bin\":\"x\",\"n\":3}\n"));
        var r = Assert.Single(set.Records);
        Assert.Equal("A sign 'CAT'", r.Prompt);
        Assert.Equal("CAT DOG", r.Metadata["target_words"]);
        Assert.Equal("x", r.Metadata["bin"]);
        Assert.Equal("3", r.Metadata["n"]);
        Assert.Contains(":1: \"prompt\" must be a string", Assert.Throws<InvalidDataException>(() => PromptSet.Load(Write("{\"prompt\":5}"))).Message);
        Assert.Contains(":2: missing string \"prompt\"", Assert.Throws<InvalidDataException>(() => PromptSet.Load(Write("{\"prompt\":\"ok\"}\n{\"bin\":\"x\"}"))).Message);
        Assert.Contains("has no prompts", Assert.Throws<InvalidDataException>(() => PromptSet.Load(Write("\n"))).Message);
        Assert.Contains("not found", Assert.Throws<InvalidDataException>(() => PromptSet.Load(Path.Combine(_dir, "missing.jsonl"))).Message);
    }
}
