using NextFlowRL.Policies.Var.Training;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace NextFlowRL.Policies.Var.Tests;

/// <summary>The pretraining optimizer (TorchSharp's AdamW, LambdaLR and clip_grad_norm_) against the AdamW update written out.</summary>
public sealed class PretrainOptimizerTests
{
    private const double Beta1 = 0.9, Beta2 = 0.95, Eps = 1e-8, Decay = 0.1;

    private static (Parameter W, Parameter B) Parameters()
    {
        using var _ = no_grad();
        var gen = new Generator(5);
        return (new Parameter(randn(3, 4, generator: gen, dtype: ScalarType.Float64)), new Parameter(randn(4, generator: gen, dtype: ScalarType.Float64)));
    }

    private static Tensor Loss(Parameter w, Parameter b, int step) =>
        (matmul(w, b + step).pow(2).sum() + w.sum() * 0.1).mul(0.01);

    private static double Rate(int step) => 0.05 * (step + 1) / 3.0;

    [Fact]
    public void StepsAreDecoupledAdamWWithoutDecayOnVectorsAndFollowTheSchedule()
    {
        var (w, b) = Parameters();
        var (w0, b0) = (w.detach().clone(), b.detach().clone());
        using var opt = new PretrainOptimizer([("w", w), ("b", b)], Rate, 0.05, Decay, Beta1, Beta2, Eps);
        opt.StartAt(0);
        // The update written out: m, v moments with bias correction; decay p *= 1 - lr * wd on the matrix only.
        var (ew, eb) = (w0.clone(), b0.clone());
        var (mw, vw, mb, vb) = (zeros_like(ew), zeros_like(ew), zeros_like(eb), zeros_like(eb));
        for (int s = 0; s < 3; s++)
        {
            Assert.Equal(Rate(s), opt.LearningRate, 12);
            var (gw, gb) = Gradients(ew, eb, s);
            double lr = Rate(s), bc1 = 1 - Math.Pow(Beta1, s + 1), bc2 = 1 - Math.Pow(Beta2, s + 1);
            mw = mw * Beta1 + gw * (1 - Beta1); vw = vw * Beta2 + gw * gw * (1 - Beta2);
            mb = mb * Beta1 + gb * (1 - Beta1); vb = vb * Beta2 + gb * gb * (1 - Beta2);
            ew = ew * (1 - lr * Decay) - lr / bc1 * mw / ((vw / bc2).sqrt() + Eps);
            eb = eb - lr / bc1 * mb / ((vb / bc2).sqrt() + Eps);
            opt.Step(Loss(w, b, s), maxNorm: 1e9);
        }
        Assert.True(w.detach().allclose(ew, rtol: 1e-9, atol: 1e-12), "matrix");
        Assert.True(b.detach().allclose(eb, rtol: 1e-9, atol: 1e-12), "vector");
        Assert.Equal(3, opt.Steps);
    }

    [Fact]
    public void TheGradientNormIsClippedBeforeTheStep()
    {
        var (w, b) = Parameters();
        using var opt = new PretrainOptimizer([("w", w), ("b", b)], Rate, 0.05, Decay, Beta1, Beta2, Eps);
        var (gw, gb) = Gradients(w.detach(), b.detach(), 0);
        double norm = Math.Sqrt(gw.pow(2).sum().item<double>() + gb.pow(2).sum().item<double>());
        Assert.Equal(norm, opt.Step(Loss(w, b, 0), maxNorm: norm / 4), 9);
        double clip = norm / 4 / (norm + 1e-6);
        var m = opt.State().First(kv => kv.Key == "m.w").Value;
        Assert.True(m.allclose(gw * ((1 - Beta1) * clip), rtol: 1e-9, atol: 1e-15), "the moment holds the clipped gradient");
    }

    [Fact]
    public void AResumedOptimizerContinuesExactlyAndAMissingMomentIsNamed()
    {
        var (w, b) = Parameters();
        var (w2, b2) = (new Parameter(w.detach().clone()), new Parameter(b.detach().clone()));
        using var straight = new PretrainOptimizer([("w", w), ("b", b)], Rate, 0.05, Decay, Beta1, Beta2, Eps);
        straight.StartAt(0);
        using var first = new PretrainOptimizer([("w", w2), ("b", b2)], Rate, 0.05, Decay, Beta1, Beta2, Eps);
        first.StartAt(0);
        for (int s = 0; s < 2; s++)
        {
            straight.Step(Loss(w, b, s));
            first.Step(Loss(w2, b2, s));
        }
        // A checkpoint's moments (the names earlier versions wrote), loaded into a fresh optimizer at step 2.
        var saved = first.State().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        Assert.Equal(["m.b", "m.w", "v.b", "v.w"], saved.Keys.Order(StringComparer.Ordinal));
        using var resumed = new PretrainOptimizer([("w", w2), ("b", b2)], Rate, 0.05, Decay, Beta1, Beta2, Eps);
        resumed.Load(saved, 2, "test");
        Assert.Equal(Rate(2), resumed.LearningRate, 12);
        straight.Step(Loss(w, b, 2));
        resumed.Step(Loss(w2, b2, 2));
        Assert.True(w.detach().eq(w2.detach()).all().item<bool>() && b.detach().eq(b2.detach()).all().item<bool>(), "resumed step differs");

        saved.Remove("v.b");
        using var broken = new PretrainOptimizer([("w", w2), ("b", b2)], Rate, 0.05, Decay, Beta1, Beta2, Eps);
        var e = Assert.Throws<InvalidDataException>(() => broken.Load(saved, 2, "optim.safetensors"));
        Assert.Contains("'b'", e.Message);
    }

    private static (Tensor W, Tensor B) Gradients(Tensor w, Tensor b, int step)
    {
        var pw = new Parameter(w.detach().clone());
        var pb = new Parameter(b.detach().clone());
        Loss(pw, pb, step).backward();
        return (pw.grad!.detach().clone(), pb.grad!.detach().clone());
    }
}
