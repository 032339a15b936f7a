using NextFlowRL.Imaging;
using NextFlowRL.Policies;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NextFlowRL.Testing;

/// <summary>
/// A small but real next-scale policy for trainer tests: tokens are gray levels; each scale's logits come from the
/// previous scale's token embeddings (nearest-upsampled), a level embedding and a character-bag prompt embedding.
/// Tokens of one scale are independent given the state, as the contract requires. Decoding paints each token of the
/// finest grid as a 4x4 gray block, so rewards such as brightness respond to the tokens.
/// </summary>
public sealed class TinyNextScalePolicy : INextScalePolicy
{
    private const int Pixels = 4;
    private readonly TinyNet _net;

    /// <summary>Creates a policy with weights initialized from <paramref name="seed"/>.</summary>
    public TinyNextScalePolicy(int seed = 0, int vocab = 6, int dim = 32, params int[] sides)
    {
        Schedule = ScaleSchedule.Square(sides.Length == 0 ? [1, 2, 4] : sides);
        Vocab = vocab;
        torch.manual_seed(seed);
        _net = new TinyNet(vocab, dim, Schedule.Count);
        _net.eval();
    }

    private TinyNextScalePolicy(TinyNet net, ScaleSchedule schedule, int vocab)
    {
        _net = net;
        Schedule = schedule;
        Vocab = vocab;
    }

    /// <summary>Token vocabulary size (gray levels).</summary>
    public int Vocab { get; }

    /// <inheritdoc/>
    public string Name => "tiny";

    /// <inheritdoc/>
    public PolicyInfo Info => new("tiny-test", Schedule.Final.Width * Pixels, Schedule.Final.Height * Pixels, _net.parameters().Sum(p => p.numel()), "memory");

    /// <inheritdoc/>
    public ScaleSchedule Schedule { get; }

    /// <inheritdoc/>
    public Device Device => CPU;

    /// <inheritdoc/>
    public TokenTrajectories Sample(IReadOnlyList<string> prompts, SamplingOptions options, CancellationToken cancellationToken = default)
    {
        using var empty = new TokenTrajectories(prompts, []);
        return Continue(empty, options, cancellationToken);
    }

    /// <inheritdoc/>
    public TokenTrajectories Continue(TokenTrajectories prefix, SamplingOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        using var _ = no_grad();
        using var random = new SamplingRandom(options, prefix.Count);
        var grids = prefix.Grids.Select(g => g.clone()).ToList();
        using var cond = _net.Condition(prefix.Prompts);
        using var uncond = zeros_like(cond);
        for (int t = grids.Count; t < Schedule.Count; t++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var previous = t == 0 ? null : grids[t - 1];
            var logits = GuidedLogits(previous, cond, uncond, t, options.CfgScale) / options.Temperature;
            if (options.TopK > 0 && options.TopK < Vocab)
            {
                var kth = logits.topk(options.TopK, dim: -1).values[.., .., .., ^1..];
                logits = logits.masked_fill(logits < kth, double.NegativeInfinity);
            }
            var probs = logits.softmax(-1);
            if (options.TopP < 1)
            {
                var (sorted, index) = probs.sort(-1, descending: true);
                var cumulative = sorted.cumsum(-1);
                var remove = (cumulative - sorted) >= options.TopP;
                sorted = sorted.masked_fill(remove, 0);
                probs = zeros_like(probs).scatter(-1, index, sorted);
            }
            var tokens = random.Draw(probs.reshape(prefix.Count, -1, Vocab)).reshape(prefix.Count, Schedule[t].Height, Schedule[t].Width);
            grids.Add(tokens.MoveToOuterDisposeScope());
        }
        return new TokenTrajectories(prefix.Prompts, grids);
    }

    /// <inheritdoc/>
    public IReadOnlyList<Tensor> LogProbs(TokenTrajectories trajectories, int firstScale, int endScale) =>
        TeacherForced(trajectories, firstScale, endScale, null);

    /// <inheritdoc/>
    public IReadOnlyList<Tensor> GuidedLogProbs(TokenTrajectories trajectories, int firstScale, int endScale, SamplingOptions guidance)
    {
        ArgumentNullException.ThrowIfNull(guidance);
        guidance.Validate();
        return TeacherForced(trajectories, firstScale, endScale, guidance);
    }

    /// <summary>Scale <paramref name="t"/>'s logits; with <paramref name="cfg"/> &gt; 0 guided by the zero (unconditional) prompt, ramped linearly over the scales.</summary>
    private Tensor GuidedLogits(Tensor? previous, Tensor cond, Tensor uncond, int t, double cfg)
    {
        var logits = _net.Logits(previous, cond, t, Schedule[t]);
        if (cfg <= 0) return logits;
        double ramp = cfg * (Schedule.Count == 1 ? 1 : (double)t / (Schedule.Count - 1));
        return (1 + ramp) * logits - ramp * _net.Logits(previous, uncond, t, Schedule[t]);
    }

    private List<Tensor> TeacherForced(TokenTrajectories trajectories, int firstScale, int endScale, SamplingOptions? guidance)
    {
        ArgumentNullException.ThrowIfNull(trajectories);
        if (firstScale < 0 || endScale > trajectories.Length || firstScale >= endScale)
            throw new ArgumentOutOfRangeException(nameof(firstScale), $"Scales {firstScale}..{endScale} outside the {trajectories.Length} given.");
        using var cond = _net.Condition(trajectories.Prompts);
        using var uncond = zeros_like(cond);
        var result = new List<Tensor>();
        for (int t = firstScale; t < endScale; t++)
        {
            var previous = t == 0 ? null : trajectories.Grids[t - 1];
            var logits = GuidedLogits(previous, cond, uncond, t, guidance?.CfgScale ?? 0);
            if (guidance is not null) logits = logits / guidance.Temperature;
            var logp = logits.log_softmax(-1).gather(-1, trajectories.Grids[t].unsqueeze(-1)).squeeze(-1);
            result.Add(logp);
        }
        return result;
    }

    /// <inheritdoc/>
    public IReadOnlyList<RgbImage> Decode(TokenTrajectories trajectories)
    {
        ArgumentNullException.ThrowIfNull(trajectories);
        var final = trajectories.Grids[Schedule.Count - 1];
        var tokens = final.data<long>().ToArray();
        var f = Schedule.Final;
        var images = new List<RgbImage>();
        for (int b = 0; b < trajectories.Count; b++)
        {
            var rgb = new byte[f.Width * Pixels * f.Height * Pixels * 3];
            for (int y = 0; y < f.Height * Pixels; y++)
                for (int x = 0; x < f.Width * Pixels; x++)
                {
                    long v = tokens[(b * f.Height + y / Pixels) * f.Width + x / Pixels];
                    byte level = (byte)(255 * v / (Vocab - 1));
                    int o = (y * f.Width * Pixels + x) * 3;
                    rgb[o] = rgb[o + 1] = rgb[o + 2] = level;
                }
            images.Add(new RgbImage(f.Width * Pixels, f.Height * Pixels, rgb));
        }
        return images;
    }

    /// <inheritdoc/>
    public IReadOnlyList<Parameter> TrainableParameters() => _net.parameters().Where(p => p.requires_grad).ToList();

    /// <inheritdoc/>
    public void SetTraining(bool training) => _net.train(training);

    /// <inheritdoc/>
    public INextScalePolicy CreateFrozenCopy()
    {
        var copy = new TinyNet(Vocab, _net.Dim, Schedule.Count);
        copy.load_state_dict(_net.state_dict());
        foreach (var p in copy.parameters()) p.requires_grad = false;
        copy.eval();
        return new TinyNextScalePolicy(copy, Schedule, Vocab);
    }

    /// <inheritdoc/>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var tmp = Path.Combine(directory, ".weights.tmp");
        _net.save(tmp);
        File.Move(tmp, Path.Combine(directory, "weights.bin"), overwrite: true);
        AtomicFile.WriteAllText(Path.Combine(directory, "tiny.json"), $"{{\"vocab\":{Vocab},\"dim\":{_net.Dim},\"sides\":[{Schedule}]}}");
    }

    /// <summary>Loads what <see cref="Save"/> wrote into a policy of the same shape.</summary>
    public static TinyNextScalePolicy Load(string directory, int vocab = 6, int dim = 32, params int[] sides)
    {
        var weights = Path.Combine(directory, "weights.bin");
        if (!File.Exists(weights)) throw new InvalidDataException($"no tiny policy in '{directory}' (weights.bin missing)");
        var policy = new TinyNextScalePolicy(0, vocab, dim, sides);
        policy._net.load(weights);
        return policy;
    }

    /// <inheritdoc/>
    public void Dispose() => _net.Dispose();

    private sealed class TinyNet : nn.Module
    {
        private readonly Embedding chars;
        private readonly Embedding levels;
        private readonly Embedding tokens;
        private readonly Linear hidden;
        private readonly Linear head;

        public TinyNet(int vocab, int dim, int scales) : base("tiny")
        {
            Dim = dim;
            chars = nn.Embedding(128, dim);
            levels = nn.Embedding(scales, dim);
            tokens = nn.Embedding(vocab, dim);
            hidden = nn.Linear(dim, dim);
            head = nn.Linear(dim, vocab);
            RegisterComponents();
        }

        public int Dim { get; }

        public Tensor Condition(IReadOnlyList<string> prompts)
        {
            var rows = prompts.Select(p =>
            {
                using var ids = tensor((p.Length == 0 ? " " : p).Select(ch => (long)(ch % 128)).ToArray());
                return chars.forward(ids).mean([0]);
            }).ToArray();
            var stacked = stack(rows);
            foreach (var r in rows) r.Dispose();
            return stacked;
        }

        public Tensor Logits(Tensor? previous, Tensor cond, int level, ScaleShape shape)
        {
            using var scope = NewDisposeScope();
            long b = cond.shape[0];
            Tensor x;
            if (previous is null)
            {
                x = zeros(b, shape.Height, shape.Width, Dim);
            }
            else
            {
                var e = tokens.forward(previous).permute(0, 3, 1, 2);
                x = nn.functional.interpolate(e, [shape.Height, shape.Width], mode: InterpolationMode.Nearest).permute(0, 2, 3, 1);
            }
            using var lv = tensor(new long[] { level });
            x = x + levels.forward(lv).view(1, 1, 1, Dim) + cond.view(b, 1, 1, Dim);
            return head.forward(hidden.forward(x).tanh()).MoveToOuterDisposeScope();
        }
    }
}

/// <summary>Provider of <see cref="TinyNextScalePolicy"/>: <c>Load(null)</c> = fresh weights from a seed.</summary>
public sealed class TinyPolicyProvider(int seed = 0) : IPolicyProvider
{
    /// <inheritdoc/>
    public string Name => "tiny";

    /// <inheritdoc/>
    public INextScalePolicy Load(string? checkpoint, Device? device = null) =>
        checkpoint is null ? new TinyNextScalePolicy(seed) : TinyNextScalePolicy.Load(checkpoint);
}
