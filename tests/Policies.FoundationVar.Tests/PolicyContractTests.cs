using NextFlowRL.Torch.NextScale;
using Xunit;
using static TorchSharp.torch;

namespace NextFlowRL.Policies.FoundationVar.Tests;

/// <summary>The policy contract on foundation-var: prompts, continuation, save/load, frozen copies, provider errors.</summary>
[Collection("torch")]
public sealed class PolicyContractTests
{
    private static readonly ClassNames Classes = ClassNames.Load(ClassNames.DefaultPath);

    [Theory]
    [InlineData("207", 207)]
    [InlineData("golden retriever", 207)]
    [InlineData("  Golden Retriever ", 207)]
    [InlineData("Tinca tinca", 0)]
    [InlineData("tench, Tinca tinca", 0)]
    [InlineData("toilet tissue", 999)]
    [InlineData("", -1)]
    public void PromptsAreClassIndicesOrNames(string prompt, int label) => Assert.Equal(label, Classes.Resolve(prompt, 1000));

    [Fact]
    public void TheShippedListHasTheThousandImageNetClassesInOrder()
    {
        Assert.Equal(1000, Classes.Count);
        Assert.Equal("golden retriever", Classes[207]);
        Assert.StartsWith("tench", Classes[0]);
    }

    [Fact]
    public void AnUnknownPromptListsTheClosestNames()
    {
        var e = Assert.Throws<ArgumentException>(() => Classes.Resolve("goldn retriever", 1000));
        Assert.Contains("'golden retriever' (207)", e.Message);
        Assert.Contains("outside 0..999", Assert.Throws<ArgumentException>(() => Classes.Resolve("1000", 1000)).Message);
    }

    [Fact]
    public void ContinueKeepsThePrefixAndSamplesTheRest()
    {
        using var p = Fixtures.Load("plain");
        var o = new SamplingOptions { Seed = 3, CfgScale = 1, TopK = 10 };
        using var full = p.Sample(["golden retriever", "3"], o);
        using var prefix = full.Prefix(3);
        using var cont = p.Continue(prefix, o with { Seed = 4 });
        Assert.Equal(6, cont.Length);
        for (int k = 0; k < 3; k++) Assert.True(cont.Grids[k].eq(full.Grids[k]).all().item<bool>());
        var images = p.Decode(cont);
        Assert.Equal((96, 96), (images[0].Width, images[0].Height));
    }

    [Fact]
    public void SavedCheckpointsLoadBackEqualAndFrozenCopiesDoNotTrain()
    {
        var dir = Directory.CreateTempSubdirectory("nf-fvar-").FullName;
        try
        {
            using var p = Fixtures.Load("shared");
            p.Save(dir);
            Assert.True(File.Exists(Path.Combine(dir, FoundationVarPolicy.ConfigFile)));
            var provider = new FoundationVarProvider("foundation-var", new FoundationVarOptions());
            using var q = provider.Load(dir);
            using var t = p.Sample(["1", "2"], SamplingOptions.Plain(9));
            var a = p.LogProbs(t, 0, 6);
            var b = q.LogProbs(t, 0, 6);
            for (int k = 0; k < 6; k++) Assert.True(a[k].eq(b[k]).all().item<bool>());
            using var frozen = p.CreateFrozenCopy();
            Assert.Empty(frozen.TrainableParameters());
            Assert.Equal(p.TrainableParameters().Count, q.TrainableParameters().Count);
            var c = frozen.LogProbs(t, 0, 6);
            for (int k = 0; k < 6; k++) Assert.True(a[k].eq(c[k]).all().item<bool>());
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void TheProviderLoadsTheOfficialLayoutFromOptionsAndExplainsWhatIsMissing()
    {
        var none = new FoundationVarProvider("foundation-var", new FoundationVarOptions());
        Assert.Contains("Policies:foundation-var:Checkpoint", Assert.Throws<InvalidDataException>(() => none.Load(null)).Message);
        var noVae = new FoundationVarProvider("foundation-var", new FoundationVarOptions { Checkpoint = Fixtures.PathOf("var_plain.pth") });
        Assert.Contains("Policies:foundation-var:Vae is not set", Assert.Throws<InvalidDataException>(() => noVae.Load(null)).Message);
        var cuda = new FoundationVarProvider("foundation-var", new FoundationVarOptions { Checkpoint = Fixtures.PathOf("var_plain.pth"), Vae = Fixtures.PathOf("vae.pth"), Device = "cuda" });
        if (!TorchSharp.torch.cuda.is_available())
            Assert.Contains("rebuild with -p:TorchBackend=cuda-windows", Assert.Throws<InvalidDataException>(() => cuda.Load(null)).Message);
        Assert.Contains("PatchNums must be increasing", Assert.Throws<InvalidDataException>(() => FoundationVarProvider.ParsePatchNums("1,3,2", "P")).Message);
        var ok = new FoundationVarProvider("foundation-var", new FoundationVarOptions { Checkpoint = Fixtures.PathOf("var_plain.pth"), Vae = Fixtures.PathOf("vae.pth"), PatchNums = "1,2,3,4,5,6" });
        using var p = ok.Load(null);
        Assert.Equal("1,2,3,4,5,6", p.Schedule.ToString());
        Assert.Equal(233_160, p.Info.Parameters); // the transformer's parameters (buffers excluded)
    }

    [Fact]
    public void EncodeRefusesImagesOfTheWrongSize()
    {
        using var p = Fixtures.Load("plain");
        var img = new Imaging.RgbImage(64, 64, new byte[64 * 64 * 3]);
        Assert.Contains("encodes 96x96 images", Assert.Throws<ArgumentException>(() => p.Encode([img], [""])).Message);
    }
}
