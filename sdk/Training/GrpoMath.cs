using static TorchSharp.torch;

namespace NextFlowRL.Training;

/// <summary>The formulas of the method (method.md sections 2-4), as small pure functions.</summary>
public static class GrpoMath
{
    /// <summary>
    /// Log-ratios are clamped to +-<c>MaxLogRatio</c> before <c>exp</c> (e^20 = 4.9e8): an extreme policy/reference or
    /// policy/old pair gives a large finite loss instead of inf, whose product with a zero mask or advantage would be NaN.
    /// </summary>
    public const double MaxLogRatio = 20;

    /// <summary>
    /// Group z-score advantages <c>A_i = (R_i - mean) / (std + eps)</c> for the valid members of one group (population std).
    /// A group whose std is below <paramref name="zeroStdTolerance"/> gets all-zero advantages and reports
    /// <c>ZeroStd = true</c>; invalid members (NaN, dropped) get 0 and do not count.
    /// </summary>
    public static (double[] Advantages, bool ZeroStd) GroupAdvantages(IReadOnlyList<double> rewards, double eps, double zeroStdTolerance = 1e-8)
    {
        ArgumentNullException.ThrowIfNull(rewards);
        var advantages = new double[rewards.Count];
        var valid = rewards.Where(double.IsFinite).ToList();
        if (valid.Count < 2) return (advantages, true);
        double mean = valid.Average();
        double std = Math.Sqrt(valid.Sum(r => (r - mean) * (r - mean)) / valid.Count);
        if (std < zeroStdTolerance) return (advantages, true);
        for (int i = 0; i < rewards.Count; i++)
            advantages[i] = double.IsFinite(rewards[i]) ? (rewards[i] - mean) / (std + eps) : 0;
        return (advantages, false);
    }

    /// <summary>
    /// VMR's middle value <c>V = eta * log(mean_k exp(R_k / eta))</c>, computed stably. Non-finite rewards are
    /// ignored; NaN when none is finite. eta -> infinity gives the mean, eta -> 0 the max.
    /// </summary>
    public static double SoftValue(IReadOnlyList<double> rewards, double eta)
    {
        ArgumentNullException.ThrowIfNull(rewards);
        if (!(eta > 0)) throw new ArgumentOutOfRangeException(nameof(eta), "eta must be > 0");
        var valid = rewards.Where(double.IsFinite).ToList();
        if (valid.Count == 0) return double.NaN;
        double max = valid.Max();
        double sum = valid.Sum(r => Math.Exp((r - max) / eta));
        return max + eta * Math.Log(sum / valid.Count);
    }

    /// <summary>PANW weight <c>k_t = 1 / (h_t * w_t)^alpha</c>.</summary>
    public static double PanwWeight(int tokens, double alpha) => Math.Pow(tokens, -alpha);

    /// <summary>
    /// Per-token clipped surrogate <c>-min(rho*A, clip(rho, 1-eps, 1+eps)*A)</c> with <c>rho = exp(logp - oldLogp)</c>.
    /// <paramref name="advantage"/> broadcasts over the token dimensions.
    /// </summary>
    public static (Tensor Loss, Tensor Ratio) ClippedSurrogate(Tensor logp, Tensor oldLogp, Tensor advantage, double eps)
    {
        var ratio = exp((logp - oldLogp).clamp(-MaxLogRatio, MaxLogRatio));
        var unclipped = ratio * advantage;
        var clipped = ratio.clamp(1 - eps, 1 + eps) * advantage;
        return (-minimum(unclipped, clipped), ratio);
    }

    /// <summary>
    /// The k3 KL estimator <c>exp(d) - d - 1</c> with <c>d = ref - logp</c> clamped to +-<see cref="MaxLogRatio"/>
    /// (non-negative, 0 when equal, finite for any pair, -inf log-probs included).
    /// </summary>
    public static Tensor KlK3(Tensor logp, Tensor refLogp)
    {
        var d = (refLogp - logp).nan_to_num(0, MaxLogRatio, -MaxLogRatio).clamp(-MaxLogRatio, MaxLogRatio);
        return exp(d) - d - 1;
    }

    /// <summary>
    /// <c>sum(where(mask &gt; 0, values, 0))</c>: a masked sum that ignores whatever the masked-out entries hold (inf, NaN),
    /// where multiplying by the mask would turn inf x 0 into NaN.
    /// </summary>
    public static Tensor MaskedSum(Tensor values, Tensor mask) => where(mask > 0, values * mask, zeros_like(values)).sum();

    /// <summary>
    /// PANW step-normalized segment loss <c>sum_t k_t * sum_sites(mask * l) / sum_t k_t * n_t</c>, where per scale t
    /// <paramref name="tokenLosses"/>[t] and <paramref name="masks"/>[t] are <c>[rows, h_t, w_t]</c> and n_t counts active
    /// tokens over the batch. With alpha = 0 it is the plain masked token mean.
    /// </summary>
    public static Tensor PanwLoss(IReadOnlyList<Tensor> tokenLosses, IReadOnlyList<Tensor> masks, IReadOnlyList<double> weights)
    {
        ArgumentNullException.ThrowIfNull(tokenLosses);
        Tensor? numerator = null;
        double denominator = 0;
        for (int t = 0; t < tokenLosses.Count; t++)
        {
            var term = MaskedSum(tokenLosses[t], masks[t]) * weights[t];
            numerator = numerator is null ? term : numerator + term;
            denominator += weights[t] * masks[t].sum().item<float>();
        }
        if (numerator is null) throw new ArgumentException("No scales to weigh.", nameof(tokenLosses));
        return numerator / Math.Max(denominator, 1e-12);
    }
}
