using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace NextFlowRL.Cli.Commands;

/// <summary>Shared output options.</summary>
internal static class Formats
{
    public static Option<string> Option()
    {
        var option = new Option<string>("--format") { Description = "Output format: table or json.", DefaultValueFactory = _ => "table" };
        option.AcceptOnlyFromAmong("table", "json");
        return option;
    }

    /// <summary>JSON for machine-read output: camelCase, indented, non-finite numbers as null.</summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };
}
