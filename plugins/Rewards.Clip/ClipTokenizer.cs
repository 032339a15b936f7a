using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace NextFlowRL.Rewards.Clip;

/// <summary>
/// The CLIP byte-level BPE tokenizer, read from a Hugging Face style <c>vocab.json</c> (token to id) and
/// <c>merges.txt</c> (one merge per line, ranked by line order; <c>#</c> lines are comments). Text is cleaned like
/// CLIP's reference tokenizer: HTML entities decoded (twice), whitespace runs collapsed to one space, trimmed,
/// lower-cased. Words end with <c>&lt;/w&gt;</c>; sequences are wrapped in <c>&lt;|startoftext|&gt;</c> ...
/// <c>&lt;|endoftext|&gt;</c> and truncated/padded to a fixed context (77 for CLIP).
/// </summary>
public sealed partial class ClipTokenizer
{
    /// <summary>The start-of-text token.</summary>
    public const string StartToken = "<|startoftext|>";

    /// <summary>The end-of-text token.</summary>
    public const string EndToken = "<|endoftext|>";

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<(string, string), int> _ranks;
    private readonly Dictionary<string, string[]> _cache = new(StringComparer.Ordinal);
    private static readonly string[] ByteToUnicode = BuildByteToUnicode();

    private ClipTokenizer(Dictionary<string, int> vocab, Dictionary<(string, string), int> ranks)
    {
        _vocab = vocab;
        _ranks = ranks;
        if (!vocab.TryGetValue(StartToken, out int s) || !vocab.TryGetValue(EndToken, out int e))
            throw new InvalidDataException($"vocab.json has no {(vocab.ContainsKey(StartToken) ? EndToken : StartToken)} token; it is not a CLIP vocabulary");
        StartId = s;
        EndId = e;
        MaxId = vocab.Values.Max();
    }

    /// <summary>Id of <see cref="StartToken"/>.</summary>
    public int StartId { get; }

    /// <summary>Id of <see cref="EndToken"/>.</summary>
    public int EndId { get; }

    /// <summary>The largest token id in the vocabulary (must be below the text model's vocabulary size).</summary>
    public int MaxId { get; }

    /// <summary>Number of vocabulary entries.</summary>
    public int VocabularySize => _vocab.Count;

    /// <summary>Loads <c>vocab.json</c> and <c>merges.txt</c>.</summary>
    /// <exception cref="FileNotFoundException">A file is missing.</exception>
    /// <exception cref="InvalidDataException">A file is malformed (the message names it).</exception>
    public static ClipTokenizer FromFiles(string vocabJsonPath, string mergesTxtPath)
    {
        if (!File.Exists(vocabJsonPath)) throw new FileNotFoundException($"tokenizer vocabulary {vocabJsonPath} not found", vocabJsonPath);
        if (!File.Exists(mergesTxtPath)) throw new FileNotFoundException($"tokenizer merges {mergesTxtPath} not found", mergesTxtPath);
        Dictionary<string, int> vocab;
        try
        {
            vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(vocabJsonPath))
                ?? throw new InvalidDataException($"{vocabJsonPath} is empty");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{vocabJsonPath} is not a JSON object of token ids: {e.Message}");
        }
        return FromData(vocab, File.ReadAllLines(mergesTxtPath), Path.GetFileName(mergesTxtPath));
    }

    /// <summary>Builds a tokenizer from in-memory data (a vocabulary and the lines of a merges file).</summary>
    public static ClipTokenizer FromData(IReadOnlyDictionary<string, int> vocab, IEnumerable<string> mergeLines, string mergesName = "merges.txt")
    {
        ArgumentNullException.ThrowIfNull(vocab);
        ArgumentNullException.ThrowIfNull(mergeLines);
        var ranks = new Dictionary<(string, string), int>();
        int lineNo = 0;
        foreach (var raw in mergeLines)
        {
            lineNo++;
            var line = raw.TrimEnd('\r', '\n');
            if (line.Length == 0 || line.StartsWith("#version", StringComparison.Ordinal)) continue;
            var parts = line.Split(' ');
            if (parts.Length != 2)
                throw new InvalidDataException($"{mergesName} line {lineNo} is not a merge pair: '{line}'");
            ranks.TryAdd((parts[0], parts[1]), ranks.Count);
        }
        return new ClipTokenizer(new Dictionary<string, int>(vocab, StringComparer.Ordinal), ranks);
    }

    /// <summary>CLIP's text cleanup: HTML entities decoded twice, whitespace collapsed, trimmed, lower-cased.</summary>
    public static string Clean(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var t = WebUtility.HtmlDecode(WebUtility.HtmlDecode(text)).Trim();
        return Whitespace().Replace(t, " ").Trim().ToLowerInvariant();
    }

    /// <summary>Token ids of <paramref name="text"/> without start/end tokens and without truncation.</summary>
    public IReadOnlyList<int> Encode(string text)
    {
        var ids = new List<int>();
        foreach (Match m in Pattern().Matches(Clean(text)))
        {
            var token = m.Value;
            if ((token == StartToken || token == EndToken) && _vocab.TryGetValue(token, out int special))
            {
                ids.Add(special);
                continue;
            }
            var sb = new StringBuilder();
            foreach (var b in Encoding.UTF8.GetBytes(token)) sb.Append(ByteToUnicode[b]);
            foreach (var piece in Bpe(sb.ToString()))
            {
                if (!_vocab.TryGetValue(piece, out int id))
                    throw new InvalidDataException($"BPE piece '{piece}' is not in vocab.json: the vocabulary and merges files do not belong together");
                ids.Add(id);
            }
        }
        return ids;
    }

    /// <summary>
    /// The model input for <paramref name="text"/>: start token, up to <paramref name="contextLength"/> - 2 text tokens
    /// (the rest is cut off), end token, then <paramref name="padId"/> up to <paramref name="contextLength"/>.
    /// </summary>
    /// <returns>The ids and the index of the end token (where CLIP pools the text features).</returns>
    public (long[] Ids, int EndIndex) Tokenize(string text, int contextLength = 77, int? padId = null)
    {
        if (contextLength < 2) throw new ArgumentOutOfRangeException(nameof(contextLength), "context length must be at least 2");
        var body = Encode(text);
        int n = Math.Min(body.Count, contextLength - 2);
        var ids = new long[contextLength];
        Array.Fill(ids, padId ?? EndId);
        ids[0] = StartId;
        for (int i = 0; i < n; i++) ids[i + 1] = body[i];
        ids[n + 1] = EndId;
        return (ids, n + 1);
    }

    private string[] Bpe(string token)
    {
        if (_cache.TryGetValue(token, out var cached)) return cached;
        var word = new List<string>();
        // Byte-level symbols are single chars (the mapping uses code points below 0x200), so char-wise splitting is exact.
        foreach (var c in token) word.Add(c.ToString());
        word[^1] += "</w>";
        while (word.Count > 1)
        {
            int bestRank = int.MaxValue;
            (string, string) best = default;
            for (int i = 0; i < word.Count - 1; i++)
            {
                if (_ranks.TryGetValue((word[i], word[i + 1]), out int r) && r < bestRank)
                {
                    bestRank = r;
                    best = (word[i], word[i + 1]);
                }
            }
            if (bestRank == int.MaxValue) break;
            var merged = new List<string>(word.Count);
            for (int i = 0; i < word.Count; i++)
            {
                if (i < word.Count - 1 && word[i] == best.Item1 && word[i + 1] == best.Item2)
                {
                    merged.Add(best.Item1 + best.Item2);
                    i++;
                }
                else
                {
                    merged.Add(word[i]);
                }
            }
            word = merged;
        }
        var result = word.ToArray();
        _cache[token] = result;
        return result;
    }

    /// <summary>GPT-2/CLIP's reversible map from bytes to printable characters.</summary>
    private static string[] BuildByteToUnicode()
    {
        var bs = new List<int>();
        for (int b = '!'; b <= '~'; b++) bs.Add(b);
        for (int b = 0xA1; b <= 0xAC; b++) bs.Add(b);
        for (int b = 0xAE; b <= 0xFF; b++) bs.Add(b);
        var map = new string[256];
        foreach (var b in bs) map[b] = ((char)b).ToString();
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            if (map[b] is null) map[b] = ((char)(256 + n++)).ToString();
        }
        return map;
    }

    [GeneratedRegex(@"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
