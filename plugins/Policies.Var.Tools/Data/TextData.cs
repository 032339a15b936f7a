using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using NextFlowRL.Imaging;
using NextFlowRL.Policies.Var.Model;

namespace NextFlowRL.Policies.Var.Data;

/// <summary>
/// Deterministic word lists: pronounceable upper-case pseudo-words of 3-6 letters, split into a training vocabulary and
/// a disjoint held-out list. The same seed always gives the same lists.
/// </summary>
public sealed class WordLists
{
    private static readonly string[] Onsets = ["B", "C", "D", "F", "G", "H", "K", "L", "M", "N", "P", "R", "S", "T", "V", "W", "Z", "BR", "CR", "DR", "GR", "PR", "TR", "ST", "SP", "SL", "CL", "FL", "PL", "SH", "CH", "TH"];
    private static readonly string[] Vowels = ["A", "E", "I", "O", "U", "A", "E", "O", "AI", "OU", "EE", "OO"];
    private static readonly string[] Codas = ["", "", "", "N", "R", "S", "T", "L", "M", "K", "X", "D", "P", "NT", "ST", "RK"];

    private WordLists(IReadOnlyList<string> train, IReadOnlyList<string> heldOut)
    {
        Train = train;
        HeldOut = heldOut;
    }

    /// <summary>The training vocabulary.</summary>
    public IReadOnlyList<string> Train { get; }

    /// <summary>Words never used in training (for held-out evaluation).</summary>
    public IReadOnlyList<string> HeldOut { get; }

    /// <summary>The same lists without <paramref name="words"/> (case-insensitive): a validation vocabulary disjoint from a test set's.</summary>
    public WordLists Without(IEnumerable<string> words)
    {
        ArgumentNullException.ThrowIfNull(words);
        var drop = new HashSet<string>(words, StringComparer.OrdinalIgnoreCase);
        return new WordLists(Train.Where(w => !drop.Contains(w)).ToArray(), HeldOut.Where(w => !drop.Contains(w)).ToArray());
    }

    /// <summary>Default lists: 4000 training words and 600 held-out words from seed 1234.</summary>
    public static WordLists Default { get; } = Create(4000, 600, 1234);

    /// <summary>Generates <paramref name="train"/> + <paramref name="heldOut"/> distinct words from <paramref name="seed"/>.</summary>
    public static WordLists Create(int train, int heldOut, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(train, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(heldOut, 1);
        var rng = new Random(seed);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var words = new List<string>();
        int attempts = 0;
        while (words.Count < train + heldOut)
        {
            if (++attempts > 1_000_000) throw new InvalidOperationException("Could not generate enough distinct words.");
            var sb = new StringBuilder();
            int syllables = rng.Next(1, 3);
            for (int s = 0; s < syllables; s++)
            {
                sb.Append(Onsets[rng.Next(Onsets.Length)]);
                sb.Append(Vowels[rng.Next(Vowels.Length)]);
                sb.Append(Codas[rng.Next(Codas.Length)]);
            }
            var w = sb.ToString();
            if (w.Length < 3 || w.Length > 6) continue;
            if (seen.Add(w)) words.Add(w);
        }
        return new WordLists(words.Take(train).ToArray(), words.Skip(train).ToArray());
    }
}

/// <summary>One synthetic example: the prompt, its target words and (when rendered) the image.</summary>
/// <param name="Prompt">CVTG-style prompt; the words to render are in single quotes.</param>
/// <param name="Words">The quoted words, in order (one per text region).</param>
/// <param name="Font">Embedded font name used for rendering.</param>
/// <param name="Background">Background colour.</param>
/// <param name="Foreground">Text colour.</param>
/// <param name="Jitter">Layout jitter seed.</param>
public sealed record TextExample(string Prompt, IReadOnlyList<string> Words, string Font, (byte R, byte G, byte B) Background, (byte R, byte G, byte B) Foreground, int Jitter);

/// <summary>A line of an evaluation or training prompt file (JSONL).</summary>
/// <param name="Prompt">The prompt text.</param>
/// <param name="TargetWords">The quoted words (upper case as rendered; compare case-insensitively).</param>
/// <param name="Bin">Evaluation bin, e.g. <c>1region-seen</c>, <c>2region-heldout</c>; <c>train</c> in training files.</param>
public sealed record PromptRecord(
    [property: JsonPropertyName("prompt")] string Prompt,
    [property: JsonPropertyName("target_words")] IReadOnlyList<string> TargetWords,
    [property: JsonPropertyName("bin")] string Bin);

/// <summary>
/// The synthetic text-rendering task: CVTG-style prompts with 1-2 quoted words, rendered with SkiaSharp in several
/// fonts, colours and backgrounds. Everything is a pure function of the seed.
/// </summary>
public static class TextDataset
{
    /// <summary>Sentence templates; <c>{0}</c>/<c>{1}</c> are replaced by quoted words.</summary>
    public static readonly string[] OneWordTemplates =
    [
        "A sign that says '{0}'.",
        "A poster with the word '{0}' in bold letters.",
        "The word '{0}' written on a plain wall.",
        "A shop banner reading '{0}'.",
        "Minimal logo design showing the text '{0}'.",
        "A label printed with '{0}' on it.",
        "Close-up photo of a card with '{0}'.",
        "'{0}' in large letters on a coloured background.",
        "A street sign with the name '{0}'.",
        "Book cover titled '{0}'.",
        "A neon sign spelling '{0}' at night.",
        "Handwritten note that reads '{0}'.",
    ];

    /// <summary>Two-region templates.</summary>
    public static readonly string[] TwoWordTemplates =
    [
        "A sign that says '{0}' above '{1}'.",
        "A poster with '{0}' at the top and '{1}' at the bottom.",
        "Two lines of text: '{0}' and '{1}'.",
        "A shop banner reading '{0}' with the subtitle '{1}'.",
        "A label printed with '{0}' over '{1}'.",
        "Book cover titled '{0}' by '{1}'.",
        "A menu board showing '{0}' and '{1}'.",
        "The words '{0}' and '{1}' on a plain wall.",
        "A ticket with '{0}' and below it '{1}'.",
        "Street signs pointing to '{0}' and '{1}'.",
    ];

    private static readonly (byte, byte, byte)[] LightColours = [(250, 250, 245), (235, 225, 200), (210, 230, 250), (220, 245, 220)];
    private static readonly (byte, byte, byte)[] DarkColours = [(20, 20, 25), (30, 40, 90), (90, 20, 30), (20, 70, 40)];

    /// <summary>
    /// The fonts of the synthetic data: the bold embedded faces (sans, monospace, serif). Thin strokes of the regular
    /// face do not survive a 64x64 render legibly.
    /// </summary>
    public static readonly string[] Fonts = ["DejaVuSans-Bold", "DejaVuSansMono-Bold", "DejaVuSerif-Bold"];

    /// <summary>Image side in pixels of the rendered examples.</summary>
    public const int ImageSize = 64;

    /// <summary>Draws one example (prompt and style) from <paramref name="rng"/> with words from <paramref name="words"/>.</summary>
    public static TextExample Draw(Random rng, IReadOnlyList<string> words, int? regions = null)
    {
        ArgumentNullException.ThrowIfNull(rng);
        ArgumentNullException.ThrowIfNull(words);
        int n = regions ?? (rng.NextDouble() < 0.5 ? 1 : 2);
        if (n is < 1 or > 2) throw new ArgumentOutOfRangeException(nameof(regions), "1 or 2 regions.");
        var chosen = new string[n];
        for (int i = 0; i < n; i++) chosen[i] = words[rng.Next(words.Count)];
        var template = n == 1 ? OneWordTemplates[rng.Next(OneWordTemplates.Length)] : TwoWordTemplates[rng.Next(TwoWordTemplates.Length)];
        string prompt = string.Format(System.Globalization.CultureInfo.InvariantCulture, template, chosen.Cast<object>().ToArray());
        var font = Fonts[rng.Next(Fonts.Length)];
        bool darkOnLight = rng.NextDouble() < 0.7;
        var bg = darkOnLight ? LightColours[rng.Next(LightColours.Length)] : DarkColours[rng.Next(DarkColours.Length)];
        var fg = darkOnLight ? DarkColours[rng.Next(DarkColours.Length)] : LightColours[rng.Next(LightColours.Length)];
        return new TextExample(prompt, chosen, font, bg, fg, rng.Next());
    }

    /// <summary>
    /// Renders an example as a 64x64 RGB image (deterministic). Each line sits at a fixed height, centred horizontally;
    /// the only layout variation is a whole 4-pixel step (one token of the 16x16 tokenizer) chosen by
    /// <see cref="TextExample.Jitter"/>, so glyphs do not shift by fractions of a token between examples.
    /// </summary>
    public static RgbImage Render(TextExample example)
    {
        ArgumentNullException.ThrowIfNull(example);
        var rng = new Random(example.Jitter);
        int n = example.Words.Count;
        var items = new List<TextItem>();
        for (int i = 0; i < n; i++)
        {
            var word = example.Words[i];
            float size = 18f;
            var (w, _) = TextRenderer.Measure(word, example.Font, size);
            float maxWidth = ImageSize - 6;
            if (w > maxWidth) size *= maxWidth / w;
            if (n == 2) size = Math.Min(size, 17f);
            float cy = n == 1 ? 32 + 4 * rng.Next(-1, 2) : (i == 0 ? 20 : 45);
            float cx = 32;
            items.Add(new TextItem(word, cx, cy, size, example.Font, example.Foreground));
        }
        return TextRenderer.Render(ImageSize, ImageSize, example.Background, items);
    }

    /// <summary>The fixed evaluation set: <paramref name="perBin"/> prompts in each of the bins 1/2 regions x seen/held-out.</summary>
    public static IReadOnlyList<PromptRecord> EvaluationPrompts(WordLists words, int perBin = 25, int seed = 20260101)
    {
        ArgumentNullException.ThrowIfNull(words);
        var rng = new Random(seed);
        var result = new List<PromptRecord>();
        foreach (var regions in new[] { 1, 2 })
        {
            foreach (var (list, tag) in new[] { (words.Train, "seen"), (words.HeldOut, "heldout") })
            {
                for (int i = 0; i < perBin; i++)
                {
                    var ex = Draw(rng, list, regions);
                    result.Add(new PromptRecord(ex.Prompt, ex.Words, $"{regions}region-{tag}"));
                }
            }
        }
        return result;
    }

    /// <summary>
    /// The validation set for tuning (guidance, KL weight, learning rate): the evaluation set's bins and sizes, drawn with
    /// another seed from vocabularies without any word of <paramref name="test"/>, so tuning never sees a test word.
    /// </summary>
    public static IReadOnlyList<PromptRecord> ValidationPrompts(WordLists words, IEnumerable<PromptRecord> test, int perBin = 25, int seed = 20260202)
    {
        ArgumentNullException.ThrowIfNull(words);
        ArgumentNullException.ThrowIfNull(test);
        return EvaluationPrompts(words.Without(test.SelectMany(r => r.TargetWords)), perBin, seed);
    }

    /// <summary>
    /// Letters the synthetic words are made of. <c>J</c>, <c>Q</c> and <c>Y</c> never occur in them (the word grammar has
    /// no such onset, vowel or coda), so the model has never drawn them; the out-of-distribution set leaves them out too,
    /// so that it measures unfamiliar words, not untrained glyphs.
    /// </summary>
    public const string TrainedLetters = "ABCDEFGHIKLMNOPRSTUVWXZ";

    /// <summary>Common English words of 3-6 trained letters (the out-of-distribution set's real words).</summary>
    public static readonly string[] CommonWords =
    [
        "OPEN", "CLOSED", "EXIT", "STOP", "SALE", "FOOD", "HOTEL", "BANK", "TAXI", "PARK", "CAFE", "BOOK", "MUSIC", "HOUSE",
        "WATER", "LIGHT", "NIGHT", "GREEN", "DREAM", "PIZZA", "HELLO", "WORLD", "SMILE", "PLANT", "RIVER", "STONE", "CLOUD",
        "BREAD", "FRESH", "SUMMER", "WINTER", "GARDEN", "MARKET", "SCHOOL", "TRAIN", "PAPER", "LEMON", "TIGER", "EAGLE",
        "HORSE", "MOUSE", "APPLE", "ORANGE", "BEACH", "OCEAN", "STORM", "FIRE", "SNOW", "MOON", "STAR", "GOLD", "SILVER",
        "MILK", "CAKE", "SHOP", "HOME", "LOVE", "HOPE", "TIME", "ROAD", "PORT", "FARM", "WIND", "RAIN", "BLUE", "BIRD",
        "FISH", "KING", "QUEEN", "CASTLE", "FOREST", "SUGAR", "SALT", "CHAIR", "TABLE", "CLOCK", "PHONE", "RADIO", "MOVIE",
    ];

    /// <summary>Two-letter English words of trained letters.</summary>
    public static readonly string[] ShortWords = ["GO", "UP", "NO", "ON", "TO", "IN", "AT", "IF", "IS", "IT", "OF", "OR", "SO", "WE", "HE", "ME", "OK", "OX", "HI", "DO", "AN", "AS", "US", "BE"];

    /// <summary>Two-word signs of common words (each word one text region).</summary>
    public static readonly (string, string)[] TwoWordSigns =
    [
        ("NO", "EXIT"), ("OPEN", "NOW"), ("FREE", "FOOD"), ("HOT", "TEA"), ("GOOD", "LUCK"), ("BOOK", "SHOP"), ("FISH", "MARKET"),
        ("BUS", "STOP"), ("MAIN", "STREET"), ("WET", "PAINT"), ("KEEP", "OUT"), ("LIVE", "MUSIC"), ("FRESH", "BREAD"), ("SLOW", "DOWN"),
        ("TAXI", "RANK"), ("PARK", "HERE"), ("ICE", "CREAM"), ("FIRE", "EXIT"), ("HOME", "SWEET"), ("RIGHT", "TURN"), ("TOWN", "HALL"),
        ("GIFT", "SHOP"), ("BEST", "PRICE"), ("SOLD", "OUT"), ("TRAIN", "TIMES"), ("SEA", "VIEW"), ("HOT", "SOUP"), ("CAR", "WASH"),
    ];

    /// <summary>One-word sentence templates that no training prompt uses.</summary>
    public static readonly string[] UnseenOneWordTemplates =
    [
        "A coffee cup printed with '{0}'.",
        "Graffiti on a brick wall spelling '{0}'.",
        "A T-shirt with '{0}' across the front.",
        "A road marking that reads '{0}'.",
        "An old wooden door painted with '{0}'.",
        "A chalkboard with '{0}' written on it.",
        "A museum plaque showing '{0}'.",
        "A delivery truck with '{0}' on its side.",
    ];

    /// <summary>
    /// The out-of-distribution evaluation set: prompts of a kind the model was never trained on, <paramref name="perBin"/>
    /// in each bin: <c>common-1region</c> (common English words), <c>short-1region</c> (two-letter words),
    /// <c>rare-1region</c> (trained letters in combinations the word grammar never makes: vowel first, consonant runs),
    /// <c>common-2region</c> (two-word signs) and <c>template-1region</c> (held-out pseudo-words in sentence templates no
    /// training prompt uses). No word is in <paramref name="words"/>' training vocabulary; the bins other than
    /// <c>template</c> use the training templates, so each bin changes one thing. For reporting only, never for tuning.
    /// </summary>
    public static IReadOnlyList<PromptRecord> OutOfDistributionPrompts(WordLists words, int perBin = 20, int seed = 20261203)
    {
        ArgumentNullException.ThrowIfNull(words);
        ArgumentOutOfRangeException.ThrowIfLessThan(perBin, 1);
        var rng = new Random(seed);
        var known = new HashSet<string>(words.Train.Concat(words.HeldOut), StringComparer.OrdinalIgnoreCase);
        var common = CommonWords.Where(w => !known.Contains(w)).ToArray();
        var shortWords = ShortWords.Where(w => !known.Contains(w)).ToArray();
        var signs = TwoWordSigns.Where(s => !known.Contains(s.Item1) && !known.Contains(s.Item2)).ToArray();
        var result = new List<PromptRecord>();
        PromptRecord One(string template, string word, string bin) =>
            new(string.Format(System.Globalization.CultureInfo.InvariantCulture, template, word), [word], bin);
        string Pick(string[] from) => from[rng.Next(from.Length)];
        for (int i = 0; i < perBin; i++) result.Add(One(Pick(OneWordTemplates), Pick(common), "common-1region"));
        for (int i = 0; i < perBin; i++) result.Add(One(Pick(OneWordTemplates), Pick(shortWords), "short-1region"));
        for (int i = 0; i < perBin; i++) result.Add(One(Pick(OneWordTemplates), RareWord(rng, known), "rare-1region"));
        for (int i = 0; i < perBin; i++)
        {
            var (a, b) = signs[rng.Next(signs.Length)];
            string prompt = string.Format(System.Globalization.CultureInfo.InvariantCulture, Pick(TwoWordTemplates), a, b);
            result.Add(new PromptRecord(prompt, [a, b], "common-2region"));
        }
        for (int i = 0; i < perBin; i++) result.Add(One(Pick(UnseenOneWordTemplates), words.HeldOut[rng.Next(words.HeldOut.Count)], "template-1region"));
        return result;
    }

    /// <summary>A 3-6 letter string of trained letters that the word grammar cannot make: a vowel first, or three consonants in a row.</summary>
    private static string RareWord(Random rng, HashSet<string> known)
    {
        const string vowels = "AEIOU";
        var consonants = TrainedLetters.Where(c => !vowels.Contains(c)).ToArray();
        while (true)
        {
            int length = rng.Next(3, 7);
            var sb = new StringBuilder();
            if (rng.NextDouble() < 0.5)
            {
                // Vowel first, then alternating: ARKOT, ULEX.
                for (int i = 0; i < length; i++) sb.Append(i % 2 == 0 ? vowels[rng.Next(vowels.Length)] : consonants[rng.Next(consonants.Length)]);
            }
            else
            {
                // A run of three consonants somewhere: TRKAS, AMBXO.
                int run = rng.Next(0, length - 2);
                for (int i = 0; i < length; i++)
                    sb.Append(i >= run && i < run + 3 ? consonants[rng.Next(consonants.Length)] : vowels[rng.Next(vowels.Length)]);
            }
            var w = sb.ToString();
            if (!known.Contains(w)) return w;
        }
    }

    /// <summary>Training prompts (training vocabulary only) for RL, deterministic by seed.</summary>
    public static IReadOnlyList<PromptRecord> TrainingPrompts(WordLists words, int count, int seed = 7)
    {
        ArgumentNullException.ThrowIfNull(words);
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ =>
        {
            var ex = Draw(rng, words.Train);
            return new PromptRecord(ex.Prompt, ex.Words, "train");
        }).ToArray();
    }

    /// <summary>Writes prompt records as JSONL (one object per line) atomically.</summary>
    public static void WriteJsonl(string path, IEnumerable<PromptRecord> records)
    {
        var sb = new StringBuilder();
        var options = new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        foreach (var r in records) sb.Append(JsonSerializer.Serialize(r, options)).Append('\n');
        AtomicFile.WriteAllText(path, sb.ToString());
    }

    /// <summary>Reads a JSONL prompt file.</summary>
    /// <exception cref="InvalidDataException">A line is not a prompt record; the message names the line.</exception>
    public static IReadOnlyList<PromptRecord> ReadJsonl(string path)
    {
        var result = new List<PromptRecord>();
        int lineNo = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            PromptRecord? r;
            try { r = JsonSerializer.Deserialize<PromptRecord>(line); }
            catch (JsonException e) { throw new InvalidDataException($"{path}:{lineNo}: not a prompt record ({e.Message})."); }
            if (r is null || string.IsNullOrEmpty(r.Prompt)) throw new InvalidDataException($"{path}:{lineNo}: missing \"prompt\".");
            result.Add(r with { TargetWords = r.TargetWords ?? PromptWords.Quoted(r.Prompt), Bin = r.Bin ?? "" });
        }
        return result;
    }
}
