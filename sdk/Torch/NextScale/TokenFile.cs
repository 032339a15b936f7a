using System.Text.Json;
using System.Text.Json.Nodes;
using NextFlowRL.Imaging;
using NextFlowRL.Policies;
using static TorchSharp.torch;

namespace NextFlowRL.Torch.NextScale;

/// <summary>
/// Token files: complete or partial trajectories as JSON,
/// <c>{"schedule": [[h, w], ...], "rows": [{"prompt": "...", "scales": [[row-major ints], ...]}]}</c>. Every row has
/// the same number of scales (a prefix of the schedule); each scale's list has <c>h * w</c> entries.
/// </summary>
public static class TokenFile
{
    /// <summary>Reads a token file; the trajectories are CPU int64 tensors.</summary>
    /// <exception cref="InvalidDataException">Missing file, malformed JSON, or rows that do not fit the schedule (the message says where).</exception>
    public static (ScaleSchedule Schedule, TokenTrajectories Trajectories) Read(string path)
    {
        if (!File.Exists(path)) throw new InvalidDataException($"{path}: token file not found");
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})");
        }
        try
        {
            var schedule = new ScaleSchedule((root?["schedule"]?.AsArray() ?? throw new InvalidDataException($"{path}: no \"schedule\""))
                .Select(s => new ScaleShape(s![0]!.GetValue<int>(), s[1]!.GetValue<int>())));
            var rows = root["rows"]?.AsArray() ?? throw new InvalidDataException($"{path}: no \"rows\"");
            if (rows.Count == 0) throw new InvalidDataException($"{path}: no rows");
            var prompts = new List<string>();
            int length = -1;
            var data = new List<long[]>[schedule.Count];
            for (int k = 0; k < schedule.Count; k++) data[k] = [];
            for (int r = 0; r < rows.Count; r++)
            {
                var row = rows[r] ?? throw new InvalidDataException($"{path}: row {r} is null");
                prompts.Add(row["prompt"]?.GetValue<string>() ?? "");
                var scales = row["scales"]?.AsArray() ?? throw new InvalidDataException($"{path}: row {r} has no \"scales\"");
                if (length < 0) length = scales.Count;
                if (scales.Count != length || length > schedule.Count || length == 0)
                    throw new InvalidDataException($"{path}: row {r} has {scales.Count} scales; every row needs the same number, 1..{schedule.Count}");
                for (int k = 0; k < length; k++)
                {
                    var values = scales[k]!.AsArray().Select(v => v!.GetValue<long>()).ToArray();
                    if (values.Length != schedule[k].Tokens)
                        throw new InvalidDataException($"{path}: row {r} scale {k} has {values.Length} tokens; the {schedule[k]} grid needs {schedule[k].Tokens}");
                    data[k].Add(values);
                }
            }
            var grids = Enumerable.Range(0, length)
                .Select(k => tensor(data[k].SelectMany(v => v).ToArray(), [rows.Count, schedule[k].Height, schedule[k].Width]))
                .ToList();
            return (schedule, new TokenTrajectories(prompts, grids));
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException or NullReferenceException or IndexOutOfRangeException)
        {
            throw new InvalidDataException($"{path}: not a token file ({e.Message})");
        }
    }

    /// <summary>Writes trajectories as a token file, atomically.</summary>
    public static void Write(string path, ScaleSchedule schedule, TokenTrajectories trajectories)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        ArgumentNullException.ThrowIfNull(trajectories);
        using var scope = NewDisposeScope();
        var grids = trajectories.Grids.Select(g => g.to(ScalarType.Int64).cpu().contiguous().data<long>().ToArray()).ToArray();
        var rows = new JsonArray();
        for (int r = 0; r < trajectories.Count; r++)
        {
            var scales = new JsonArray();
            for (int k = 0; k < grids.Length; k++)
            {
                int n = schedule[k].Tokens;
                scales.Add(new JsonArray(grids[k].Skip(r * n).Take(n).Select(v => (JsonNode)JsonValue.Create(v)).ToArray()));
            }
            rows.Add(new JsonObject { ["prompt"] = trajectories.Prompts[r], ["scales"] = scales });
        }
        var root = new JsonObject
        {
            ["schedule"] = new JsonArray(schedule.Select(s => (JsonNode)new JsonArray(s.Height, s.Width)).ToArray()),
            ["rows"] = rows,
        };
        AtomicFile.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = false }) + "\n");
    }
}
