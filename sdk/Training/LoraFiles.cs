using System.Text.Json;

namespace NextFlowRL.Training;

/// <summary>The files of a LoRA checkpoint.</summary>
public static class LoraFiles
{
    /// <summary>The adapters (safetensors: <c>&lt;layer&gt;.lora_A</c>, <c>&lt;layer&gt;.lora_B</c>).</summary>
    public const string Adapters = "adapters.safetensors";

    /// <summary>Rank, alpha and the adapted layers (JSON), read by resume and by <c>nextflow-rl policy merge</c>.</summary>
    public const string Description = "adapters.json";

    /// <summary>What <see cref="Description"/> holds.</summary>
    public sealed record Info(int Rank, double Alpha, IReadOnlyList<string> Layers);

    /// <summary>Reads <see cref="Description"/> from a checkpoint directory.</summary>
    /// <exception cref="InvalidDataException">The file is missing or malformed.</exception>
    public static Info Read(string directory)
    {
        var path = Path.Combine(directory, Description);
        if (!File.Exists(path)) throw new InvalidDataException($"{directory} is not a LoRA checkpoint ({Description} missing)");
        try
        {
            return JsonSerializer.Deserialize<Info>(File.ReadAllText(path)) ?? throw new InvalidDataException($"{path} is empty");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }
}
