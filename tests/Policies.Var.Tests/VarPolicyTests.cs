using NextFlowRL.Torch.NextScale;
using NextFlowRL.Policies;
using NextFlowRL.Policies.Var;
using NextFlowRL.Policies.Var.Model;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace NextFlowRL.Policies.Var.Tests;

/// <summary>Tests touching torch global state (seeds, threads) run in this one non-parallel collection.</summary>
[CollectionDefinition("torch", DisableParallelization = true)]
public sealed class TorchCollection;

/// <summary>Tiny random models for fast tests.</summary>
internal static class Tiny
{
    public static VarModelConfig Config(int dim = 16) => new()
    {
        Name = "tiny-test",
        Tokenizer = new TokenizerConfig { Architecture = "patch", ImageSize = 16, Channels = 4, LatentChannels = 4, Downsamples = 2, CodebookSize = 16, PhiCount = 2, Scales = [[1, 1], [2, 2], [3, 3], [4, 4]] },
        Generator = new GeneratorConfig { Dim = dim, Depth = 2, Heads = 2, MlpRatio = 2, MaxWords = 2, MaxWordChars = 4 },
    };

    public static VarPolicy Policy(int seed = 3, VarModelConfig? config = null)
    {
        manual_seed(seed);
        return new VarPolicy(new VarModel(config ?? Config()), "random", CPU);
    }

    public static readonly string[] Prompts = ["A sign that says 'CAT'.", "Two lines: 'DOG' and 'SUN'.", "nothing quoted", "'ZOO'"];

    public static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    public static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "var-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }
}

[Collection("torch")]
public sealed class VarPolicyTests
{
    [Fact]
    public void BlockCausalMaskIsFullInsideAScaleAndCausalAcross()
    {
        using var p = Tiny.Policy();
        using var mask = NextScaleSampler.BlockCausalMask(p.Schedule, 3, CPU); // scales 1,2,3 -> 1+4+9 = 14 positions
        Assert.Equal(new long[] { 14, 14 }, mask.shape);
        int[] level = [0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2];
        var m = mask.data<float>().ToArray();
        for (int i = 0; i < 14; i++)
            for (int j = 0; j < 14; j++)
                Assert.Equal(level[j] <= level[i] ? 0f : float.NegativeInfinity, m[i * 14 + j]);
    }

    [Fact]
    public void KvCacheAndFullRecomputeGiveTheSameTokensAndLogProbs()
    {
        using var p = Tiny.Policy();
        var o = new SamplingOptions { Seed = 11, CfgScale = 2.0, TopK = 8, TopP = 0.95, Temperature = 0.9 };
        var (a, la) = p.Run(Tiny.Prompts, null, o, new SamplerSettings(UseKvCache: true, RecordLogProbs: true));
        var (b, lb) = p.Run(Tiny.Prompts, null, o, new SamplerSettings(UseKvCache: false, RecordLogProbs: true));
        using (a)
        using (b)
        {
            for (int k = 0; k < p.Schedule.Count; k++)
            {
                Assert.True(Tiny.Same(a.Grids[k], b.Grids[k]), $"scale {k} tokens differ");
                Assert.True(la[k].allclose(lb[k], rtol: 0, atol: 1e-5), $"scale {k} log-probs differ");
            }
        }
    }

    [Fact]
    public void TeacherForcedLogProbsEqualTheSamplersPlainDistributionOnEveryScale()
    {
        using var p = Tiny.Policy();
        var (traj, sampled) = p.Run(Tiny.Prompts, null, SamplingOptions.Plain(5), new SamplerSettings(RecordLogProbs: true));
        using (traj)
        {
            var all = p.LogProbs(traj, 0, p.Schedule.Count);
            Assert.Equal(p.Schedule.Count, all.Count);
            for (int k = 0; k < all.Count; k++)
            {
                Assert.Equal(new long[] { Tiny.Prompts.Length, p.Schedule[k].Height, p.Schedule[k].Width }, all[k].shape);
                Assert.True(all[k].allclose(sampled[k], rtol: 0, atol: 1e-5), $"scale {k}: max diff {(all[k] - sampled[k]).abs().max().item<float>()}");
            }
            var mid = p.LogProbs(traj, 1, 3);
            Assert.Equal(2, mid.Count);
            Assert.True(mid[0].allclose(all[1], rtol: 0, atol: 1e-6));
            Assert.True(mid[1].allclose(all[2], rtol: 0, atol: 1e-6));
            Assert.All(all, t => Assert.True(t.le(0).all().item<bool>()));
        }
    }

    [Fact]
    public void GuidedLogProbsEqualTheSamplersGuidedDistributionOnEveryScale()
    {
        using var p = Tiny.Policy();
        var o = new SamplingOptions { Seed = 13, CfgScale = 2.0, TopK = 8, Temperature = 0.7 };
        var (traj, sampled) = p.Run(Tiny.Prompts, null, o, new SamplerSettings(RecordLogProbs: true, RecordGuided: true));
        using (traj)
        {
            var guided = p.GuidedLogProbs(traj, 0, p.Schedule.Count, o);
            for (int k = 0; k < guided.Count; k++)
                Assert.True(guided[k].allclose(sampled[k], rtol: 0, atol: 1e-5), $"scale {k}: max diff {(guided[k] - sampled[k]).abs().max().item<float>()}");
            var suffix = p.GuidedLogProbs(traj, 2, p.Schedule.Count, o);
            Assert.True(suffix[0].allclose(guided[2], rtol: 0, atol: 1e-6));
            // Without guidance and at temperature 1 the guided distribution is the plain conditional one.
            var plain = p.LogProbs(traj, 0, p.Schedule.Count);
            var unguided = p.GuidedLogProbs(traj, 0, p.Schedule.Count, new SamplingOptions { CfgScale = 0, Temperature = 1 });
            for (int k = 0; k < plain.Count; k++) Assert.True(unguided[k].allclose(plain[k], rtol: 0, atol: 1e-6));
            Assert.False(guided[^1].allclose(plain[^1], rtol: 0, atol: 1e-3), "guidance must change the last scale's distribution");
        }
    }

    [Fact]
    public void LogProbsCarryGradientsToTrainableParameters()
    {
        using var p = Tiny.Policy();
        using var traj = p.Sample(Tiny.Prompts, SamplingOptions.Plain(1));
        var lp = p.LogProbs(traj, 0, p.Schedule.Count);
        var loss = -stack(lp.Select(t => t.sum()).ToArray()).sum();
        loss.backward();
        var grads = p.TrainableParameters().Where(x => x.grad is not null && x.grad.abs().sum().item<float>() > 0).Count();
        Assert.True(grads > p.TrainableParameters().Count / 2, $"only {grads} parameters got gradients");
    }

    [Fact]
    public void SameSeedSameTokensDifferentSeedDifferentTokens()
    {
        using var p = Tiny.Policy();
        var o = new SamplingOptions { Seed = 42, CfgScale = 1.5 };
        using var a = p.Sample(Tiny.Prompts, o);
        using var b = p.Sample(Tiny.Prompts, o);
        using var c = p.Sample(Tiny.Prompts, o with { Seed = 43 });
        Assert.All(Enumerable.Range(0, p.Schedule.Count), k => Assert.True(Tiny.Same(a.Grids[k], b.Grids[k])));
        Assert.Contains(Enumerable.Range(0, p.Schedule.Count), k => !Tiny.Same(a.Grids[k], c.Grids[k]));
        var ia = p.Decode(a);
        var ib = p.Decode(b);
        Assert.Equal(Tiny.Prompts.Length, ia.Count);
        Assert.True(ia[0].Pixels.SequenceEqual(ib[0].Pixels));
        Assert.Equal(16, ia[0].Width);
    }

    [Fact]
    public void ContinueKeepsThePrefixAndMatchesTeacherForcedLogProbs()
    {
        using var p = Tiny.Policy();
        using var full = p.Sample(Tiny.Prompts, new SamplingOptions { Seed = 8, CfgScale = 2 });
        for (int len = 0; len <= p.Schedule.Count; len++)
        {
            using var prefix = full.Prefix(len);
            var (cont, lps) = p.Run(prefix.Prompts, prefix.Grids, SamplingOptions.Plain(9), new SamplerSettings(RecordLogProbs: true));
            using (cont)
            {
                Assert.Equal(p.Schedule.Count, cont.Length);
                for (int k = 0; k < len; k++) Assert.True(Tiny.Same(cont.Grids[k], full.Grids[k]));
                Assert.Equal(p.Schedule.Count - len, lps.Count);
                if (len < p.Schedule.Count)
                {
                    var tf = p.LogProbs(cont, len, p.Schedule.Count);
                    for (int i = 0; i < tf.Count; i++) Assert.True(tf[i].allclose(lps[i], rtol: 0, atol: 1e-5));
                }
            }
        }
        // The contract entry point gives the same as Run.
        using var pre = full.Prefix(2);
        using var c1 = p.Continue(pre, SamplingOptions.Plain(3));
        Assert.True(Tiny.Same(c1.Grids[0], full.Grids[0]));
        Assert.Equal(full.Grids[^1].shape, c1.Grids[^1].shape);
    }

    [Fact]
    public void TopKOneIsGreedyOnTheGuidedLogits()
    {
        using var p = Tiny.Policy();
        var logits = randn(2, 5, 16);
        using var gen = new SamplingRandom(SamplingOptions.Plain(1), 2);
        var picked = NextScaleSampler.SampleTokens(logits, new SamplingOptions { TopK = 1 }, gen);
        Assert.True(Tiny.Same(picked, logits.argmax(-1)));
        var nucleus = NextScaleSampler.SampleTokens(logits, new SamplingOptions { TopP = 1e-4 }, gen);
        Assert.True(Tiny.Same(nucleus, logits.argmax(-1)));
    }

    [Fact]
    public void BadArgumentsAreRejectedClearly()
    {
        using var p = Tiny.Policy();
        Assert.Throws<ArgumentException>(() => p.Sample(Tiny.Prompts, new SamplingOptions { TopP = 0 }));
        Assert.Throws<ArgumentException>(() => p.Sample([], SamplingOptions.Plain(1)));
        using var t = p.Sample(Tiny.Prompts, SamplingOptions.Plain(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => p.LogProbs(t, 2, 2));
        using var pre = t.Prefix(2);
        Assert.Throws<ArgumentException>(() => p.Decode(pre));
        Assert.Throws<ArgumentException>(() => p.LogProbs(pre, 0, 3));
    }

    [Fact]
    public void FrozenCopyScoresTheSameAndHasNoTrainableParameters()
    {
        using var p = Tiny.Policy();
        using var frozen = p.CreateFrozenCopy();
        Assert.Empty(frozen.TrainableParameters());
        Assert.NotEmpty(p.TrainableParameters());
        using var t = p.Sample(Tiny.Prompts, SamplingOptions.Plain(4));
        var a = p.LogProbs(t, 0, 4);
        var b = frozen.LogProbs(t, 0, 4);
        for (int k = 0; k < 4; k++) Assert.True(a[k].allclose(b[k], rtol: 0, atol: 1e-6));
        // Training the original does not move the copy.
        using (no_grad()) foreach (var prm in p.TrainableParameters()) prm.add_(0.1);
        var c = frozen.LogProbs(t, 0, 4);
        Assert.True(b[3].allclose(c[3], rtol: 0, atol: 1e-6));
    }

    [Fact]
    public void MemoryStaysFlatOverManySamplingCalls()
    {
        using var p = Tiny.Policy();
        var o = new SamplingOptions { Seed = 1, CfgScale = 2 };
        for (int i = 0; i < 3; i++) { using var t = p.Sample(Tiny.Prompts, o); p.Decode(t); }
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 15; i++)
        {
            using var t = p.Sample(Tiny.Prompts, o with { Seed = i });
            p.Decode(t);
            using var s = NewDisposeScope();
            p.LogProbs(t, 0, 4);
        }
        long after = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Assert.True(after - before <= 2, $"live tensors grew from {before} to {after}");
    }
}

/// <summary>The TestKit's policy contract checks (docs/swapping-a-backbone.md) on a tiny random var model.</summary>
[Collection("torch")]
public sealed class VarPolicyContractTests
{
    [Fact]
    public void VarKeepsThePolicyContract()
    {
        using var policy = Tiny.Policy();
        NextFlowRL.Testing.PolicyContract.CheckAll(policy, dir => new VarPolicyProvider("var", new VarPolicyOptions()).Load(dir), Tiny.Prompts, tolerance: 1e-4);
    }
}
