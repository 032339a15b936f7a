using System.CommandLine;
using System.Text.Json;
using NextFlowRL.Hosting;
using NextFlowRL.Plugins;
using Spectre.Console;

namespace NextFlowRL.Cli.Commands;

/// <summary><c>nextflow-rl plugins [--format table|json]</c>: every component and every plugin that did not load.</summary>
internal static class PluginsCommand
{
    /// <summary>One listed row.</summary>
    public sealed record Row(string Name, string Kind, string Status, string? Version, string? Reason, string Plugin);

    public static Command Create(CliContext context)
    {
        var format = Formats.Option();
        var command = new Command("plugins", "List rewards and policies provided by plugins, and plugins that failed to load.");
        command.Options.Add(format);
        command.SetAction((parse, _) =>
        {
            var host = context.Host;
            var rows = Rows(host);
            if (parse.GetValue(format) == "json")
            {
                Console.Out.WriteLine(JsonSerializer.Serialize(rows, Formats.Json));
            }
            else
            {
                var table = new Table().AddColumns("name", "kind", "status", "version", "plugin", "reason");
                foreach (var r in rows)
                {
                    var status = r.Status == "loaded" ? "[green]loaded[/]" : $"[red]{r.Status}[/]";
                    table.AddRow(Markup.Escape(r.Name), r.Kind, status, Markup.Escape(r.Version ?? ""), Markup.Escape(r.Plugin), Markup.Escape(r.Reason ?? ""));
                }
                AnsiConsole.Write(table);
            }
            foreach (var problem in host.ValidateOptions())
                Console.Error.WriteLine($"nextflow-rl: warning: configuration: {problem}");
            return Task.FromResult(Cli.Ok);
        });
        return command;
    }

    /// <summary>One row per component of a loaded plugin, and one per plugin that is not loaded.</summary>
    public static IReadOnlyList<Row> Rows(NextFlowRLHost host)
    {
        var rows = new List<Row>();
        foreach (var p in host.Plugins)
        {
            if (p.Status == PluginStatus.Loaded)
            {
                rows.AddRange(p.Components.Select(c => new Row(c.Name, Kind(c.Kind), "loaded", p.Version, null, p.Name)));
            }
            else
            {
                rows.Add(new Row(p.Name, GuessKind(p.Name), p.Status.ToString().ToLowerInvariant(), p.Version, p.Reason, p.Name));
            }
        }
        return rows;
    }

    private static string Kind(ComponentKind kind) => kind == ComponentKind.Policy ? "policy" : "reward";

    /// <summary>A plugin that did not load declared nothing; its folder name (…Policies.… or …Rewards.…) tells its kind.</summary>
    private static string GuessKind(string pluginName) =>
        pluginName.Contains("Polic", StringComparison.OrdinalIgnoreCase) ? "policy" : "reward";
}
