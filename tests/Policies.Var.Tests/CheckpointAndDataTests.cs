using NextFlowRL.Torch.Checkpoints;
using NextFlowRL.Torch.Imaging;
using System.Text;
using NextFlowRL.Imaging;
using NextFlowRL.Policies;
using NextFlowRL.Policies.Var;
using NextFlowRL.Policies.Var.Commands;
using NextFlowRL.Policies.Var.Data;
using NextFlowRL.Policies.Var.Model;
using NextFlowRL.Policies.Var.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace NextFlowRL.Policies.Var.Tests;

[Collection("torch")]
public sealed class CheckpointTests
{
    [Fact]
    public void SaveThenLoadGivesTheSameLogProbsAndInfo()
    {
        var dir = Tiny.TempDir();
        using var p = Tiny.Policy(7);
        p.Save(dir);
        Assert.True(File.Exists(Path.Combine(dir, "config.json")));
        using var q = new VarPolicyProvider("var", new VarPolicyOptions()).Load(dir);
        using var t = p.Sample(Tiny.Prompts, SamplingOptions.Plain(2));
        var a = p.LogProbs(t, 0, 4);
        var b = q.LogProbs(t, 0, 4);
        for (int k = 0; k < 4; k++) Assert.True(a[k].allclose(b[k], rtol: 0, atol: 1e-6));
        Assert.Equal(p.Info.Parameters, q.Info.Parameters);
        Assert.Equal("tiny-test", q.Info.Model);
        Assert.Equal(p.Schedule.ToString(), q.Schedule.ToString());
        Assert.Empty(Directory.GetFiles(dir, "*.tmp*"));
    }

    private static string Saved(out VarPolicy policy)
    {
        var dir = Tiny.TempDir();
        policy = Tiny.Policy(1);
        policy.Save(dir);
        return dir;
    }

    private static void Rewrite(string dir, Func<Dictionary<string, Tensor>, IEnumerable<KeyValuePair<string, Tensor>>> edit)
    {
        var path = Path.Combine(dir, VarModel.WeightsFile);
        var tensors = StateDictFile.Read(path);
        StateDictFile.WriteSafetensors(path, edit(tensors).ToList());
    }

    private static string LoadError(string dir) =>
        Assert.Throws<InvalidDataException>(() => new VarPolicyProvider("var", new VarPolicyOptions()).Load(dir).Dispose()).Message;

    [Fact]
    public void MissingTensorIsRejectedByName()
    {
        var dir = Saved(out var p);
        p.Dispose();
        Rewrite(dir, t => t.Where(kv => kv.Key != "generator.head.weight"));
        Assert.Contains("missing tensors: head.weight", LoadError(dir));
    }

    [Fact]
    public void ExtraTensorIsRejectedByName()
    {
        var dir = Saved(out var p);
        p.Dispose();
        Rewrite(dir, t => t.Append(KeyValuePair.Create("generator.surprise", zeros(2))));
        Assert.Contains("unexpected tensors: surprise", LoadError(dir));
    }

    [Fact]
    public void MisShapedTensorIsRejectedWithBothShapes()
    {
        var dir = Saved(out var p);
        p.Dispose();
        Rewrite(dir, t => t.Select(kv => kv.Key == "generator.head.bias" ? KeyValuePair.Create(kv.Key, zeros(3)) : kv));
        var msg = LoadError(dir);
        Assert.Contains("mis-shaped tensors: head.bias (expected [16], found [3])", msg);
    }

    [Fact]
    public void ConfigThatDoesNotMatchTheWeightsIsRejected()
    {
        var dir = Saved(out var p);
        p.Dispose();
        File.WriteAllText(Path.Combine(dir, "config.json"), Tiny.Config(dim: 32).ToJson());
        Assert.Contains("mis-shaped", LoadError(dir));
    }

    [Theory]
    [InlineData("truncated")]
    [InlineData("garbage")]
    [InlineData("empty")]
    [InlineData("badjson")]
    public void CorruptWeightsFileIsRejected(string kind)
    {
        var dir = Saved(out var p);
        p.Dispose();
        var path = Path.Combine(dir, VarModel.WeightsFile);
        var bytes = File.ReadAllBytes(path);
        switch (kind)
        {
            case "truncated": File.WriteAllBytes(path, bytes[..(bytes.Length - 100)]); break;
            case "garbage": File.WriteAllBytes(path, Encoding.ASCII.GetBytes("this is not a safetensors file at all")); break;
            case "empty": File.WriteAllBytes(path, []); break;
            case "badjson": Array.Copy(Encoding.ASCII.GetBytes("{{{{"), 0, bytes, 8, 4); File.WriteAllBytes(path, bytes); break;
        }
        var msg = LoadError(dir);
        Assert.Contains(VarModel.WeightsFile, msg);
        Assert.Contains("corrupt", msg);
    }

    [Fact]
    public void MissingDirectoryAndBadConfigAreClearErrors()
    {
        Assert.Contains("not found", LoadError(Path.Combine(Path.GetTempPath(), "no-such-var-model")));
        var dir = Saved(out var p);
        p.Dispose();
        File.WriteAllText(Path.Combine(dir, "config.json"), "{ not json");
        Assert.Contains("invalid model config JSON", LoadError(dir));
    }
}

[Collection("torch")]
public sealed class TokenizerTests
{
    [Fact]
    public void QuantizeMapsEachCodeToItself()
    {
        manual_seed(2);
        using var tok = new MultiScaleVqVae(Tiny.Config().Tokenizer);
        var z = tok.Codebook.detach().clone().view(16, 4, 1, 1);
        Assert.True(Tiny.Same(tok.Quantize(z).flatten(), arange(16)));
    }

    [Fact]
    public void EncodeGivesOneGridPerScaleAndDecodeRestoresTheImageShape()
    {
        manual_seed(2);
        using var tok = new MultiScaleVqVae(Tiny.Config().Tokenizer);
        var x = rand(3, 3, 16, 16) * 2 - 1;
        var tokens = tok.Encode(x);
        Assert.Equal(4, tokens.Length);
        int[] sides = [1, 2, 3, 4];
        for (int k = 0; k < 4; k++)
        {
            Assert.Equal(new long[] { 3, sides[k], sides[k] }, tokens[k].shape);
            Assert.True(tokens[k].ge(0).all().item<bool>() && tokens[k].lt(16).all().item<bool>());
        }
        Assert.True(tok.Encode(x).Zip(tokens).All(p => Tiny.Same(p.First, p.Second)));
        var rec = tok.DecodeTokens(tokens);
        Assert.Equal(x.shape, rec.shape);
        Assert.True(rec.le(1).all().item<bool>() && rec.ge(-1).all().item<bool>());
    }

    internal static RgbImage Downscale(RgbImage img)
    {
        var px = new byte[16 * 16 * 3];
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++)
            {
                var (r, g, b) = img[x * 4, y * 4];
                px[(y * 16 + x) * 3] = r;
                px[(y * 16 + x) * 3 + 1] = g;
                px[(y * 16 + x) * 3 + 2] = b;
            }
        return new RgbImage(16, 16, px);
    }

    [Fact]
    public void ImageTensorConversionRoundTrips()
    {
        var img = TextDataset.Render(TextDataset.Draw(new Random(1), ["HELLO"]));
        using var t = ImageTensors.FromImages([img]);
        var back = ImageTensors.ToImages(t)[0];
        Assert.True(img.Pixels.SequenceEqual(back.Pixels));
    }

    [Fact]
    public void ShippedModelReconstructsHeldOutRendersAndLoadsAsDefault()
    {
        var dir = VarPolicyProvider.DefaultModelDirectory;
        Assert.True(File.Exists(Path.Combine(dir, VarModel.WeightsFile)), $"shipped model missing at {dir}");
        using var p = (VarPolicy)new VarPolicyProvider("var", new VarPolicyOptions()).Load(null);
        Assert.Equal("tiny-text", p.Info.Model);
        Assert.Equal(64, p.Info.ImageWidth);
        Assert.True(new FileInfo(Path.Combine(dir, VarModel.WeightsFile)).Length < 30_000_000);
        double mse = Pretrainer.ReconstructionError(p.Model, 5, 16);
        Assert.True(mse < 0.03, $"reconstruction MSE {mse}");
        Assert.True(File.Exists(Path.Combine(dir, "eval_prompts.jsonl")));
        Assert.True(File.Exists(Path.Combine(dir, "train_prompts.jsonl")));
        // Residual quantization: each further scale brings the accumulated features closer to the encoder's.
        var rng = new Random(3);
        using var _g = no_grad();
        var x = ImageTensors.FromImages(Enumerable.Range(0, 8).Select(_ => TextDataset.Render(TextDataset.Draw(rng, WordLists.Default.HeldOut))).ToArray());
        var f = p.Model.Tokenizer.EncodeFeatures(x);
        var tokens = p.Model.Tokenizer.Encode(x);
        var errors = Enumerable.Range(1, tokens.Length).Select(n => (double)(f - p.Model.Tokenizer.AccumulatedFeatures(tokens.Take(n).ToList())).pow(2).mean().item<float>()).ToArray();
        Assert.True(errors[^1] < errors[0] * 0.5, $"feature residual per scale count: {string.Join(", ", errors)}");
    }
}

[Collection("torch")]
public sealed class PretrainingTests
{
    [Theory]
    [InlineData("patch")]
    [InlineData("linear")]
    public void TwoStepPretrainingWritesResumableCheckpointsThatLoadAsAPolicy(string architecture)
    {
        var root = Tiny.TempDir();
        var cfg = Tiny.Config() with { Tokenizer = Tiny.Config().Tokenizer with { ImageSize = 64, Downsamples = 4, Architecture = architecture } };
        var log = new StringWriter();
        var tokDir = Path.Combine(root, "tok");
        var o = new PretrainOptions { OutDir = tokDir, Steps = 2, Batch = 2, Warmup = 1, CheckpointEvery = 1, Config = cfg, Threads = 0 };
        double mse = Pretrainer.TrainTokenizer(o, log);
        Assert.True(mse is > 0 and < 1);
        Assert.Contains(architecture == "linear" ? "tokenizer k-means [########################] 2/2" : "tokenizer [########################] 2/2", log.ToString());
        var genDir = Path.Combine(root, "gen");
        var go = o with { OutDir = genDir, TokenizerCheckpoint = tokDir };
        double loss = Pretrainer.TrainGenerator(go, log);
        Assert.True(double.IsFinite(loss));
        Assert.Contains("\"Step\":2", File.ReadAllText(Path.Combine(genDir, "trainer_state.json")));
        Assert.Contains("generator [########################] 2/2", log.ToString());
        // Resume to step 3 from the checkpoint, shown on the display the host gives.
        var display = new RecordingDisplay();
        Pretrainer.TrainGenerator(go with { Steps = 3, TokenizerCheckpoint = null }, log, display);
        Assert.Contains("\"Step\":3", File.ReadAllText(Path.Combine(genDir, "trainer_state.json")));
        Assert.Equal(("generator (from step 2)", 1, "steps"), Assert.Single(display.Started));
        Assert.StartsWith("loss ", Assert.Single(display.Details));
        Assert.True(display.Disposed);
        using var policy = new VarPolicyProvider("var", new VarPolicyOptions { Checkpoint = genDir }).Load(null);
        using var t = policy.Sample(["'ABC'"], SamplingOptions.Plain(1));
        Assert.Equal(64, policy.Decode(t)[0].Width);
        // The tokenizer was frozen in the generator stage.
        using var tokPolicy = new VarPolicyProvider("var", new VarPolicyOptions()).Load(tokDir);
        var a = ((VarPolicy)tokPolicy).Model.Tokenizer.Codebook;
        var b = ((VarPolicy)policy).Model.Tokenizer.Codebook;
        Assert.True(Tiny.Same(a, b));
        // --init: a fresh run (step 0, new optimizer) that starts from the trained model's weights.
        var initDir = Path.Combine(root, "init");
        var io = go with { OutDir = initDir, TokenizerCheckpoint = null, InitCheckpoint = genDir, Steps = 1, LearningRate = 1e-7 };
        Pretrainer.TrainGenerator(io, log);
        Assert.Contains($"starting from the weights of {genDir}", log.ToString());
        Assert.Contains("\"Step\":1", File.ReadAllText(Path.Combine(initDir, "trainer_state.json")));
        using var continued = new VarPolicyProvider("var", new VarPolicyOptions()).Load(initDir);
        var before = ((VarPolicy)policy).Model.Generator.state_dict();
        var after = ((VarPolicy)continued).Model.Generator.state_dict();
        // One step at lr 1e-7 moves the weights by about 1e-7: they are the trained ones, not a new initialization.
        Assert.All(before.Keys, k => Assert.True((before[k] - after[k]).abs().max().item<float>() < 1e-4, k));
    }

    [Fact]
    public async Task CommandsRejectBadArgumentsWithExitCode2()
    {
        Assert.Equal(2, await new PretrainTokenizerCommand().InvokeAsync(["--steps", "x", "--out", "d"], default));
        Assert.Equal(2, await new PretrainGeneratorCommand().InvokeAsync(["--out", Tiny.TempDir()], default));
        Assert.Equal(2, await new PretrainGeneratorCommand().InvokeAsync(["--out", Tiny.TempDir(), "--init", Tiny.TempDir(), "--dim", "64"], default));
        Assert.Equal(2, await new PretrainGeneratorCommand().InvokeAsync(["--out", Tiny.TempDir(), "--init", Tiny.TempDir()], default));
        Assert.Equal(0, await new ReferenceImagesCommand().InvokeAsync(["--help"], default));
        Assert.Equal(2, await new ReferenceImagesCommand().InvokeAsync(["--out", Tiny.TempDir(), "--source", "model"], default));
    }

    [Fact]
    public void PluginCommandsParseWithSystemCommandLineListingEveryProblem()
    {
        var tokenizer = new PretrainTokenizerCommand().CreateCommand();
        var bad = tokenizer.Parse(["--steps", "0", "--arch", "vit", "--scales", "1,x", "--batch", "y"]);
        var messages = string.Join(" | ", bad.Errors.Select(e => e.Message));
        Assert.Contains("--out", messages); // required
        Assert.Contains("--steps must be an integer in [1, 2147483647], got 0", messages);
        Assert.Contains("vit", messages);
        Assert.Contains("--scales must look like 1,2,4,8,16", messages);
        Assert.Contains("'y'", messages);
        var good = tokenizer.Parse(["--out", "d", "--scales", "1,2x4"]);
        Assert.Empty(good.Errors);
        Assert.Equal([[1, 1], [2, 4]], good.GetValue<int[][]?>("--scales"));
        Assert.Equal(2000, good.GetValue<int>("--steps")); // defaults live in the option
        var prompts = new PromptsCommand().CreateCommand().Parse(["--out", "d", "--ood-per-bin", "0"]);
        Assert.Contains(prompts.Errors, e => e.Message.Contains("--ood-per-bin", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ReferenceImagesComeWithAManifestOfTheirPromptsAndBins()
    {
        var records = TextDataset.EvaluationPrompts(WordLists.Default, 1);
        var dir = Tiny.TempDir();
        var prompts = Path.Combine(dir, "prompts.jsonl");
        TextDataset.WriteJsonl(prompts, records);
        var config = Tiny.Config();
        using var policy = Tiny.Policy(config: config with { Tokenizer = config.Tokenizer with { ImageSize = TextDataset.ImageSize, Downsamples = 4 } });
        var model = Path.Combine(dir, "model");
        policy.Save(model);
        var outDir = Path.Combine(dir, "rec");

        Assert.Equal(0, await new ReferenceImagesCommand().InvokeAsync(["--out", outDir, "--source", "reconstruction", "--checkpoint", model, "--prompts", prompts, "--limit", "3"], default));

        var lines = File.ReadAllLines(Path.Combine(outDir, ReferenceImagesCommand.ManifestFile));
        Assert.Equal(3, lines.Length);
        for (int i = 0; i < 3; i++)
        {
            using var line = System.Text.Json.JsonDocument.Parse(lines[i]);
            var root = line.RootElement;
            Assert.Equal($"{i:D3}.png", root.GetProperty("image").GetString());
            Assert.Equal(records[i].Prompt, root.GetProperty("prompt").GetString());
            Assert.Equal(string.Join(' ', records[i].TargetWords), root.GetProperty("metadata").GetProperty("target_words").GetString());
            Assert.Equal(records[i].Bin, root.GetProperty("metadata").GetProperty("bin").GetString());
            var image = ImageFile.Load(Path.Combine(outDir, $"{i:D3}.png"));
            Assert.Equal((policy.Info.ImageWidth, policy.Info.ImageHeight), (image.Width, image.Height));
        }
        Assert.True(File.Exists(Path.Combine(outDir, "grid.png")));

        // A tokenizer of another image size is refused with a line naming both sizes.
        using var small = Tiny.Policy();
        var smallDir = Path.Combine(dir, "small");
        small.Save(smallDir);
        var error = Assert.Throws<ArgumentException>(() => ReferenceImagesCommand.Reconstruct(ReferenceImagesCommand.Render(records, 7), smallDir, 4, default));
        Assert.Contains("16x16", error.Message);

        // Truth renders are deterministic by seed and differ between seeds.
        Assert.True(ReferenceImagesCommand.Render(records, 7)[0].Pixels.SequenceEqual(ReferenceImagesCommand.Render(records, 7)[0].Pixels));
        Assert.False(ReferenceImagesCommand.Render(records, 7)[0].Pixels.SequenceEqual(ReferenceImagesCommand.Render(records, 8)[0].Pixels));
    }

    [Fact]
    public void BenchReportsASpeedupAndAFlopFraction()
    {
        using var p = Tiny.Policy();
        var r = NextFlowRL.Torch.Benchmarks.SamplerBench.Run(p, Tiny.Prompts, 2, 1, new SamplingOptions { Seed = 1, CfgScale = 3 });
        Assert.True(r.CachedImagesPerSecond > 0 && r.RecomputeImagesPerSecond > 0);
        Assert.True(r.TrainFlops > 0 && r.MatmulFlopsPerSecond > 0 && r.TrainFraction > 0);
        // Tiny schedule 1,2,3,4 (30 tokens): recompute runs 1 + 5 + 14 + 30 = 50 positions.
        Assert.Equal((30L, 50L), (r.CachedPositions, r.RecomputePositions));
        Assert.Equal(50.0 / 30.0, r.PositionBound, 12);
    }
}

public sealed class DataTests
{
    [Fact]
    public void QuotedWordsAreExtractedInOrder()
    {
        Assert.Equal(["CAT", "DOG"], PromptWords.Quoted("A sign that says 'CAT' above 'DOG'."));
        Assert.Equal(["two", "words"], PromptWords.Quoted("It's a 'two words' sign"));
        Assert.Empty(PromptWords.Quoted("nothing here"));
    }

    [Fact]
    public void WordListsAreDeterministicDisjointAndShort()
    {
        var a = WordLists.Create(300, 50, 9);
        var b = WordLists.Create(300, 50, 9);
        Assert.Equal(a.Train, b.Train);
        Assert.Empty(a.Train.Intersect(a.HeldOut));
        Assert.All(a.Train.Concat(a.HeldOut), w => Assert.InRange(w.Length, 3, 6));
        Assert.Equal(4000, WordLists.Default.Train.Count);
        Assert.NotEqual(a.Train, WordLists.Create(300, 50, 10).Train);
    }

    [Fact]
    public void RenderingIsDeterministicAndPromptsQuoteTheirWords()
    {
        var e1 = TextDataset.Draw(new Random(5), WordLists.Default.Train);
        var e2 = TextDataset.Draw(new Random(5), WordLists.Default.Train);
        Assert.Equal(e1.Prompt, e2.Prompt);
        Assert.Equal(e1.Words, e2.Words);
        Assert.Equal((e1.Font, e1.Background, e1.Foreground, e1.Jitter), (e2.Font, e2.Background, e2.Foreground, e2.Jitter));
        Assert.Equal(e1.Words, PromptWords.Quoted(e1.Prompt));
        Assert.True(TextDataset.Render(e1).Pixels.SequenceEqual(TextDataset.Render(e2).Pixels));
        Assert.Equal(64, TextDataset.Render(e1).Width);
    }

    [Fact]
    public void TheOutOfDistributionSetChangesOneThingPerBinAndIsTheShippedFile()
    {
        var ood = TextDataset.OutOfDistributionPrompts(WordLists.Default, perBin: 20);
        Assert.Equal(["common-1region", "common-2region", "rare-1region", "short-1region", "template-1region"],
            ood.GroupBy(r => r.Bin).Select(g => g.Key).Order(StringComparer.Ordinal));
        Assert.All(ood.GroupBy(r => r.Bin), g => Assert.Equal(20, g.Count()));
        var train = WordLists.Default.Train.ToHashSet(StringComparer.OrdinalIgnoreCase);
        var heldOut = WordLists.Default.HeldOut.ToHashSet(StringComparer.OrdinalIgnoreCase);
        // No word was trained on; only the template bin uses the model's own (held-out) pseudo-words.
        Assert.All(ood, r => Assert.All(r.TargetWords, w => Assert.DoesNotContain(w, train)));
        Assert.All(ood.Where(r => r.Bin != "template-1region"), r => Assert.All(r.TargetWords, w => Assert.DoesNotContain(w, heldOut)));
        Assert.All(ood.Where(r => r.Bin == "template-1region"), r => Assert.Contains(Assert.Single(r.TargetWords), heldOut));
        // Letters the model never drew stay out: the set measures unfamiliar words, not untrained glyphs.
        Assert.All(ood, r => Assert.All(r.TargetWords, w => Assert.All(w, c => Assert.Contains(c, TextDataset.TrainedLetters))));
        Assert.All(WordLists.Default.Train, w => Assert.All(w, c => Assert.Contains(c, TextDataset.TrainedLetters)));
        Assert.All(ood.Where(r => r.Bin == "short-1region"), r => Assert.Equal(2, Assert.Single(r.TargetWords).Length));
        Assert.All(ood.Where(r => r.Bin == "common-2region"), r => Assert.Equal(2, r.TargetWords.Count));
        // Rare combinations: a vowel first or three consonants in a row, which the word grammar never makes.
        Assert.All(ood.Where(r => r.Bin == "rare-1region"), r => Assert.Matches("^[AEIOU]|[^AEIOU]{3}", Assert.Single(r.TargetWords)));
        Assert.DoesNotContain(WordLists.Default.Train, w => System.Text.RegularExpressions.Regex.IsMatch(w, "^[AEIOU]"));
        // Templates: the template bin's never occur in training prompts; the other bins use training templates.
        var trainingPrompts = TextDataset.TrainingPrompts(WordLists.Default, 500);
        Assert.All(ood.Where(r => r.Bin == "template-1region"), r => Assert.Contains(TextDataset.UnseenOneWordTemplates, t => r.Prompt == t.Replace("{0}", r.TargetWords[0], StringComparison.Ordinal)));
        Assert.DoesNotContain(trainingPrompts, p => TextDataset.UnseenOneWordTemplates.Any(t => p.Prompt.StartsWith(t[..t.IndexOf('{', StringComparison.Ordinal)], StringComparison.Ordinal)));
        // The quoted words are the targets, and the shipped file is the command's output (seed 20261203).
        Assert.All(ood, r => Assert.Equal(r.TargetWords, PromptWords.Quoted(r.Prompt)));
        var shipped = TextDataset.ReadJsonl(Path.Combine(VarPolicyProvider.DefaultModelDirectory, "ood_prompts.jsonl"));
        Assert.Equal(ood.Select(r => (r.Prompt, r.Bin)), shipped.Select(r => (r.Prompt, r.Bin)));
        Assert.NotEqual(ood.Select(r => r.Prompt), TextDataset.OutOfDistributionPrompts(WordLists.Default, 20, seed: 5).Select(r => r.Prompt));
    }

    [Fact]
    public void TheValidationSetHasTheTestSetsBinsAndNoneOfItsWords()
    {
        var test = TextDataset.EvaluationPrompts(WordLists.Default);
        var validation = TextDataset.ValidationPrompts(WordLists.Default, test);
        Assert.Equal(test.GroupBy(r => r.Bin).Select(g => (g.Key, g.Count())).Order(), validation.GroupBy(r => r.Bin).Select(g => (g.Key, g.Count())).Order());
        var testWords = test.SelectMany(r => r.TargetWords).ToHashSet(StringComparer.OrdinalIgnoreCase);
        Assert.All(validation, r => Assert.All(r.TargetWords, w => Assert.DoesNotContain(w, testWords)));
        var train = WordLists.Default.Train.ToHashSet();
        Assert.All(validation.Where(r => r.Bin.EndsWith("heldout")), r => Assert.All(r.TargetWords, w => Assert.DoesNotContain(w, train)));
        Assert.Equal(validation.Select(r => r.Prompt), TextDataset.ValidationPrompts(WordLists.Default, test).Select(r => r.Prompt));
        // The shipped files are the command's output: the validation file next to the model is this set.
        var shipped = TextDataset.ReadJsonl(Path.Combine(VarPolicyProvider.DefaultModelDirectory, "validation_prompts.jsonl"));
        var shippedTest = TextDataset.ReadJsonl(Path.Combine(VarPolicyProvider.DefaultModelDirectory, "eval_prompts.jsonl"));
        Assert.Equal(TextDataset.ValidationPrompts(WordLists.Default, shippedTest, 25, 20260101 + 101).Select(r => r.Prompt), shipped.Select(r => r.Prompt));
    }

    [Fact]
    public void EvaluationSetHasFourBinsAndHeldOutWordsAreUnseen()
    {
        var eval = TextDataset.EvaluationPrompts(WordLists.Default, 5);
        Assert.Equal(20, eval.Count);
        Assert.Equal(["1region-heldout", "1region-seen", "2region-heldout", "2region-seen"], eval.Select(r => r.Bin).Distinct().Order().ToArray());
        var train = WordLists.Default.Train.ToHashSet();
        Assert.All(eval.Where(r => r.Bin.EndsWith("heldout")), r => Assert.All(r.TargetWords, w => Assert.DoesNotContain(w, train)));
        Assert.All(eval.Where(r => r.Bin.StartsWith("2region")), r => Assert.Equal(2, r.TargetWords.Count));
        var path = Path.Combine(Tiny.TempDir(), "e.jsonl");
        TextDataset.WriteJsonl(path, eval);
        var back = TextDataset.ReadJsonl(path);
        Assert.Equal(eval.Select(r => r.Prompt), back.Select(r => r.Prompt));
        Assert.Contains("\"target_words\"", File.ReadAllText(path));
        File.WriteAllText(path, "{\"prompt\": 3}\n");
        Assert.Contains(":1:", Assert.Throws<InvalidDataException>(() => TextDataset.ReadJsonl(path)).Message);
    }
}

/// <summary>A progress display that records what it is shown (the pretraining loop's observer, not a replacement for it).</summary>
internal sealed class RecordingDisplay : NextFlowRL.Plugins.IProgressDisplay, NextFlowRL.Plugins.IProgressTask
{
    public List<(string Label, int Total, string Unit)> Started { get; } = [];

    public List<string?> Details { get; } = [];

    public bool Disposed { get; private set; }

    public NextFlowRL.Plugins.IProgressTask Start(string label, int total, string unit = "items")
    {
        Started.Add((label, total, unit));
        return this;
    }

    public void Advance(int count = 1, string? detail = null) => Details.Add(detail);

    public void Dispose() => Disposed = true;
}
