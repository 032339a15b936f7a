using NextFlowRL.Imaging;
using NextFlowRL.Policies.Var.Model;
using TorchSharp.Modules;

namespace NextFlowRL.Policies.Var;

/// <summary>How the sampler computes each scale's logits (for tests and benchmarks).</summary>
/// <param name="UseKvCache">Reuse keys/values of earlier scales (normal); false recomputes the whole prefix every scale.</param>
/// <param name="RecordLogProbs">Also return the log-probabilities of the chosen tokens under the plain conditional distribution.</param>
/// <param name="RecordGuided">Record them instead under the guided, tempered distribution before truncation (see <see cref="VarPolicy.GuidedLogProbs"/>).</param>
public sealed record SamplerSettings(bool UseKvCache = true, bool RecordLogProbs = false, bool RecordGuided = false);

/// <summary>
/// The VAR policy: a multi-scale residual VQ-VAE tokenizer (frozen) and a text-conditioned next-scale transformer
/// (trainable). See the plugin README for the architecture.
/// </summary>
public sealed class VarPolicy : INextScalePolicy
{
    private readonly VarModel _model;
    private readonly string _source;
    private readonly ScaleSchedule _schedule;
    private bool _disposed;

    /// <summary>Wraps a loaded model (taken over) living on <paramref name="device"/>.</summary>
    public VarPolicy(VarModel model, string source, Device device, bool frozen = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _source = source;
        Device = device;
        _schedule = model.Config.Tokenizer.Schedule();
        model.Tokenizer.eval();
        foreach (var p in model.Tokenizer.parameters()) p.requires_grad = false;
        if (frozen)
        {
            foreach (var p in model.Generator.parameters()) p.requires_grad = false;
        }
        model.Generator.eval();
    }

    /// <summary>The underlying model.</summary>
    public VarModel Model => _model;

    /// <inheritdoc/>
    public string Name => "var";

    /// <inheritdoc/>
    public PolicyInfo Info => new(_model.Config.Name, _model.Config.Tokenizer.ImageSize, _model.Config.Tokenizer.ImageSize,
        _model.Generator.parameters().Sum(p => p.numel()), _source);

    /// <inheritdoc/>
    public ScaleSchedule Schedule => _schedule;

    /// <inheritdoc/>
    public Device Device { get; }

    /// <inheritdoc/>
    public TokenTrajectories Sample(IReadOnlyList<string> prompts, SamplingOptions options, CancellationToken cancellationToken = default) =>
        Run(prompts, null, options, new SamplerSettings(), cancellationToken).Trajectories;

    /// <inheritdoc/>
    public TokenTrajectories Continue(TokenTrajectories prefix, SamplingOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        return Run(prefix.Prompts, prefix.Grids, options, new SamplerSettings(), cancellationToken).Trajectories;
    }

    /// <summary>
    /// The sampler with explicit settings: completes <paramref name="prefix"/> (null or empty = from scratch). With
    /// <see cref="SamplerSettings.RecordLogProbs"/>, also returns per new scale the <c>[rows, h, w]</c> log-probabilities
    /// of the chosen tokens under the plain conditional distribution computed by the sampler itself.
    /// </summary>
    public (TokenTrajectories Trajectories, IReadOnlyList<Tensor> LogProbs) Run(
        IReadOnlyList<string> prompts, IReadOnlyList<Tensor>? prefix, SamplingOptions options, SamplerSettings settings, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (prompts.Count == 0) throw new ArgumentException("At least one prompt is needed.", nameof(prompts));
        int s = _schedule.Count, b = prompts.Count, given = prefix?.Count ?? 0;
        if (given > s) throw new ArgumentException($"The prefix has {given} scales; the schedule has {s}.");
        for (int k = 0; k < given; k++)
        {
            var g = prefix![k];
            if (g.dim() != 3 || g.shape[0] != b || g.shape[1] != _schedule[k].Height || g.shape[2] != _schedule[k].Width)
                throw new ArgumentException($"Prefix grid {k} has shape [{string.Join(",", g.shape)}]; expected [{b},{_schedule[k].Height},{_schedule[k].Width}].");
        }
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        bool cfg = options.CfgScale > 0;
        var textPrompts = cfg ? prompts.Cast<string?>().Concat(Enumerable.Repeat<string?>(null, b)).ToArray() : prompts.ToArray<string?>();
        var cond = _model.Generator.EncodeText(textPrompts, Device);
        var cache = settings.UseKvCache ? new KvCache(_model.Config.Generator.Depth) : null;
        using var gen = new Generator((ulong)options.Seed, Device);
        var grids = new List<Tensor>();
        var logps = new List<Tensor>();
        Tensor? fhat = null;
        for (int k = 0; k < s; k++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // One scope per scale: the scale's logits and sampling temporaries are freed before the next scale, so the
            // peak is one scale's worth instead of all scales'. What the next scales need is moved out at the end.
            using var scaleScope = NewDisposeScope();
            var shape = _schedule[k];
            bool forced = k < given;
            Tensor? logits = null;
            if (cache is not null)
            {
                Tensor? feats = null;
                if (k > 0)
                {
                    feats = _model.Tokenizer.Downsample(fhat!, k);
                    if (cfg) feats = cat([feats, feats], 0);
                }
                var x = _model.Generator.EmbedInput(k, cond, feats);
                logits = _model.Generator.Forward(x, cond, null, cache);
            }
            else if (!forced)
            {
                var tokens = cfg ? grids.Select(g => cat([g, g], 0)).ToList() : grids;
                var full = VarForward.TeacherForcedLogits(_model, cond, tokens, k + 1);
                logits = full.narrow(1, _model.Generator.ScaleBegin[k], shape.Tokens);
            }
            Tensor idx;
            if (forced)
            {
                idx = prefix![k].to(ScalarType.Int64).to(Device).clone();
            }
            else
            {
                var plain = logits!.narrow(0, 0, b);
                var l = cfg ? Guide(plain, logits!.narrow(0, b, b), options.CfgScale, k, s) : plain;
                idx = SampleTokens(l, options, gen).view(b, shape.Height, shape.Width);
                if (settings.RecordLogProbs)
                {
                    var recorded = settings.RecordGuided ? l / options.Temperature : plain;
                    logps.Add(recorded.log_softmax(-1).gather(-1, idx.view(b, -1, 1)).view(b, shape.Height, shape.Width).MoveToOuterDisposeScope().MoveToOuterDisposeScope());
                }
            }
            grids.Add(idx.MoveToOuterDisposeScope());
            var e = _model.Tokenizer.EmbedScale(idx, k);
            fhat = (fhat is null ? e : fhat + e).MoveToOuterDisposeScope();
            if (cache is not null)
            {
                for (int layer = 0; layer < cache.Keys.Length; layer++)
                {
                    cache.Keys[layer]?.MoveToOuterDisposeScope();
                    cache.Values[layer]?.MoveToOuterDisposeScope();
                }
            }
        }
        foreach (var g in grids) g.MoveToOuterDisposeScope();
        return (new TokenTrajectories(prompts, grids), logps);
    }

    /// <summary>VAR's guidance ramp: at scale <paramref name="k"/> of <paramref name="scales"/>, <c>t = cfg * k / (scales - 1)</c> and <c>(1 + t) cond - t uncond</c>.</summary>
    private static Tensor Guide(Tensor cond, Tensor uncond, double cfg, int k, int scales)
    {
        double t = scales > 1 ? cfg * k / (scales - 1) : 0;
        return (1 + t) * cond - t * uncond;
    }

    /// <summary>Draws one token per site from logits <c>[B, n, V]</c> after temperature, top-k and top-p.</summary>
    public static Tensor SampleTokens(Tensor logits, SamplingOptions options, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(options);
        using var scope = NewDisposeScope();
        long v = logits.shape[^1];
        var l = options.Temperature == 1.0 ? logits : logits / options.Temperature;
        if (options.TopK > 0 && options.TopK < v)
        {
            var kth = l.topk(options.TopK, dim: -1).values.narrow(-1, options.TopK - 1, 1);
            l = l.masked_fill(l < kth, double.NegativeInfinity);
        }
        if (options.TopP < 1.0)
        {
            var (sorted, order) = l.sort(-1, descending: true);
            var probs = sorted.softmax(-1);
            var before = probs.cumsum(-1) - probs;
            sorted = sorted.masked_fill(before >= options.TopP, double.NegativeInfinity);
            l = full_like(l, double.NegativeInfinity).scatter(-1, order, sorted);
        }
        var p = l.softmax(-1).reshape(-1, v);
        return multinomial(p, 1, replacement: true, generator: generator).view(logits.shape[0], logits.shape[1]).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public IReadOnlyList<Tensor> LogProbs(TokenTrajectories trajectories, int firstScale, int endScale) =>
        TeacherForcedLogProbs(trajectories, firstScale, endScale, null);

    /// <inheritdoc/>
    public IReadOnlyList<Tensor> GuidedLogProbs(TokenTrajectories trajectories, int firstScale, int endScale, SamplingOptions guidance)
    {
        ArgumentNullException.ThrowIfNull(guidance);
        guidance.Validate();
        return TeacherForcedLogProbs(trajectories, firstScale, endScale, guidance);
    }

    private IReadOnlyList<Tensor> TeacherForcedLogProbs(TokenTrajectories trajectories, int firstScale, int endScale, SamplingOptions? guidance)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(trajectories);
        if (firstScale < 0 || endScale > _schedule.Count || firstScale >= endScale)
            throw new ArgumentOutOfRangeException(nameof(firstScale), $"Scale range [{firstScale}, {endScale}) is empty or outside 0..{_schedule.Count}.");
        if (trajectories.Length < endScale)
            throw new ArgumentException($"The trajectories have {trajectories.Length} scales; log-probs up to scale {endScale} need that many.");
        using var scope = NewDisposeScope();
        int b = trajectories.Count;
        bool cfg = guidance is { CfgScale: > 0 };
        var tokens = trajectories.Grids.Take(endScale).Select(g => g.to(Device)).ToList();
        var prompts = trajectories.Prompts.ToArray<string?>();
        // With guidance, the unconditional rows (null prompt) run in the same pass, like the sampler's.
        var cond = _model.Generator.EncodeText(cfg ? prompts.Concat(Enumerable.Repeat<string?>(null, b)).ToArray() : prompts, Device);
        var logits = VarForward.TeacherForcedLogits(_model, cond, cfg ? tokens.Select(g => cat([g, g], 0)).ToList() : tokens, endScale);
        var result = new List<Tensor>();
        for (int k = firstScale; k < endScale; k++)
        {
            var shape = _schedule[k];
            var lk = logits.narrow(1, _model.Generator.ScaleBegin[k], shape.Tokens);
            if (cfg) lk = Guide(lk.narrow(0, 0, b), lk.narrow(0, b, b), guidance!.CfgScale, k, _schedule.Count);
            if (guidance is not null && guidance.Temperature != 1.0) lk = lk / guidance.Temperature;
            var lp = lk.log_softmax(-1).gather(-1, tokens[k].reshape(b, -1, 1)).view(b, shape.Height, shape.Width);
            result.Add(lp.to(ScalarType.Float32).MoveToOuterDisposeScope());
        }
        return result;
    }

    /// <inheritdoc/>
    public IReadOnlyList<RgbImage> Decode(TokenTrajectories trajectories)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(trajectories);
        if (trajectories.Length != _schedule.Count)
            throw new ArgumentException($"Decoding needs complete trajectories ({_schedule.Count} scales), got {trajectories.Length}.");
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var images = _model.Tokenizer.DecodeTokens(trajectories.Grids.Select(g => g.to(Device)).ToList());
        return VarModel.TensorToImages(images);
    }

    /// <inheritdoc/>
    public IReadOnlyList<Parameter> TrainableParameters() => _model.Generator.parameters().Where(p => p.requires_grad).ToArray();

    /// <inheritdoc/>
    public void SetTraining(bool training) => _model.Generator.train(training);

    /// <inheritdoc/>
    public INextScalePolicy CreateFrozenCopy()
    {
        var copy = new VarModel(_model.Config);
        var state = _model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        SafeTensors.LoadInto(copy.Tokenizer, state.Where(kv => kv.Key.StartsWith("tokenizer.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key["tokenizer.".Length..], kv => kv.Value), _source);
        SafeTensors.LoadInto(copy.Generator, state.Where(kv => kv.Key.StartsWith("generator.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key["generator.".Length..], kv => kv.Value), _source);
        copy.Tokenizer.to(Device);
        copy.Generator.to(Device);
        return new VarPolicy(copy, _source + " (frozen copy)", Device, frozen: true);
    }

    /// <inheritdoc/>
    public void Save(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        _model.Save(directory);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _model.Dispose();
    }
}
