using NextFlowRL.Torch.Checkpoints;
using System.Text.Json;
using NextFlowRL.Imaging;
using TorchSharp;
using static TorchSharp.torch;

namespace NextFlowRL.Rewards.Clip.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchCollection
{
    public const string Name = "torch";
}

/// <summary>Tiny random CLIP model folders in the Hugging Face and OpenCLIP layouts, written like real ones.</summary>
internal static class TinyModels
{
    // A small CLIP-style vocabulary: single symbols (plain and word-final) for a-z and some punctuation, the merge
    // products below, then the two special tokens.
    public static readonly string[] Merges =
    [
        "#version: 0.2",
        "h e", "l l", "l o</w>", "he ll", "hell o</w>", "w o", "r l", "rl d</w>", "wo rld</w>",
        "c a", "ca t</w>",
    ];

    public static Dictionary<string, int> Vocabulary()
    {
        var symbols = "abcdefghijklmnopqrstuvwxyz!'.,".Select(c => c.ToString()).ToList();
        var tokens = new List<string>();
        tokens.AddRange(symbols);
        tokens.AddRange(symbols.Select(s => s + "</w>"));
        foreach (var m in Merges.Skip(1)) tokens.Add(m.Replace(" ", "", StringComparison.Ordinal));
        tokens.Add("<|startoftext|>");
        tokens.Add("<|endoftext|>");
        return tokens.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i);
    }

    public static ClipTokenizer Tokenizer() => ClipTokenizer.FromData(Vocabulary(), Merges);

    private static readonly Lazy<string> Root = new(() =>
    {
        var root = Path.Combine(Path.GetTempPath(), "nextflowrl-clip-tests", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };
        return root;
    });

    /// <summary>A new folder under this test process's temporary root (deleted when the process exits).</summary>
    public static string NewFolder(string name)
    {
        var dir = Path.Combine(Root.Value, name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static void WriteTokenizer(string dir)
    {
        File.WriteAllText(Path.Combine(dir, "vocab.json"), JsonSerializer.Serialize(Vocabulary()));
        File.WriteAllLines(Path.Combine(dir, "merges.txt"), Merges);
    }

    /// <summary>HF config.json of a tiny CLIP (vocab just large enough, context 16, 16x16 images, patch 8).</summary>
    public static object HfConfig(int vocabSize = 128, int textHidden = 32) => new
    {
        architectures = new[] { "CLIPModel" },
        model_type = "clip",
        projection_dim = 16,
        text_config = new { hidden_size = textHidden, intermediate_size = 64, num_attention_heads = 4, num_hidden_layers = 2, max_position_embeddings = 16, vocab_size = vocabSize, hidden_act = "quick_gelu", layer_norm_eps = 1e-5 },
        vision_config = new { hidden_size = 32, intermediate_size = 64, num_attention_heads = 4, num_hidden_layers = 2, image_size = 16, patch_size = 8, hidden_act = "quick_gelu", layer_norm_eps = 1e-5 },
    };

    /// <summary>Writes a tiny HF CLIP folder with weights from <paramref name="seed"/>; <paramref name="edit"/> may change tensors before saving.</summary>
    public static string HuggingFace(int seed = 1, Action<Dictionary<string, Tensor>>? edit = null, bool preprocessor = true)
    {
        var dir = NewFolder("hf");
        var config = HfConfig();
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(config));
        if (preprocessor)
        {
            File.WriteAllText(Path.Combine(dir, "preprocessor_config.json"), JsonSerializer.Serialize(new
            {
                crop_size = new { height = 16, width = 16 },
                do_center_crop = true,
                image_mean = new[] { 0.48145466, 0.4578275, 0.40821073 },
                image_std = new[] { 0.26862954, 0.26130258, 0.27577711 },
                resample = 3,
                size = new { shortest_edge = 16 },
            }));
        }
        WriteTokenizer(dir);
        torch.manual_seed(seed);
        using var model = new HfClipModel(ClipConfigReader.ReadHuggingFace(Path.Combine(dir, "config.json")));
        var tensors = model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter.detach().clone());
        tensors["text_model.embeddings.position_ids"] = torch.arange(16).unsqueeze(0); // present in real checkpoints
        edit?.Invoke(tensors);
        StateDictFile.WriteSafetensors(Path.Combine(dir, "model.safetensors"), tensors);
        return dir;
    }

    /// <summary>Writes a tiny OpenCLIP folder (open_clip_config.json + open_clip_model.safetensors + tokenizer).</summary>
    public static string OpenClip(int seed = 2, Action<Dictionary<string, Tensor>>? edit = null)
    {
        var dir = NewFolder("oc");
        File.WriteAllText(Path.Combine(dir, "open_clip_config.json"), JsonSerializer.Serialize(new
        {
            model_cfg = new
            {
                embed_dim = 16,
                vision_cfg = new { image_size = 16, layers = 2, width = 32, head_width = 8, patch_size = 8 },
                text_cfg = new { context_length = 16, vocab_size = 128, width = 32, heads = 4, layers = 2 },
            },
            preprocess_cfg = new { mean = new[] { 0.48145466, 0.4578275, 0.40821073 }, std = new[] { 0.26862954, 0.26130258, 0.27577711 } },
        }));
        WriteTokenizer(dir);
        torch.manual_seed(seed);
        var (arch, _, _) = ClipConfigReader.ReadOpenClip(Path.Combine(dir, "open_clip_config.json"));
        using var model = new OpenClipModel(arch);
        var tensors = model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter.detach().clone());
        edit?.Invoke(tensors);
        StateDictFile.WriteSafetensors(Path.Combine(dir, "open_clip_model.safetensors"), tensors);
        return dir;
    }

    /// <summary>A deterministic test image: a gradient with a coloured square.</summary>
    public static RgbImage Picture(int width, int height, int variant)
    {
        var px = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                int o = (y * width + x) * 3;
                bool square = x > width / 4 && x < width * 3 / 4 && y > height / 4 && y < height * 3 / 4;
                px[o] = (byte)(square ? 40 * variant : x * 255 / width);
                px[o + 1] = (byte)(y * 255 / height);
                px[o + 2] = (byte)(square ? 255 - 60 * variant : 128);
            }
        }
        return new RgbImage(width, height, px);
    }
}
