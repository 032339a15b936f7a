using NextFlowRL.Torch.Checkpoints;
using Xunit;
using static TorchSharp.torch;

namespace NextFlowRL.Policies.FoundationVar.Tests;

/// <summary>The one checkpoint IO path: PyTorch zip state dicts, safetensors, and files it must refuse with a useful message.</summary>
[Collection("torch")]
public sealed class CheckpointFileTests
{
    [Fact]
    public void ReadsAPyTorchZipStateDictWithBuffersOfEveryDtype()
    {
        var sd = StateDictFile.Read(Fixtures.PathOf("var_plain.pth"));
        Assert.Equal(38, sd.Count);
        Assert.Equal(ScalarType.Int64, sd["lvl_1L"].dtype);
        Assert.Equal(ScalarType.Float32, sd["pos_1LC"].dtype);
        Assert.True(float.IsNegativeInfinity(sd["attn_bias_for_masking"][0, 0, 0, 1].item<float>()));
        foreach (var t in sd.Values) t.Dispose();
    }

    [Theory]
    [InlineData("legacy.pth", "legacy (non-zip) PyTorch file")]
    [InlineData("nested.pth", "nested dict (top-level keys: epoch, trainer)")]
    [InlineData("whole_model.pth", "state_dict()")]
    [InlineData("not_a_checkpoint.pth", "neither a PyTorch zip state dict")]
    [InlineData("truncated.pth", "not a readable PyTorch state dict, truncated or corrupt?")]
    public void RefusesWhatIsNotAFlatStateDictWithWhatToDo(string file, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => StateDictFile.Read(Fixtures.PathOf("bad", file)));
        Assert.Contains(expected, e.Message);
        Assert.Contains(file, e.Message);
    }

    [Fact]
    public void SafetensorsRoundTripKeepsValuesAndDtypes()
    {
        var dir = Directory.CreateTempSubdirectory("nf-st-").FullName;
        try
        {
            var path = Path.Combine(dir, "w.safetensors");
            using var a = arange(6, dtype: ScalarType.Float32).view(2, 3);
            using var b = tensor(new long[] { 4, 5 });
            using var h = ones(3, dtype: ScalarType.Float16);
            StateDictFile.WriteSafetensors(path, new Dictionary<string, Tensor> { ["a"] = a, ["b"] = b, ["half"] = h });
            Assert.Equal(StateDictFormat.Safetensors, StateDictFile.DetectFormat(path));
            var back = StateDictFile.Read(path);
            Assert.True(back["a"].eq(a).all().item<bool>());
            Assert.Equal(ScalarType.Int64, back["b"].dtype);
            Assert.Equal(ScalarType.Float32, back["half"].dtype); // half precision widened on read
            Assert.Equal(3f, back["half"].sum().item<float>());
            foreach (var t in back.Values) t.Dispose();
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void ATruncatedSafetensorsFileIsNamedAsSuch()
    {
        var dir = Directory.CreateTempSubdirectory("nf-st-").FullName;
        try
        {
            var path = Path.Combine(dir, "w.safetensors");
            using var a = zeros(100);
            StateDictFile.WriteSafetensors(path, new Dictionary<string, Tensor> { ["a"] = a });
            var bytes = File.ReadAllBytes(path);
            File.WriteAllBytes(path, bytes[..^40]);
            var e = Assert.Throws<InvalidDataException>(() => StateDictFile.Read(path));
            Assert.Contains("data offsets outside the file (truncated file?)", e.Message);
            File.WriteAllBytes(path, bytes[..4]);
            Assert.Contains("shorter than its 8-byte header length", Assert.Throws<InvalidDataException>(() => StateDictFile.Read(path)).Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void AMismatchedCheckpointNamesMissingUnexpectedAndMisShapedKeys()
    {
        var vae = StateDictFile.Read(Fixtures.PathOf("vae.pth"));
        var var = StateDictFile.Read(Fixtures.PathOf("var_plain.pth"));
        var.Remove("blocks.1.ffn.fc2.bias", out var removed);
        removed!.Dispose();
        var["blocks.0.attn.surprise"] = zeros(3);
        var old = var["head.bias"];
        var["head.bias"] = zeros(65);
        old.Dispose();
        var e = Assert.Throws<InvalidDataException>(() =>
            FoundationVarPolicy.Create(vae, "vae.pth", var, "var_plain.pth", null, ClassNames.Load(ClassNames.DefaultPath), CPU, "test"));
        Assert.Contains("missing tensors: blocks.1.ffn.fc2.bias", e.Message);
        Assert.Contains("unexpected tensors: blocks.0.attn.surprise", e.Message);
        Assert.Contains("mis-shaped tensors: head.bias (expected [64], found [65])", e.Message);
        foreach (var t in vae.Values.Concat(var.Values)) t.Dispose();
    }

    [Fact]
    public void SwappedFilesAreRefusedWithTheReason()
    {
        var vae = StateDictFile.Read(Fixtures.PathOf("vae.pth"));
        var var = StateDictFile.Read(Fixtures.PathOf("var_plain.pth"));
        var e = Assert.Throws<InvalidDataException>(() =>
            FoundationVarPolicy.Create(var, "var_plain.pth", vae, "vae.pth", null, ClassNames.Load(ClassNames.DefaultPath), CPU, "test"));
        Assert.Contains("not a FoundationVision VQ-VAE state dict", e.Message);
        var e2 = Assert.Throws<InvalidDataException>(() =>
            FoundationVarPolicy.Create(vae, "vae.pth", var, "var_plain.pth", [1, 2, 3, 4, 5, 6, 8, 10, 13, 16], ClassNames.Load(ClassNames.DefaultPath), CPU, "test"));
        Assert.Contains("does not match the checkpoint (6 scales, 91 tokens", e2.Message);
        foreach (var t in vae.Values.Concat(var.Values)) t.Dispose();
    }
}
