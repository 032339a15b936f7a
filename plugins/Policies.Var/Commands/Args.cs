using System.Globalization;

namespace NextFlowRL.Policies.Var.Commands;

/// <summary>A small <c>--name value</c> / <c>--flag</c> parser for the plugin's commands.</summary>
public sealed class Args
{
    private readonly Dictionary<string, string?> _values = new(StringComparer.Ordinal);

    private Args() { }

    /// <summary>True when <c>--help</c> or <c>-h</c> was given.</summary>
    public bool Help { get; private set; }

    /// <summary>Parses arguments; <paramref name="known"/> lists the accepted option names (without dashes); <paramref name="flags"/> take no value.</summary>
    /// <exception cref="ArgumentException">Unknown option, missing value or a positional argument.</exception>
    public static Args Parse(IReadOnlyList<string> args, IReadOnlyCollection<string> known, IReadOnlyCollection<string>? flags = null)
    {
        var a = new Args();
        for (int i = 0; i < args.Count; i++)
        {
            var s = args[i];
            if (s is "--help" or "-h") { a.Help = true; continue; }
            if (!s.StartsWith("--", StringComparison.Ordinal)) throw new ArgumentException($"unexpected argument '{s}'");
            var name = s[2..];
            if (flags?.Contains(name) == true) { a._values[name] = null; continue; }
            if (!known.Contains(name)) throw new ArgumentException($"unknown option --{name}");
            if (i + 1 >= args.Count) throw new ArgumentException($"option --{name} needs a value");
            a._values[name] = args[++i];
        }
        return a;
    }

    /// <summary>Whether an option or flag was given.</summary>
    public bool Has(string name) => _values.ContainsKey(name);

    /// <summary>A string value or the default.</summary>
    public string? String(string name, string? fallback = null) => _values.TryGetValue(name, out var v) ? v : fallback;

    /// <summary>An integer value within [min, max] or the default.</summary>
    public int Int(string name, int fallback, int min = int.MinValue, int max = int.MaxValue)
    {
        if (!_values.TryGetValue(name, out var v)) return fallback;
        if (!int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int r) || r < min || r > max)
            throw new ArgumentException($"--{name} must be an integer in [{min}, {max}], got '{v}'");
        return r;
    }

    /// <summary>A floating-point value within [min, max] or the default.</summary>
    public double Double(string name, double fallback, double min = double.MinValue, double max = double.MaxValue)
    {
        if (!_values.TryGetValue(name, out var v)) return fallback;
        if (!double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double r) || !(r >= min && r <= max))
            throw new ArgumentException($"--{name} must be a number in [{min}, {max}], got '{v}'");
        return r;
    }

    /// <summary>Comma-separated side lengths (e.g. <c>1,2,4,8,16</c>) or <c>HxW</c> items.</summary>
    public int[][]? Scales(string name)
    {
        if (!_values.TryGetValue(name, out var v) || v is null) return null;
        try
        {
            return v.Split(',').Select(p =>
            {
                var hw = p.Split('x');
                return hw.Length == 1 ? new[] { int.Parse(hw[0], CultureInfo.InvariantCulture), int.Parse(hw[0], CultureInfo.InvariantCulture) }
                    : [int.Parse(hw[0], CultureInfo.InvariantCulture), int.Parse(hw[1], CultureInfo.InvariantCulture)];
            }).ToArray();
        }
        catch (FormatException) { throw new ArgumentException($"--{name} must look like 1,2,4,8,16 or 1x2,2x4, got '{v}'"); }
    }
}
