namespace NextFlowRL.Hosting;

/// <summary>
/// Builds the layered configuration every NextFlowRL host uses. Later layers win:
/// <list type="number">
/// <item><c>appsettings.json</c> beside the host executable (optional);</item>
/// <item><c>appsettings.json</c> in the current directory (optional);</item>
/// <item>a JSON file given with <c>--config FILE</c> (must exist);</item>
/// <item>environment variables prefixed <c>NEXTFLOWRL_</c>, with <c>__</c> as the section separator
/// (<c>NEXTFLOWRL_Rewards__ocr__Workers=2</c>);</item>
/// <item><c>--set Section:Key=Value</c> pairs from the command line.</item>
/// </list>
/// </summary>
public static class NextFlowRLConfiguration
{
    /// <summary>Prefix of environment variables read into configuration.</summary>
    public const string EnvironmentPrefix = "NEXTFLOWRL_";

    /// <summary>Builds the configuration.</summary>
    /// <param name="settings"><c>Section:Key=Value</c> strings (from <c>--set</c>).</param>
    /// <param name="configFile">An extra JSON file, or null.</param>
    /// <param name="baseDirectory">Directory of the host's own appsettings.json; defaults to the app base directory.</param>
    /// <exception cref="ConfigurationException">A malformed <c>--set</c>, a missing or invalid config file.</exception>
    public static IConfigurationRoot Build(IEnumerable<string>? settings = null, string? configFile = null, string? baseDirectory = null)
    {
        var builder = new ConfigurationBuilder();
        baseDirectory ??= AppContext.BaseDirectory;
        AddJson(builder, Path.Combine(baseDirectory, "appsettings.json"), optional: true);
        var cwd = Path.Combine(Directory.GetCurrentDirectory(), "appsettings.json");
        if (!string.Equals(Path.GetFullPath(cwd), Path.GetFullPath(Path.Combine(baseDirectory, "appsettings.json")), StringComparison.Ordinal))
            AddJson(builder, cwd, optional: true);
        if (configFile is not null)
        {
            if (!File.Exists(configFile))
                throw new ConfigurationException($"config file '{configFile}' not found");
            AddJson(builder, Path.GetFullPath(configFile), optional: false);
        }
        builder.AddEnvironmentVariables(EnvironmentPrefix);
        // A key given twice: the later --set wins, as with every other configuration layer.
        var overrides = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in ParseSettings(settings ?? [])) overrides[key] = value;
        builder.AddInMemoryCollection(overrides);
        try
        {
            return builder.Build();
        }
        catch (InvalidDataException e)
        {
            throw new ConfigurationException(e.Message, e);
        }
        catch (FormatException e)
        {
            throw new ConfigurationException(e.Message, e);
        }
    }

    /// <summary>Parses <c>Section:Key=Value</c> strings.</summary>
    /// <exception cref="ConfigurationException">A string without <c>=</c> or with an empty key.</exception>
    public static IEnumerable<KeyValuePair<string, string?>> ParseSettings(IEnumerable<string> settings)
    {
        var parsed = new List<KeyValuePair<string, string?>>();
        foreach (var s in settings)
        {
            int eq = s.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
                throw new ConfigurationException($"--set expects Section:Key=Value, got '{s}'");
            var key = s[..eq].Trim();
            if (key.Length == 0 || key.StartsWith(':') || key.EndsWith(':'))
                throw new ConfigurationException($"--set has an invalid key in '{s}'");
            parsed.Add(new(key, s[(eq + 1)..]));
        }
        return parsed;
    }

    private static void AddJson(ConfigurationBuilder builder, string path, bool optional)
    {
        if (optional && !File.Exists(path)) return;
        builder.AddJsonFile(path, optional, reloadOnChange: false);
    }
}

/// <summary>Invalid configuration; the message is one line for the user.</summary>
public sealed class ConfigurationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ConfigurationException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public ConfigurationException(string message, Exception inner) : base(message, inner) { }

    /// <summary>Creates the exception.</summary>
    public ConfigurationException() { }
}
