namespace NextFlowRL.Rewards.Clip.Tests;

public sealed class TokenizerTests
{
    private static readonly Dictionary<string, int> V = TinyModels.Vocabulary();

    [Fact]
    public void Merges_words_by_rank_and_marks_word_ends()
    {
        var t = TinyModels.Tokenizer();
        Assert.Equal(new[] { V["hello</w>"], V["world</w>"] }, t.Encode("hello world"));
        // "cat" merges fully; "hat" has no merge beyond single symbols.
        Assert.Equal(new[] { V["cat</w>"], V["h"], V["a"], V["t</w>"] }, t.Encode("cat hat"));
        // Partial merges: "hell" + "o</w>" needs rank 4, "help" stops at "he" "l" "p</w>".
        Assert.Equal(new[] { V["he"], V["l"], V["p</w>"] }, t.Encode("help"));
    }

    [Fact]
    public void Cleans_case_whitespace_html_and_splits_punctuation_and_contractions()
    {
        var t = TinyModels.Tokenizer();
        Assert.Equal("hello world & co", ClipTokenizer.Clean("  Hello\t\n  WORLD &amp;amp; co "));
        Assert.Equal(new[] { V["hello</w>"], V["world</w>"], V["!</w>"] }, t.Encode("  HELLO   World!"));
        // "it's" -> "it" + "'s"; "'s" is two symbols: "'" and "s</w>".
        Assert.Equal(new[] { V["i"], V["t</w>"], V["'"], V["s</w>"] }, t.Encode("it's"));
    }

    [Fact]
    public void Wraps_pads_and_truncates_to_the_context()
    {
        var t = TinyModels.Tokenizer();
        int s = V["<|startoftext|>"], e = V["<|endoftext|>"];
        var (ids, end) = t.Tokenize("hello world", contextLength: 6);
        Assert.Equal(new long[] { s, V["hello</w>"], V["world</w>"], e, e, e }, ids);
        Assert.Equal(3, end);
        var (padded, _) = t.Tokenize("hello", contextLength: 4, padId: 0);
        Assert.Equal(new long[] { s, V["hello</w>"], e, 0 }, padded);
        // Truncation keeps start, the first context-2 text tokens, and the end token last.
        var (cut, cutEnd) = t.Tokenize("hello world cat hello", contextLength: 4);
        Assert.Equal(new long[] { s, V["hello</w>"], V["world</w>"], e }, cut);
        Assert.Equal(3, cutEnd);
        var (empty, emptyEnd) = t.Tokenize("   ", contextLength: 3);
        Assert.Equal(new long[] { s, e, e }, empty);
        Assert.Equal(1, emptyEnd);
    }

    [Fact]
    public void Special_tokens_in_text_map_to_their_ids()
    {
        var t = TinyModels.Tokenizer();
        Assert.Equal(new[] { V["<|endoftext|>"] }, t.Encode("<|endoftext|>"));
    }

    [Fact]
    public void Text_outside_the_vocabulary_is_one_clear_error()
    {
        var t = TinyModels.Tokenizer();
        var e = Assert.Throws<InvalidDataException>(() => t.Encode("zebra 42"));
        Assert.Contains("not in vocab.json", e.Message);
    }

    [Fact]
    public void A_vocabulary_without_special_tokens_is_rejected()
    {
        var v = TinyModels.Vocabulary();
        v.Remove("<|startoftext|>");
        var e = Assert.Throws<InvalidDataException>(() => ClipTokenizer.FromData(v, TinyModels.Merges));
        Assert.Contains("<|startoftext|>", e.Message);
    }

    [Fact]
    public void A_malformed_merges_line_is_named()
    {
        var e = Assert.Throws<InvalidDataException>(() => ClipTokenizer.FromData(V, ["#version: 0.2", "h e", "a b c"]));
        Assert.Contains("line 3", e.Message);
    }
}
