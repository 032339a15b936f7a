using System.Globalization;

namespace NextFlowRL.Policies.FoundationVar;

/// <summary>
/// Maps prompts to class labels: a class index (<c>207</c>), a class name or any of its synonyms, case-insensitively
/// (<c>golden retriever</c>, <c>Tinca tinca</c>); an empty prompt is unconditional. The default list is the 1000
/// ImageNet-1k class names in index order (<c>imagenet-classes.txt</c> beside the plugin, one class per line, synonyms
/// separated by ", ").
/// </summary>
public sealed class ClassNames
{
    private readonly string[] _lines;
    private readonly Dictionary<string, int> _byName = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The file shipped beside the plugin assembly.</summary>
    public static string DefaultPath =>
        Path.Combine(Path.GetDirectoryName(typeof(ClassNames).Assembly.Location) ?? AppContext.BaseDirectory, "imagenet-classes.txt");

    /// <summary>Creates the map from one line per class.</summary>
    public ClassNames(IReadOnlyList<string> lines)
    {
        ArgumentNullException.ThrowIfNull(lines);
        _lines = lines.ToArray();
        for (int i = 0; i < _lines.Length; i++)
        {
            _byName.TryAdd(_lines[i].Trim(), i);
            foreach (var name in Synonyms(i)) _byName.TryAdd(name, i); // duplicates ("crane", "maillot") keep the first index
        }
    }

    /// <summary>Reads a class list file (one class per line, index order).</summary>
    /// <exception cref="InvalidDataException">The file is missing or empty.</exception>
    public static ClassNames Load(string path)
    {
        if (!File.Exists(path)) throw new InvalidDataException($"{path}: class names file not found (Policies:foundation-var:ClassNames)");
        var lines = File.ReadAllLines(path).Where(l => l.Length > 0).ToArray();
        if (lines.Length == 0) throw new InvalidDataException($"{path}: class names file is empty");
        return new ClassNames(lines);
    }

    /// <summary>Number of classes.</summary>
    public int Count => _lines.Length;

    /// <summary>The line of class <paramref name="index"/>.</summary>
    public string this[int index] => _lines[index];

    private IEnumerable<string> Synonyms(int index) =>
        _lines[index].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    /// <summary>
    /// The class label of <paramref name="prompt"/>: -1 for an empty or null prompt (unconditional), the index for a
    /// number or a class name.
    /// </summary>
    /// <param name="prompt">The prompt.</param>
    /// <param name="classes">The number of classes the model has (indices 0..classes-1 are valid).</param>
    /// <exception cref="ArgumentException">Neither a valid index nor a known name; the message lists the closest names.</exception>
    public int Resolve(string? prompt, int classes)
    {
        var p = prompt?.Trim() ?? "";
        if (p.Length == 0) return -1;
        if (int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out int index))
        {
            if (index < 0 || index >= classes) throw new ArgumentException($"class index {index} is outside 0..{classes - 1}");
            return index;
        }
        if (_byName.TryGetValue(p, out index) && index < classes) return index;
        var closest = _byName.Keys
            .Select(n => (Name: n, Distance: Levenshtein(n.ToLowerInvariant(), p.ToLowerInvariant())))
            .OrderBy(x => x.Distance).ThenBy(x => x.Name, StringComparer.Ordinal).Take(5)
            .Select(x => $"'{x.Name}' ({_byName[x.Name]})");
        throw new ArgumentException($"'{p}' is not a class index (0..{classes - 1}) or a class name; closest names: {string.Join(", ", closest)} (an empty prompt is unconditional)");
    }

    private static int Levenshtein(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }
}
