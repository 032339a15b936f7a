namespace NextFlowRL.Cli;

/// <summary>
/// Options every command accepts, anywhere on the line. They are taken out before command parsing because plugin
/// commands are found only after plugins have loaded, which needs the configuration.
/// </summary>
internal sealed class GlobalOptions
{
    public List<string> Settings { get; } = [];
    public string? ConfigFile { get; private set; }
    public List<string> PluginDirectories { get; } = [];
    public bool Verbose { get; private set; }

    public const string Help = """
        Global options (any command):
          --set Section:Key=Value   override one configuration value (repeatable)
          --config FILE             read configuration from a JSON file
          --plugins-dir DIR         also load plugins from DIR/<Name>/ (repeatable)
          --verbose                 show stack traces and debug logs
        """;

    /// <summary>Splits <paramref name="args"/> into global options and the rest.</summary>
    /// <exception cref="Hosting.ConfigurationException">A global option without its value.</exception>
    public static (GlobalOptions Globals, string[] Remaining) Extract(string[] args)
    {
        var globals = new GlobalOptions();
        var rest = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            var a = args[i];
            if (a == "--") { rest.AddRange(args[i..]); break; }
            string? Value(string name)
            {
                if (a.StartsWith(name + "=", StringComparison.Ordinal)) return a[(name.Length + 1)..];
                if (a != name) return null;
                if (i + 1 >= args.Length) throw new Hosting.ConfigurationException($"{name} needs a value");
                return args[++i];
            }
            if (Value("--set") is { } s) globals.Settings.Add(s);
            else if (Value("--config") is { } c) globals.ConfigFile = c;
            else if (Value("--plugins-dir") is { } d) globals.PluginDirectories.Add(d);
            else if (a == "--verbose") globals.Verbose = true;
            else rest.Add(a);
        }
        if (Environment.GetEnvironmentVariable("NEXTFLOWRL_VERBOSE") is "1" or "true") globals.Verbose = true;
        return (globals, rest.ToArray());
    }
}
