using NextFlowRL.Torch.Checkpoints;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using NextFlowRL.Hosting;
using NextFlowRL.Imaging;
using NextFlowRL.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace NextFlowRL.Rewards.Clip.Tests;

[Collection(TorchCollection.Name)]
public sealed class ModelTests
{
    private static RewardSample[] Samples() =>
    [
        new(TinyModels.Picture(16, 16, 1), "hello world"),
        new(TinyModels.Picture(40, 24, 2), "cat"),
        new(TinyModels.Picture(24, 40, 3), "hello cat!"),
    ];

    [Fact]
    public void Hugging_face_layout_uses_upstream_key_names()
    {
        using var m = new HfClipModel(ClipConfigReader.ReadHuggingFace(WriteConfig(TinyModels.HfConfig())));
        var keys = m.named_parameters().Select(p => p.name).ToHashSet();
        foreach (var k in new[]
        {
            "text_model.embeddings.token_embedding.weight", "text_model.embeddings.position_embedding.weight",
            "text_model.encoder.layers.0.self_attn.q_proj.weight", "text_model.encoder.layers.1.mlp.fc2.bias",
            "text_model.final_layer_norm.weight", "vision_model.embeddings.patch_embedding.weight",
            "vision_model.embeddings.class_embedding", "vision_model.pre_layrnorm.weight", "vision_model.post_layernorm.bias",
            "vision_model.encoder.layers.1.layer_norm2.weight", "visual_projection.weight", "text_projection.weight", "logit_scale",
        })
        {
            Assert.Contains(k, keys);
        }
        Assert.DoesNotContain("visual_projection.bias", keys);
        Assert.DoesNotContain("vision_model.embeddings.patch_embedding.bias", keys);
    }

    [Fact]
    public void Open_clip_layout_uses_upstream_key_names()
    {
        var dir = TinyModels.OpenClip();
        var (arch, _, _) = ClipConfigReader.ReadOpenClip(Path.Combine(dir, "open_clip_config.json"));
        Assert.Equal(4, arch.Vision.Heads); // width 32 / head_width 8
        Assert.Equal(ClipActivation.Gelu, arch.Vision.Activation);
        using var m = new OpenClipModel(arch);
        var keys = m.named_parameters().Select(p => p.name).ToHashSet();
        foreach (var k in new[]
        {
            "visual.conv1.weight", "visual.class_embedding", "visual.positional_embedding", "visual.ln_pre.weight",
            "visual.transformer.resblocks.1.attn.in_proj_weight", "visual.transformer.resblocks.0.attn.in_proj_bias",
            "visual.transformer.resblocks.0.attn.out_proj.weight", "visual.transformer.resblocks.0.mlp.c_fc.weight",
            "visual.transformer.resblocks.0.mlp.c_proj.bias", "visual.ln_post.bias", "visual.proj", "token_embedding.weight",
            "positional_embedding", "transformer.resblocks.1.ln_1.weight", "ln_final.weight", "text_projection", "logit_scale",
        })
        {
            Assert.Contains(k, keys);
        }
        Assert.Equal(new long[] { 32, 16 }, m.named_parameters().Single(p => p.name == "visual.proj").parameter.shape);
    }

    [Fact]
    public void Weights_round_trip_through_the_public_loader()
    {
        var dir = TinyModels.HuggingFace(seed: 7);
        using var scorer = ClipScorer.LoadHuggingFace(dir);
        var copy = Path.Combine(dir, "copy.safetensors");
        scorer.SaveWeights(copy);
        var original = StateDictFile.Read(Path.Combine(dir, "model.safetensors"));
        var saved = StateDictFile.Read(copy);
        Assert.Equal(original.Count - 1, saved.Count); // all but position_ids, which is not a parameter
        foreach (var (k, t) in saved)
            Assert.True(t.equal(original[k]).all().item<bool>(), k);
        // Loading the copy again gives identical scores.
        File.Move(copy, Path.Combine(dir, "model.safetensors"), overwrite: true);
        using var again = ClipScorer.LoadHuggingFace(dir);
        var images = Samples().Select(s => s.Image).ToList();
        var texts = Samples().Select(s => s.Prompt).ToList();
        Assert.Equal(scorer.Cosine(images, texts), again.Cosine(images, texts));
    }

    [Fact]
    public void Half_precision_weights_load_as_float()
    {
        var dir = TinyModels.HuggingFace(seed: 3);
        var path = Path.Combine(dir, "model.safetensors");
        var tensors = StateDictFile.Read(path);
        var header = new Dictionary<string, object>();
        using var ms = new MemoryStream();
        long offset = 0;
        foreach (var (k, t) in tensors.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            bool f = t.dtype == ScalarType.Float32;
            byte[] bytes = f
                ? t.data<float>().ToArray().SelectMany(v => BitConverter.GetBytes((Half)v)).ToArray()
                : t.data<long>().ToArray().SelectMany(BitConverter.GetBytes).ToArray();
            header[k] = new { dtype = f ? "F16" : "I64", shape = t.shape, data_offsets = new[] { offset, offset + bytes.Length } };
            ms.Write(bytes);
            offset += bytes.Length;
        }
        var h = JsonSerializer.SerializeToUtf8Bytes(header);
        using (var fs = File.Create(path))
        {
            fs.Write(BitConverter.GetBytes((ulong)h.Length));
            fs.Write(h);
            ms.Position = 0;
            ms.CopyTo(fs);
        }
        var reloaded = StateDictFile.Read(path);
        var key = "text_projection.weight";
        Assert.Equal(ScalarType.Float32, reloaded[key].dtype);
        Assert.True(reloaded[key].allclose(tensors[key], rtol: 1e-3, atol: 1e-3));
        using var scorer = ClipScorer.LoadHuggingFace(dir);
        Assert.Equal(ClipLayout.HuggingFace, scorer.Layout);
    }

    [Fact]
    public async Task Identical_embeddings_score_cosine_one_and_opposite_ones_clip_at_zero()
    {
        // Pooled features become the layer-norm biases when the norm weights are zero; equal biases and equal
        // projections make image and text embeddings identical for every input.
        static void Same(Dictionary<string, Tensor> t, bool opposite)
        {
            var bias = torch.linspace(-1, 1, 32);
            t["vision_model.post_layernorm.weight"] = torch.zeros(32);
            t["vision_model.post_layernorm.bias"] = bias;
            t["text_model.final_layer_norm.weight"] = torch.zeros(32);
            t["text_model.final_layer_norm.bias"] = bias;
            t["text_projection.weight"] = opposite ? -t["visual_projection.weight"] : t["visual_projection.weight"].clone();
        }
        var same = TinyModels.HuggingFace(edit: t => Same(t, false));
        var opposite = TinyModels.HuggingFace(edit: t => Same(t, true));
        using var clipSame = new ClipReward("clip", new ClipRewardOptions { ModelPath = same });
        using var clipOpposite = new ClipReward("clip", new ClipRewardOptions { ModelPath = opposite });
        var s = await clipSame.ScoreAsync(Samples());
        var o = await clipOpposite.ScoreAsync(Samples());
        Assert.All(s, r => Assert.Equal(1.0, r.Components["cosine"], 5));
        Assert.All(s, r => Assert.Equal(2.5, r.Score, 4));
        Assert.All(o, r => Assert.Equal(-1.0, r.Components["cosine"], 5));
        Assert.All(o, r => Assert.Equal(0.0, r.Score));
    }

    [Fact]
    public async Task Clip_scores_are_scaled_clipped_cosines_with_the_prefix()
    {
        var dir = TinyModels.HuggingFace(seed: 11);
        using var reward = new ClipReward("clip", new ClipRewardOptions { ModelPath = dir, BatchSize = 2 });
        var results = await reward.ScoreAsync(Samples());
        var cos = reward.Scorer.Cosine(Samples().Select(s => s.Image).ToList(), Samples().Select(s => "A photo depicts " + s.Prompt).ToList(), batchSize: 3);
        for (int i = 0; i < cos.Length; i++)
        {
            Assert.Equal(cos[i], results[i].Components["cosine"], 6); // batching does not change results
            Assert.Equal(2.5 * Math.Max(cos[i], 0), results[i].Score, 6);
        }
        // Without the prefix the text (and so the cosine) differs.
        using var bare = new ClipReward("clip", new ClipRewardOptions { ModelPath = dir, TextPrefix = "", Scale = 1 });
        var bareResults = await bare.ScoreAsync(Samples());
        Assert.NotEqual(results[0].Components["cosine"], bareResults[0].Components["cosine"]);
    }

    [Fact]
    public async Task Scores_of_fixed_random_weights_match_the_snapshot()
    {
        using var clip = new ClipReward("clip", new ClipRewardOptions { ModelPath = TinyModels.HuggingFace(seed: 42) });
        using var hps = new HpsReward("hps", new HpsRewardOptions { ModelPath = TinyModels.OpenClip(seed: 43) });
        var c = await clip.ScoreAsync(Samples());
        var h = await hps.ScoreAsync(Samples());
        // Rounded to 4 decimals so that float summation order on other CPUs cannot flip the last digit.
        static double R(double x) => Math.Round(x, 4);
        Snapshots.Match(new
        {
            clip = c.Select(r => new { Score = R(r.Score), cosine = R(r.Components["cosine"]) }),
            hps = h.Select(r => new { Score = R(r.Score), cosine = R(r.Components["cosine"]) }),
        });
    }

    [Fact]
    public void Differentiable_path_matches_the_batched_scores_and_gives_image_gradients()
    {
        var dir = TinyModels.HuggingFace(seed: 5);
        using var reward = new ClipReward("clip", new ClipRewardOptions { ModelPath = dir, Scale = 1, TextPrefix = "" });
        var image = TinyModels.Picture(16, 16, 2);
        var expected = reward.Scorer.Cosine([image], ["hello"])[0];
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(image.Pixels.ToArray().Select(b => b / 255f).ToArray(), new long[] { 1, 16, 16, 3 }).permute(0, 3, 1, 2).contiguous();
        x.requires_grad = true;
        var score = reward.ScoreTensor(x, ["hello"]);
        Assert.Equal(Math.Max(expected, 0), score.item<float>(), 4);
        // A positive cosine has a non-zero gradient; parameters stay frozen.
        var cosine = reward.Scorer.CosineTensor(x, ["hello"]);
        cosine.sum().backward();
        Assert.True(x.grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public async Task Hps_scores_are_cosines_of_the_open_clip_model()
    {
        var dir = TinyModels.OpenClip(seed: 9);
        using var hps = new HpsReward("hps", new HpsRewardOptions { ModelPath = dir });
        var results = await hps.ScoreAsync(Samples());
        Assert.All(results, r => Assert.Equal(r.Components["cosine"], r.Score));
        Assert.All(results, r => Assert.InRange(r.Score, -1.0, 1.0));
        Assert.Equal(ClipLayout.OpenClip, hps.Scorer.Layout);
        Assert.Equal(3, results.Select(r => r.Score).Distinct().Count());
    }

    [Fact]
    public async Task Missing_folder_and_missing_files_are_named()
    {
        using var none = new ClipReward("clip", new ClipRewardOptions());
        var e0 = await Assert.ThrowsAsync<ClipModelException>(() => none.ScoreAsync(Samples()));
        Assert.Equal("clip: no model folder given (set ModelPath)", e0.Message);

        var missingDir = Path.Combine(Path.GetTempPath(), "nextflowrl-clip-tests", "does-not-exist");
        using var absent = new ClipReward("clip", new ClipRewardOptions { ModelPath = missingDir });
        var e1 = await Assert.ThrowsAsync<ClipModelException>(() => absent.ScoreAsync(Samples()));
        Assert.Contains("does-not-exist does not exist", e1.Message);

        var dir = TinyModels.HuggingFace();
        File.Delete(Path.Combine(dir, "vocab.json"));
        File.Move(Path.Combine(dir, "model.safetensors"), Path.Combine(dir, "pytorch_model.bin"));
        var e2 = Assert.Throws<ClipModelException>(() => ClipScorer.LoadHuggingFace(dir));
        Assert.Contains("is missing model.safetensors, vocab.json", e2.Message);
        Assert.Contains("convert them to safetensors", e2.Message);

        var oc = TinyModels.OpenClip();
        File.Delete(Path.Combine(oc, "open_clip_config.json"));
        var e3 = Assert.Throws<ClipModelException>(() => ClipScorer.LoadOpenClip(oc));
        Assert.Contains("is missing open_clip_config.json", e3.Message);
    }

    [Fact]
    public void Config_and_tokenizer_mismatch_is_one_clear_error()
    {
        var dir = TinyModels.HuggingFace();
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(TinyModels.HfConfig(vocabSize: 50)));
        var e = Assert.Throws<ClipModelException>(() => ClipScorer.LoadHuggingFace(dir));
        Assert.Contains("vocab.json has token ids up to 72 but config.json says the text vocabulary has 50 entries", e.Message);
    }

    [Fact]
    public void Config_and_weights_mismatch_names_the_tensor()
    {
        var dir = TinyModels.HuggingFace();
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(TinyModels.HfConfig(textHidden: 64)));
        var e = Assert.Throws<ClipModelException>(() => ClipScorer.LoadHuggingFace(dir));
        Assert.Contains("model.safetensors does not match the model config", e.Message);
        Assert.Contains("text_model.embeddings.token_embedding.weight is [128, 32] but the config needs [128, 64]", e.Message);

        var missing = TinyModels.HuggingFace(edit: t => t.Remove("text_model.encoder.layers.1.mlp.fc1.weight"));
        var e2 = Assert.Throws<ClipModelException>(() => ClipScorer.LoadHuggingFace(missing));
        Assert.Contains("1 missing tensor(s): text_model.encoder.layers.1.mlp.fc1.weight", e2.Message);
    }

    [Fact]
    public async Task An_unusable_device_is_one_clear_error_and_is_remembered()
    {
        using var reward = new ClipReward("clip", new ClipRewardOptions { ModelPath = TinyModels.HuggingFace(), Device = "no-such-device" });
        var e1 = await Assert.ThrowsAsync<ClipModelException>(() => reward.ScoreAsync(Samples()));
        Assert.StartsWith("clip: cannot load the model on 'no-such-device': ", e1.Message);
        var e2 = await Assert.ThrowsAsync<ClipModelException>(() => reward.ScoreAsync(Samples()));
        Assert.Equal(e1.Message, e2.Message);
    }

    [Fact]
    public void A_corrupt_weights_file_is_one_clear_error()
    {
        var dir = TinyModels.HuggingFace();
        File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), [1, 2, 3]);
        var e = Assert.Throws<ClipModelException>(() => ClipScorer.LoadHuggingFace(dir));
        Assert.Contains("model.safetensors is not a safetensors file", e.Message);
    }

    [Fact]
    public async Task The_plugin_loads_in_the_host_and_scores_like_the_library()
    {
        var dir = TinyModels.HuggingFace(seed: 21);
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Rewards:clip:ModelPath"] = dir,
            ["Rewards:clip:BatchSize"] = "2",
            ["Rewards:hps:ModelPath"] = TinyModels.OpenClip(seed: 22),
        }).Build();
        using var host = NextFlowRLHost.Build(config, pluginDirectories: [Repo.PathOf("artifacts", "plugins")]);
        var report = host.Plugins.Single(p => p.Name == "NextFlowRL.Rewards.Clip");
        Assert.Equal(PluginStatus.Loaded, report.Status);
        Assert.Equal(new[] { "clip", "hps" }, report.Components.Select(c => c.Name).Order());
        // Other engineers' plugins in artifacts/plugins are loaded too; only this plugin's options are checked.
        Assert.DoesNotContain(host.ValidateOptions(), e => e.StartsWith("[clip]", StringComparison.Ordinal) || e.StartsWith("[hps]", StringComparison.Ordinal));
        var viaHost = await host.GetReward("clip").ScoreAsync(Samples());
        using var direct = new ClipReward("clip", new ClipRewardOptions { ModelPath = dir });
        var expected = await direct.ScoreAsync(Samples());
        Assert.Equal(expected.Select(r => r.Score), viaHost.Select(r => r.Score));
        var hps = await host.GetReward("hps").ScoreAsync(Samples());
        Assert.Equal(3, hps.Count);
    }

    private static string WriteConfig(object config)
    {
        var dir = TinyModels.NewFolder("cfg");
        var path = Path.Combine(dir, "config.json");
        File.WriteAllText(path, JsonSerializer.Serialize(config));
        return path;
    }
}
