using NextFlowRL.Policies;
using TorchSharp;
using static TorchSharp.torch;

namespace NextFlowRL.Torch.NextScale;

/// <summary>
/// The next-scale machinery every VAR-family policy shares: sampling whole grids coarse to fine with a KV cache (or
/// full recomputation), continuation from a given prefix, classifier-free guidance with VAR's linear ramp, temperature,
/// top-k then top-p truncation, block-causal masks and teacher-forced log-probs by scale range under the plain or the
/// guided distribution.
/// </summary>
public static class NextScaleSampler
{
    /// <summary>First sequence position of each scale of <paramref name="schedule"/>, and the total length at the end.</summary>
    public static int[] ScaleBegin(ScaleSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        var begin = new int[schedule.Count + 1];
        for (int i = 0; i < schedule.Count; i++) begin[i + 1] = begin[i] + schedule[i].Tokens;
        return begin;
    }

    /// <summary>
    /// The block-causal additive mask <c>[L, L]</c> over the first <paramref name="scales"/> scales: position i may attend
    /// to position j when j's scale is not after i's scale (full attention inside a scale, causal across scales).
    /// </summary>
    public static Tensor BlockCausalMask(ScaleSchedule schedule, int scales, Device device)
    {
        var begin = ScaleBegin(schedule);
        int l = begin[scales];
        var levels = new long[l];
        for (int k = 0; k < scales; k++)
            for (int i = begin[k]; i < begin[k + 1]; i++) levels[i] = k;
        using var scope = NewDisposeScope();
        var lv = tensor(levels, device: device);
        var allowed = lv.unsqueeze(1) >= lv.unsqueeze(0);
        return zeros([l, l], device: device).masked_fill(allowed.logical_not(), double.NegativeInfinity).MoveToOuterDisposeScope();
    }

    /// <summary>VAR's guidance ramp: at scale <paramref name="k"/> of <paramref name="scales"/>, <c>t = cfg * k / (scales - 1)</c> and <c>(1 + t) cond - t uncond</c>.</summary>
    public static Tensor Guide(Tensor cond, Tensor uncond, double cfg, int k, int scales)
    {
        double t = scales > 1 ? cfg * k / (scales - 1) : 0;
        // (1 + t) * cond - t * uncond, with the same operations in the same order, one full-size temporary fewer.
        var guided = cond.mul(1 + t);
        using var scaled = uncond.mul(t);
        return guided.sub_(scaled);
    }

    /// <summary>Draws one token per site from logits <c>[B, n, V]</c> after temperature, then top-k, then top-p.</summary>
    public static Tensor SampleTokens(Tensor logits, SamplingOptions options, SamplingRandom random)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(random);
        using var scope = NewDisposeScope();
        long v = logits.shape[^1];
        // Full-size temporaries are freed as soon as the next one exists (the sampler's peak memory is here, at the
        // finest scale); the operations and their order are those of the plain formulation, so the draws are too.
        bool owned = options.Temperature != 1.0;
        var l = owned ? logits / options.Temperature : logits;
        if (options.TopK > 0 && options.TopK < v)
        {
            using var top = l.topk(options.TopK, dim: -1).values;
            using var kth = top.narrow(-1, options.TopK - 1, 1);
            using var below = l < kth;
            if (owned)
            {
                l.masked_fill_(below, double.NegativeInfinity);
            }
            else
            {
                l = l.masked_fill(below, double.NegativeInfinity);
                owned = true;
            }
        }
        if (options.TopP < 1.0)
        {
            var (sorted, order) = l.sort(-1, descending: true);
            var probs = sorted.softmax(-1);
            var before = probs.cumsum(-1) - probs;
            sorted = sorted.masked_fill(before >= options.TopP, double.NegativeInfinity);
            l = full_like(l, double.NegativeInfinity).scatter(-1, order, sorted);
        }
        var p = l.softmax(-1);
        if (owned) l.Dispose();
        return random.Draw(p).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Samples or completes trajectories: the first <c>prefix.Count</c> scales are taken from <paramref name="prefix"/>
    /// (null or empty = from scratch), the rest are drawn. With <see cref="SamplerSettings.RecordLogProbs"/> also returns,
    /// per drawn scale, the <c>[rows, h, w]</c> log-probabilities of the chosen tokens computed by the sampler itself.
    /// Runs without gradients; one dispose scope per scale keeps the peak at one scale's temporaries.
    /// </summary>
    /// <exception cref="ArgumentException">No prompts, or a prefix longer than the schedule or of the wrong shape.</exception>
    public static (TokenTrajectories Trajectories, IReadOnlyList<Tensor> LogProbs) Run<TCondition>(
        INextScaleNetwork<TCondition> network, IReadOnlyList<string> prompts, IReadOnlyList<Tensor>? prefix,
        SamplingOptions options, SamplerSettings settings, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(settings);
        options.Validate();
        var schedule = network.Schedule;
        var device = network.Device;
        if (prompts.Count == 0) throw new ArgumentException("At least one prompt is needed.", nameof(prompts));
        int s = schedule.Count, b = prompts.Count, given = prefix?.Count ?? 0;
        if (given > s) throw new ArgumentException($"The prefix has {given} scales; the schedule has {s}.");
        for (int k = 0; k < given; k++)
        {
            var g = prefix![k];
            if (g.dim() != 3 || g.shape[0] != b || g.shape[1] != schedule[k].Height || g.shape[2] != schedule[k].Width)
                throw new ArgumentException($"Prefix grid {k} has shape [{string.Join(",", g.shape)}]; expected [{b},{schedule[k].Height},{schedule[k].Width}].");
        }
        var begin = ScaleBegin(schedule);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        bool cfg = options.CfgScale > 0;
        // With guidance, the unconditional rows (null condition) run in the same batch, after the conditional ones.
        var conditions = cfg ? prompts.Cast<string?>().Concat(Enumerable.Repeat<string?>(null, b)).ToArray() : prompts.ToArray<string?>();
        var cond = network.EncodeConditions(conditions);
        using var cache = settings.UseKvCache ? new KvCache(network.Layers) : null;
        using var random = new SamplingRandom(options, b, device);
        var grids = new List<Tensor>();
        var logps = new List<Tensor>();
        Tensor? fhat = null;
        for (int k = 0; k < s; k++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scaleScope = NewDisposeScope();
            var shape = schedule[k];
            bool forced = k < given;
            Tensor? logits = null;
            if (cache is not null)
            {
                Tensor? feats = null;
                if (k > 0)
                {
                    feats = network.DownsampleFeatures(fhat!, k);
                    if (cfg) feats = cat([feats, feats], 0);
                }
                var x = network.EmbedInput(k, cond, feats);
                logits = network.Logits(x, cond, null, cache);
            }
            else if (!forced)
            {
                var tokens = cfg ? grids.Select(g => cat([g, g], 0)).ToList() : grids;
                var full = TeacherForcedLogits(network, cond, tokens, k + 1);
                logits = full.narrow(1, begin[k], shape.Tokens);
            }
            Tensor idx;
            if (forced)
            {
                idx = prefix![k].to(ScalarType.Int64).to(device).clone();
            }
            else
            {
                var plain = logits!.narrow(0, 0, b);
                var l = cfg ? Guide(plain, logits!.narrow(0, b, b), options.CfgScale, k, s) : plain;
                idx = SampleTokens(l, options, random).view(b, shape.Height, shape.Width);
                if (settings.RecordLogProbs)
                {
                    var recorded = settings.RecordGuided ? l / options.Temperature : plain;
                    logps.Add(recorded.log_softmax(-1).gather(-1, idx.view(b, -1, 1)).view(b, shape.Height, shape.Width).MoveToOuterDisposeScope().MoveToOuterDisposeScope());
                }
            }
            grids.Add(idx.MoveToOuterDisposeScope());
            var e = network.TokenFeatures(idx, k);
            fhat = (fhat is null ? e : fhat + e).MoveToOuterDisposeScope();
        }
        foreach (var g in grids) g.MoveToOuterDisposeScope();
        return (new TokenTrajectories(prompts, grids), logps);
    }

    /// <summary>
    /// The accumulated features <c>[B, C, H, W]</c> of complete trajectories: the sum of every scale's
    /// <see cref="INextScaleNetwork{TCondition}.TokenFeatures"/>, what a multi-scale VQ decoder turns into images.
    /// </summary>
    /// <exception cref="ArgumentException">The trajectories do not have every scale of the schedule.</exception>
    public static Tensor AccumulatedFeatures<TCondition>(INextScaleNetwork<TCondition> network, TokenTrajectories trajectories)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(trajectories);
        if (trajectories.Length != network.Schedule.Count)
            throw new ArgumentException($"Decoding needs complete trajectories ({network.Schedule.Count} scales), got {trajectories.Length}.");
        Tensor? fhat = null;
        for (int k = 0; k < trajectories.Length; k++)
        {
            var e = network.TokenFeatures(trajectories.Grids[k].to(network.Device), k);
            fhat = fhat is null ? e : fhat + e;
        }
        return fhat!;
    }

    /// <summary>
    /// Input features of every scale 1..end-1 given the tokens of scales 0..end-2: the accumulated features through
    /// scale k-1 downsampled to scale k's grid (no gradients: the tokenizer is frozen).
    /// </summary>
    public static List<Tensor> TeacherInputs<TCondition>(INextScaleNetwork<TCondition> network, IReadOnlyList<Tensor> tokens, int endScale)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(tokens);
        using var _ = no_grad();
        var result = new List<Tensor>();
        Tensor? fhat = null;
        for (int k = 1; k < endScale; k++)
        {
            var e = network.TokenFeatures(tokens[k - 1], k - 1);
            fhat = fhat is null ? e : fhat + e;
            result.Add(network.DownsampleFeatures(fhat, k));
        }
        return result;
    }

    /// <summary>
    /// Logits <c>[B, L_end, V]</c> of all positions of scales 0..end-1 in one teacher-forced pass with the block-causal
    /// mask. Gradients flow into the transformer when autograd is on.
    /// </summary>
    public static Tensor TeacherForcedLogits<TCondition>(INextScaleNetwork<TCondition> network, TCondition condition, IReadOnlyList<Tensor> tokens, int endScale)
    {
        ArgumentNullException.ThrowIfNull(network);
        var inputs = TeacherInputs(network, tokens, endScale);
        var parts = new List<Tensor> { network.EmbedInput(0, condition, null) };
        for (int k = 1; k < endScale; k++) parts.Add(network.EmbedInput(k, condition, inputs[k - 1]));
        var x = parts.Count == 1 ? parts[0] : cat(parts.ToArray(), 1);
        var mask = BlockCausalMask(network.Schedule, endScale, x.device);
        return network.Logits(x, condition, mask, null);
    }

    /// <summary>
    /// Teacher-forced per-token log-probabilities of the given tokens for scales <paramref name="firstScale"/>
    /// (inclusive) to <paramref name="endScale"/> (exclusive): under the plain conditional distribution when
    /// <paramref name="guidance"/> is null, else under the sampler's guided distribution (CFG ramp at
    /// <see cref="SamplingOptions.CfgScale"/>, <see cref="SamplingOptions.Temperature"/>, no truncation).
    /// Element i is a float32 <c>[rows, h, w]</c> tensor for scale <c>firstScale + i</c>; gradients flow when autograd is on.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An empty or out-of-range scale range.</exception>
    /// <exception cref="ArgumentException">Trajectories shorter than <paramref name="endScale"/>.</exception>
    public static IReadOnlyList<Tensor> LogProbs<TCondition>(INextScaleNetwork<TCondition> network, TokenTrajectories trajectories,
        int firstScale, int endScale, SamplingOptions? guidance)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(trajectories);
        guidance?.Validate();
        var schedule = network.Schedule;
        if (firstScale < 0 || endScale > schedule.Count || firstScale >= endScale)
            throw new ArgumentOutOfRangeException(nameof(firstScale), $"Scale range [{firstScale}, {endScale}) is empty or outside 0..{schedule.Count}.");
        if (trajectories.Length < endScale)
            throw new ArgumentException($"The trajectories have {trajectories.Length} scales; log-probs up to scale {endScale} need that many.");
        using var scope = NewDisposeScope();
        var begin = ScaleBegin(schedule);
        int b = trajectories.Count;
        bool cfg = guidance is { CfgScale: > 0 };
        var tokens = trajectories.Grids.Take(endScale).Select(g => g.to(network.Device)).ToList();
        var prompts = trajectories.Prompts.ToArray<string?>();
        var cond = network.EncodeConditions(cfg ? prompts.Concat(Enumerable.Repeat<string?>(null, b)).ToArray() : prompts);
        var logits = TeacherForcedLogits(network, cond, cfg ? tokens.Select(g => cat([g, g], 0)).ToList() : tokens, endScale);
        var result = new List<Tensor>();
        for (int k = firstScale; k < endScale; k++)
        {
            var shape = schedule[k];
            var lk = logits.narrow(1, begin[k], shape.Tokens);
            if (cfg) lk = Guide(lk.narrow(0, 0, b), lk.narrow(0, b, b), guidance!.CfgScale, k, schedule.Count);
            if (guidance is not null && guidance.Temperature != 1.0) lk = lk / guidance.Temperature;
            var lp = lk.log_softmax(-1).gather(-1, tokens[k].reshape(b, -1, 1)).view(b, shape.Height, shape.Width);
            result.Add(lp.to(ScalarType.Float32).MoveToOuterDisposeScope());
        }
        return result;
    }
}
