using System.Text.Json;
using NextFlowRL.Imaging;
using NextFlowRL.Policies.FoundationVar.Model;
using NextFlowRL.Testing;
using NextFlowRL.Torch.Checkpoints;
using NextFlowRL.Torch.NextScale;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace NextFlowRL.Policies.FoundationVar.Tests;

/// <summary>Tests touching torch global state run in this one non-parallel collection.</summary>
[CollectionDefinition("torch", DisableParallelization = true)]
public sealed class TorchCollection;

/// <summary>The upstream-made fixtures (tools/foundation-var/make_fixtures.py, seed 1).</summary>
internal static class Fixtures
{
    public static string Dir => Repo.PathOf("tests", "Policies.FoundationVar.Tests", "Fixtures");

    public static string PathOf(params string[] parts) => Path.Combine([Dir, .. parts]);

    public static FoundationVarPolicy Load(string variant)
    {
        var vae = StateDictFile.Read(PathOf("vae.pth"));
        var var = StateDictFile.Read(PathOf($"var_{variant}.pth"));
        try
        {
            return FoundationVarPolicy.Create(vae, "vae.pth", var, $"var_{variant}.pth", null, ClassNames.Load(ClassNames.DefaultPath), CPU, variant);
        }
        finally
        {
            foreach (var t in vae.Values.Concat(var.Values)) t.Dispose();
        }
    }

    /// <summary>Reference log-prob sums: <c>reference_{variant}.json</c> → set ("random"/"encoded") → kind ("plain"/"guided") → rows of per-scale sums.</summary>
    public static double[][] LogProbSums(string variant, string set, string kind)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(PathOf($"reference_{variant}.json")));
        return doc.RootElement.GetProperty(set).GetProperty(kind).EnumerateArray()
            .Select(r => r.GetProperty("scales").EnumerateArray().Select(v => v.GetDouble()).ToArray()).ToArray();
    }

    public static double Cfg(string variant)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(PathOf($"reference_{variant}.json")));
        return doc.RootElement.GetProperty("cfg").GetDouble();
    }
}

/// <summary>Our port against FoundationVision's code on random-weight models it built and saved (plain and shared AdaLN).</summary>
[Collection("torch")]
public sealed class ParityTests
{
    [Theory]
    [InlineData("plain", false)]
    [InlineData("shared", true)]
    public void InfersTheArchitectureFromTheStateDicts(string variant, bool shared)
    {
        using var p = Fixtures.Load(variant);
        var t = p.Config.Transformer;
        Assert.Equal((2, 64, 4, 256, 1000, 64, 16, true, shared), (t.Depth, t.Width, t.Heads, t.MlpHidden, t.Classes, t.Vocabulary, t.LatentChannels, t.L2NormAttention, t.SharedAdaLn));
        Assert.Equal([1, 2, 3, 4, 5, 6], t.PatchNums); // from lvl_1L
        var v = p.Config.Vae;
        Assert.Equal((32, 2, 16, 64, 4, PhiSharing.PartiallyShared, 6), (v.Channels, v.ResBlocks, v.LatentChannels, v.Vocabulary, v.PhiCount, v.PhiSharing, v.UsageRows));
        Assert.Equal([1, 1, 2, 2, 4], v.ChannelMultipliers);
        Assert.Equal(96, p.Config.ImageSize);
    }

    [Fact]
    public void PhiTicksFollowTheUpstreamArithmetic()
    {
        // Scales 2 and 7 of 10 sit exactly between two ticks in real arithmetic; float64 rounding decides, as upstream.
        Assert.Equal([0, 0, 1, 2, 3, 3], Enumerable.Range(0, 6).Select(k => PhiTicks.Index(4, k / 5.0)));
        Assert.Equal([0, 0, 1, 1, 1, 2, 2, 3, 3, 3], Enumerable.Range(0, 10).Select(k => PhiTicks.Index(4, k / 9.0)));
        Assert.Equal([0, 0, 1, 1, 2, 2], Enumerable.Range(0, 6).Select(k => PhiTicks.Index(3, k / 5.0)));
    }

    [Theory]
    [InlineData("random_tokens.json", "decoded")]
    [InlineData("reference_vae.json", "decoded_encoded")]
    public void DecodeMatchesUpstreamWithinOneGreyLevel(string tokens, string folder)
    {
        using var p = Fixtures.Load("plain");
        var (_, trajectories) = TokenFile.Read(Fixtures.PathOf(tokens));
        using var _t = trajectories;
        var images = p.Decode(trajectories);
        int worst = 0;
        for (int r = 0; r < images.Count; r++)
        {
            var expected = ImageFile.Load(Fixtures.PathOf(folder, $"{r:000}.png"));
            Assert.Equal((expected.Width, expected.Height), (images[r].Width, images[r].Height));
            var a = images[r].Pixels;
            var b = expected.Pixels;
            for (int i = 0; i < a.Length; i++) worst = Math.Max(worst, Math.Abs(a[i] - b[i]));
        }
        Assert.True(worst <= 1, $"largest difference {worst} grey levels");
    }

    [Fact]
    public void EncodeGivesTheUpstreamTokens()
    {
        using var p = Fixtures.Load("plain");
        var (_, reference) = TokenFile.Read(Fixtures.PathOf("reference_vae.json"));
        using var _r = reference;
        var images = Enumerable.Range(0, reference.Count).Select(i => ImageFile.Load(Fixtures.PathOf("images", $"{i:000}.png"))).ToList();
        using var ours = p.Encode(images, reference.Prompts);
        for (int k = 0; k < reference.Length; k++)
            Assert.True(ours.Grids[k].eq(reference.Grids[k]).all().item<bool>(), $"scale {k} tokens differ");
    }

    [Theory]
    [InlineData("plain", "random")]
    [InlineData("plain", "encoded")]
    [InlineData("shared", "random")]
    [InlineData("shared", "encoded")]
    public void LogProbSumsMatchUpstreamPlainAndGuided(string variant, string set)
    {
        using var p = Fixtures.Load(variant);
        var (_, trajectories) = TokenFile.Read(Fixtures.PathOf(set == "random" ? "random_tokens.json" : "reference_vae.json"));
        using var _t = trajectories;
        var guidance = new Policies.SamplingOptions { CfgScale = Fixtures.Cfg(variant) };
        foreach (var (kind, lps) in new[] { ("plain", p.LogProbs(trajectories, 0, 6)), ("guided", p.GuidedLogProbs(trajectories, 0, 6, guidance)) })
        {
            var expected = Fixtures.LogProbSums(variant, set, kind);
            for (int k = 0; k < 6; k++)
            {
                var sums = lps[k].to(ScalarType.Float64).sum([1, 2]).data<double>().ToArray();
                for (int r = 0; r < sums.Length; r++)
                {
                    double rel = Math.Abs(sums[r] - expected[r][k]) / Math.Max(Math.Abs(expected[r][k]), 1);
                    Assert.True(rel <= 1e-4, $"{variant}/{set}/{kind} row {r} scale {k}: ours {sums[r]}, upstream {expected[r][k]} (relative {rel:E2})");
                }
            }
            foreach (var t in lps) t.Dispose();
        }
    }

    [Theory]
    [InlineData("plain", 0.0)]
    [InlineData("shared", 0.0)]
    [InlineData("plain", 2.0)]
    public void TheSamplerDrawsFromTheDistributionLogProbsScores(string variant, double cfg)
    {
        using var p = Fixtures.Load(variant);
        string[] prompts = ["golden retriever", "0", "", "Tinca tinca"];
        var options = new Policies.SamplingOptions { Seed = 11, CfgScale = cfg, Temperature = 1 };
        var (trajectories, sampled) = p.Run(prompts, null, options, new SamplerSettings(RecordLogProbs: true, RecordGuided: cfg > 0));
        using var _t = trajectories;
        var forced = cfg > 0 ? p.GuidedLogProbs(trajectories, 0, 6, options) : p.LogProbs(trajectories, 0, 6);
        for (int k = 0; k < 6; k++)
        {
            double dev = (sampled[k] - forced[k]).abs().max().item<float>();
            Assert.True(dev < 1e-4, $"scale {k}: sampler vs teacher-forced log-probs differ by {dev}");
        }
        // The old log-probs of a trainer are a second teacher-forced pass: the first ratio is exactly 1.
        var again = cfg > 0 ? p.GuidedLogProbs(trajectories, 0, 6, options) : p.LogProbs(trajectories, 0, 6);
        for (int k = 0; k < 6; k++) Assert.True(again[k].eq(forced[k]).all().item<bool>());
    }

    [Fact]
    public void KvCacheAndFullRecomputeSampleTheSameTokens()
    {
        using var p = Fixtures.Load("shared");
        var options = new Policies.SamplingOptions { Seed = 5, CfgScale = 1.5, TopK = 8, TopP = 0.9 };
        var (a, _) = p.Run(["1", "2"], null, options, new SamplerSettings(UseKvCache: true));
        var (b, _) = p.Run(["1", "2"], null, options, new SamplerSettings(UseKvCache: false));
        using var _a = a;
        using var _b = b;
        for (int k = 0; k < 6; k++) Assert.True(a.Grids[k].eq(b.Grids[k]).all().item<bool>(), $"scale {k}");
    }
}
