using System.Collections;
using System.ComponentModel;
using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace NextFlowRL.Hosting;

/// <summary>
/// Binding that reports every value of the wrong type at once. <c>ConfigurationBinder.Bind</c> stops at the first value
/// it cannot convert (<c>LearningRate=abc</c> hides every other problem); <see cref="Bind"/> checks each value of the
/// section against the type of the option it sets, with the converters the binder itself uses, binds the others and
/// returns one message per bad value.
/// </summary>
public static class ConfigurationChecks
{
    /// <summary>Binds <paramref name="section"/> onto <paramref name="options"/>, leaving out and reporting the values that do not convert.</summary>
    /// <returns>One message per value of the wrong type (<c>Train:LearningRate: 'abc' is not a number</c>); empty when all bound.</returns>
    public static IReadOnlyList<string> Bind(IConfigurationSection section, object options)
    {
        ArgumentNullException.ThrowIfNull(section);
        ArgumentNullException.ThrowIfNull(options);
        var problems = new List<string>();
        var bad = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in section.AsEnumerable().Where(kv => kv.Value is not null).OrderBy(kv => kv.Key, StringComparer.OrdinalIgnoreCase))
        {
            if (key.Length <= section.Path.Length) continue;
            var type = TypeAt(options.GetType(), key[(section.Path.Length + 1)..].Split(':'));
            if (type is null || Converts(type, value!)) continue; // unknown keys are ignored, as the binder ignores them
            problems.Add($"{key}: '{value}' is not {Describe(type)}");
            bad.Add(key);
        }
        var kept = bad.Count == 0 ? section
            : new ConfigurationBuilder().AddInMemoryCollection(section.AsEnumerable().Where(kv => !bad.Contains(kv.Key))).Build().GetSection(section.Path);
        kept.Bind(options);
        return problems;
    }

    /// <summary>
    /// <c>OptionsBuilder.Bind</c> that reports instead of throwing: the options are bound with <see cref="Bind"/>, and
    /// their validation lists every value of the wrong type together with what <paramref name="validate"/> finds in the
    /// bound options (one <see cref="OptionsValidationException"/> naming all problems, never the first alone).
    /// </summary>
    /// <param name="builder">The options to bind.</param>
    /// <param name="section">The section they are bound from (read when the options are first created).</param>
    /// <param name="validate">Further checks of the bound options, one message per problem (null: none).</param>
    public static OptionsBuilder<TOptions> BindReportingProblems<TOptions>(this OptionsBuilder<TOptions> builder, IConfigurationSection section,
        Func<TOptions, IEnumerable<string>>? validate = null) where TOptions : class
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(section);
        var validator = new ProblemsValidator<TOptions>(builder.Name, validate);
        builder.Configure(options => validator.Mistyped = Bind(section, options));
        builder.Services.AddSingleton<IValidateOptions<TOptions>>(validator);
        return builder;
    }

    /// <summary>Validates the options of one name: the mistyped values their binding found, then <c>validate</c>.</summary>
    private sealed class ProblemsValidator<TOptions>(string name, Func<TOptions, IEnumerable<string>>? validate) : IValidateOptions<TOptions> where TOptions : class
    {
        /// <summary>What the latest binding of these options could not convert.</summary>
        public volatile IReadOnlyList<string> Mistyped = [];

        public ValidateOptionsResult Validate(string? optionsName, TOptions options)
        {
            if ((optionsName ?? Options.DefaultName) != name) return ValidateOptionsResult.Skip;
            var problems = Mistyped.Concat(validate?.Invoke(options) ?? []).ToList();
            return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
        }
    }

    /// <summary>The type a configuration path sets below <paramref name="type"/>, or null when the path names nothing.</summary>
    private static Type? TypeAt(Type type, IReadOnlyList<string> segments)
    {
        var current = type;
        foreach (var segment in segments)
        {
            current = Nullable.GetUnderlyingType(current) ?? current;
            if (IsLeaf(current)) return null;
            if (current.IsArray)
            {
                current = current.GetElementType()!;
                continue;
            }
            var dictionary = Generic(current, typeof(IDictionary<,>)) ?? Generic(current, typeof(IReadOnlyDictionary<,>));
            if (dictionary is not null)
            {
                current = dictionary.GetGenericArguments()[1];
                continue;
            }
            var list = Generic(current, typeof(IEnumerable<>));
            if (list is not null && typeof(IEnumerable).IsAssignableFrom(current) && int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            {
                current = list.GetGenericArguments()[0];
                continue;
            }
            var property = current.GetProperty(segment, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            if (property is null || property.GetIndexParameters().Length > 0) return null;
            current = property.PropertyType;
        }
        current = Nullable.GetUnderlyingType(current) ?? current;
        return IsLeaf(current) ? current : null;
    }

    private static bool IsLeaf(Type t) => t.IsPrimitive || t.IsEnum || t == typeof(string) || t == typeof(decimal) || t == typeof(TimeSpan) || t == typeof(DateTime) || t == typeof(Guid) || t == typeof(Uri);

    private static Type? Generic(Type t, Type definition) =>
        t.IsGenericType && t.GetGenericTypeDefinition() == definition ? t
        : t.GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == definition);

    private static bool Converts(Type type, string value)
    {
        if (type == typeof(string)) return true;
        if (type.IsEnum) return Enum.TryParse(type, value, ignoreCase: true, out _);
        try
        {
            TypeDescriptor.GetConverter(type).ConvertFromInvariantString(value);
            return true;
        }
        catch (Exception e) when (e is FormatException or NotSupportedException or ArgumentException or OverflowException || e.InnerException is FormatException or OverflowException)
        {
            return false;
        }
    }

    private static string Describe(Type t) =>
        t == typeof(double) || t == typeof(float) || t == typeof(decimal) ? "a number"
        : t == typeof(int) || t == typeof(long) || t == typeof(short) || t == typeof(byte) || t == typeof(uint) || t == typeof(ulong) ? "a whole number"
        : t == typeof(bool) ? "true or false"
        : t.IsEnum ? $"one of {string.Join(", ", Enum.GetNames(t))}"
        : t == typeof(TimeSpan) ? "a time span (hh:mm:ss)"
        : $"a {t.Name}";
}
