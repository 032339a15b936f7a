using System.Diagnostics;
using System.Text.Json;
using NextFlowRL.Imaging;
using NextFlowRL.Plugins;
using NextFlowRL.Policies.Var.Data;
using NextFlowRL.Policies.Var.Model;
using NextFlowRL.Torch.Checkpoints;
using NextFlowRL.Torch.Imaging;
using NextFlowRL.Torch.NextScale;
using F = TorchSharp.torch.nn.functional;

namespace NextFlowRL.Policies.Var.Training;

/// <summary>Options shared by both pretraining stages.</summary>
public sealed record PretrainOptions
{
    /// <summary>Output (and resume) directory.</summary>
    public required string OutDir { get; init; }

    /// <summary>Total optimizer steps.</summary>
    public int Steps { get; init; } = 2000;

    /// <summary>Images per step.</summary>
    public int Batch { get; init; } = 32;

    /// <summary>Peak learning rate (linear warmup, cosine decay to 10%).</summary>
    public double LearningRate { get; init; } = 2e-3;

    /// <summary>Warmup steps.</summary>
    public int Warmup { get; init; } = 100;

    /// <summary>Data and initialization seed.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Checkpoint interval in steps (and at the end).</summary>
    public int CheckpointEvery { get; init; } = 200;

    /// <summary>Torch intra-op threads (0 = leave as is).</summary>
    public int Threads { get; init; }

    /// <summary>Stop after this many seconds (checkpointing first); 0 = no limit.</summary>
    public double MaxSeconds { get; init; }

    /// <summary>Model configuration for a fresh run (tokenizer stage: its tokenizer part; generator stage: its generator part).</summary>
    public VarModelConfig Config { get; init; } = new();

    /// <summary>Generator stage: the tokenizer checkpoint directory (from the tokenizer stage).</summary>
    public string? TokenizerCheckpoint { get; init; }

    /// <summary>
    /// Generator stage: start a fresh run from this model's weights (tokenizer and generator; <see cref="Config"/> must
    /// be its architecture) with a new optimizer and learning-rate schedule, e.g. to continue pretraining a shipped model.
    /// </summary>
    public string? InitCheckpoint { get; init; }
}

/// <summary>The resume marker written beside each pretraining checkpoint.</summary>
/// <param name="Stage">tokenizer or generator.</param>
/// <param name="Step">Completed steps.</param>
/// <param name="Seed">The run's seed.</param>
/// <param name="Loss">Smoothed loss at the checkpoint.</param>
/// <param name="Seconds">Training seconds so far.</param>
public sealed record TrainerState(string Stage, int Step, int Seed, double Loss, double Seconds);

/// <summary>The two pretraining stages (tokenizer, then generator on the frozen tokenizer).</summary>
public static class Pretrainer
{
    private const string StateFile = "trainer_state.json";
    private const string OptimFile = "optim.safetensors";

    /// <summary>A deterministic batch of rendered training examples for step <paramref name="step"/>.</summary>
    public static (TextExample[] Examples, RgbImage[] Images) Batch(int seed, int step, int batch)
    {
        var rng = new Random(HashCode.Combine(seed, step, 0x5EED));
        var examples = Enumerable.Range(0, batch).Select(_ => TextDataset.Draw(rng, WordLists.Default.Train)).ToArray();
        return (examples, examples.Select(TextDataset.Render).ToArray());
    }

    private static double Lr(PretrainOptions o, int step)
    {
        if (step < o.Warmup) return o.LearningRate * (step + 1) / o.Warmup;
        double t = Math.Min(1.0, (double)(step - o.Warmup) / Math.Max(1, o.Steps - o.Warmup));
        return o.LearningRate * (0.1 + 0.9 * 0.5 * (1 + Math.Cos(Math.PI * t)));
    }

    /// <summary>Trains the tokenizer (reconstruction MSE + VQ loss, dead-code restarts). Resumes from <c>OutDir</c> when it holds a tokenizer checkpoint.</summary>
    /// <returns>The final mean squared reconstruction error on a fixed held-out batch (pixels in [0, 1]).</returns>
    /// <param name="o">What to train and where.</param>
    /// <param name="log">Where the stage's messages go.</param>
    /// <param name="progress">The step display (null: plain lines on <paramref name="log"/>).</param>
    /// <param name="ct">Stops at the next step, with a checkpoint.</param>
    public static double TrainTokenizer(PretrainOptions o, TextWriter log, IProgressDisplay? progress = null, CancellationToken ct = default)
    {
        if (o.Threads > 0) set_num_threads(o.Threads);
        if (o.Config.Tokenizer.Architecture == "linear") return FitLinearTokenizer(o, log, progress);
        var (model, state) = OpenOrCreate(o, "tokenizer", o.Config);
        using var _m = model;
        var tok = model.Tokenizer;
        tok.train();
        foreach (var p in model.Generator.parameters()) p.requires_grad = false;
        using var opt = new PretrainOptimizer(tok.named_parameters().Select(p => (p.name, p.parameter)), s => Lr(o, s), o.LearningRate, weightDecay: 0.0);
        LoadOptimizer(o.OutDir, opt, state);
        var usage = zeros(model.Config.Tokenizer.CodebookSize, dtype: ScalarType.Int64);
        var gen = new Generator((ulong)o.Seed);
        int steps = RunSteps(o, "tokenizer", model, opt, state, Display(progress, log), (step, ema) =>
        {
            var (_, images) = Batch(o.Seed, step, o.Batch);
            var x = ImageTensors.FromImages(images);
            if (step == 0 && state is null)
            {
                var (res, _) = tok.ResidualSamples(x);
                tok.ReviveCodes(ones(model.Config.Tokenizer.CodebookSize, dtype: ScalarType.Bool), res, gen);
            }
            var (rec, vq) = tok.ForwardTrain(x);
            var loss = F.mse_loss(rec, x) + vq;
            ema = OptimizerStep(opt, loss, ema);
            if (step % 10 == 0)
            {
                var (samples, used) = tok.ResidualSamples(x);
                usage.add_(used);
                if (step % 100 == 90 && step < o.Steps * 0.8)
                {
                    int revived = tok.ReviveCodes(usage.eq(0), samples, gen);
                    usage.zero_();
                    if (revived > 0) log.WriteLine($"  revived {revived} unused codes");
                }
            }
            return ema;
        }, ct).Step;
        double mse = ReconstructionError(model, o.Seed);
        log.WriteLine($"tokenizer: step {steps}, reconstruction MSE {mse:F5} (pixels in [0,1]) on 64 held-out renders");
        return mse;
    }

    /// <summary>
    /// Fits the linear tokenizer in closed form: the patch basis by PCA (uncentred) of patches of rendered training
    /// images, then the shared codebook by <c>Steps</c> rounds of k-means (Lloyd) on the residuals of all scales.
    /// </summary>
    public static double FitLinearTokenizer(PretrainOptions o, TextWriter log, IProgressDisplay? progress = null)
    {
        manual_seed(o.Seed);
        using var model = new VarModel(o.Config);
        var tok = model.Tokenizer;
        var tc = o.Config.Tokenizer;
        int patch = 1 << tc.Downsamples, z = tc.LatentChannels, v = tc.CodebookSize;
        var clock = Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var (_, images) = Batch(o.Seed, 0, o.Batch);
        var x = ImageTensors.FromImages(images);
        var patches = F.unfold(x, patch, stride: patch).transpose(1, 2).reshape(-1, 3 * patch * patch); // [N, 3pp]
        var cov = patches.t().matmul(patches) / patches.shape[0];
        var (_, vectors) = linalg.eigh(cov);
        var basis = vectors.flip(1).narrow(1, 0, z).contiguous(); // top-z eigenvectors
        tok.SetPatchBasis(basis);
        var pcaRec = tok.DecodeFeatures(tok.EncodeFeatures(x));
        log.WriteLine($"tokenizer: PCA basis of {patches.shape[0]} patches, projection MSE {(((pcaRec - x) / 2).pow(2).mean()).item<float>():F5}");
        var gen = new Generator((ulong)o.Seed);
        var (res0, _) = tok.ResidualSamples(x);
        tok.ReviveCodes(ones(v, dtype: ScalarType.Bool), res0, gen);
        // Lloyd rounds on the pooled residuals of all scales. Moving a coarse code changes the residuals every finer
        // scale sees, so a round can make the reconstruction worse: the codebook of the best round is kept.
        double best = double.PositiveInfinity;
        var bestCodes = tok.Codebook.clone();
        using (var rounds = Display(progress, log).Start("tokenizer k-means", o.Steps, "rounds"))
        for (int round = 0; round < o.Steps; round++)
        {
            using var inner = NewDisposeScope();
            var (samples, usage) = tok.ResidualSamples(x);
            var assign = tok.Quantize(samples.view(-1, z, 1, 1)).flatten();
            var sums = zeros(v, z).index_add_(0, assign, samples, 1);
            var counts = zeros(v).index_add_(0, assign, ones(assign.shape[0]), 1);
            var used = counts.gt(0);
            var centroids = where(used.unsqueeze(1), sums / counts.clamp_min(1).unsqueeze(1), tok.Codebook);
            tok.SetCodebook(centroids);
            int revived = tok.ReviveCodes(used.logical_not(), samples, gen);
            double mse = (((tok.DecodeTokens(tok.Encode(x)) - x) / 2).pow(2).mean()).item<float>();
            if (mse < best)
            {
                best = mse;
                bestCodes.copy_(tok.Codebook);
            }
            rounds.Advance(1, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"reconstruction MSE {mse:F5}, {used.sum().item<long>()} codes used, {revived} revived"));
        }
        tok.SetCodebook(bestCodes);
        log.WriteLine($"tokenizer: kept the codebook of the best round (fitting-batch MSE {best:F5})");
        double err = ReconstructionError(model, o.Seed);
        model.Save(o.OutDir);
        log.WriteLine($"tokenizer: reconstruction MSE {err:F5} (pixels in [0,1]) on 64 held-out renders, {clock.Elapsed.TotalSeconds:F0}s");
        return err;
    }

    /// <summary>Mean squared reconstruction error (pixels scaled to [0, 1]) through tokens on a fixed batch of held-out-word renders.</summary>
    public static double ReconstructionError(VarModel model, int seed, int count = 64)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var rng = new Random(seed + 99991);
        var images = Enumerable.Range(0, count).Select(_ => TextDataset.Render(TextDataset.Draw(rng, WordLists.Default.HeldOut))).ToArray();
        var x = ImageTensors.FromImages(images);
        var rec = model.Tokenizer.DecodeTokens(model.Tokenizer.Encode(x));
        return (((rec - x) / 2).pow(2).mean()).item<float>();
    }

    /// <summary>Trains the generator on the frozen tokenizer (cross-entropy over all scales, condition dropout for CFG).</summary>
    /// <returns>The final smoothed training loss.</returns>
    /// <param name="o">What to train and where.</param>
    /// <param name="log">Where the stage's messages go.</param>
    /// <param name="progress">The step display (null: plain lines on <paramref name="log"/>).</param>
    /// <param name="ct">Stops at the next step, with a checkpoint.</param>
    public static double TrainGenerator(PretrainOptions o, TextWriter log, IProgressDisplay? progress = null, CancellationToken ct = default)
    {
        if (o.Threads > 0) set_num_threads(o.Threads);
        var (model, state) = OpenOrCreate(o, "generator", o.Config);
        using var _m = model;
        if (state is null && o.InitCheckpoint is not null)
        {
            using var init = VarModel.Load(o.InitCheckpoint);
            StateDictFile.LoadInto(model.Tokenizer, init.Tokenizer.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value), o.InitCheckpoint);
            StateDictFile.LoadInto(model.Generator, init.Generator.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value), o.InitCheckpoint);
            log.WriteLine($"generator: starting from the weights of {o.InitCheckpoint} (new optimizer and schedule)");
        }
        else if (state is null)
        {
            if (o.TokenizerCheckpoint is null) throw new ArgumentException("The generator stage needs --tokenizer DIR (a tokenizer checkpoint) or --init DIR (a model) for a fresh run.");
            using var tokModel = VarModel.Load(o.TokenizerCheckpoint);
            if (tokModel.Config.Tokenizer != model.Config.Tokenizer && !SameTokenizer(tokModel.Config.Tokenizer, model.Config.Tokenizer))
                throw new InvalidDataException($"{o.TokenizerCheckpoint}: tokenizer architecture differs from the configured one.");
            var tensors = tokModel.Tokenizer.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
            StateDictFile.LoadInto(model.Tokenizer, tensors, o.TokenizerCheckpoint);
        }
        model.Tokenizer.eval();
        foreach (var p in model.Tokenizer.parameters()) p.requires_grad = false;
        var g = model.Generator;
        g.train();
        using var opt = new PretrainOptimizer(g.named_parameters().Select(p => (p.name, p.parameter)), s => Lr(o, s), o.LearningRate, weightDecay: 0.01);
        LoadOptimizer(o.OutDir, opt, state);
        int scales = model.Config.Tokenizer.Scales.Length;
        return RunSteps(o, "generator", model, opt, state, Display(progress, log), (step, ema) =>
        {
            var (examples, images) = Batch(o.Seed, step, o.Batch);
            var drop = new Random(HashCode.Combine(o.Seed, step, 0xD0));
            var prompts = examples.Select(e => drop.NextDouble() < model.Config.Generator.CondDropout ? null : e.Prompt).ToArray();
            var tokens = model.Tokenizer.Encode(ImageTensors.FromImages(images));
            var cond = g.EncodeText(prompts, CPU);
            var logits = NextScaleSampler.TeacherForcedLogits(new VarNetwork(model, CPU), cond, tokens, scales);
            var target = cat(tokens.Select(t => t.flatten(1)).ToArray(), 1);
            var loss = F.cross_entropy(logits.reshape(-1, logits.shape[^1]), target.flatten());
            return OptimizerStep(opt, loss, ema);
        }, ct).Loss;
    }

    /// <summary>
    /// The step loop both trained stages share: from the resumed step to <c>Steps</c>, runs <paramref name="body"/>
    /// (step, smoothed loss -> new smoothed loss) inside a dispose scope, prints progress with ETA, and checkpoints
    /// every <c>CheckpointEvery</c> steps, at the end, on cancellation and when the time limit is reached.
    /// </summary>
    /// <returns>The completed step count and the final smoothed loss.</returns>
    private static (int Step, double Loss) RunSteps(PretrainOptions o, string stage, VarModel model, PretrainOptimizer opt, TrainerState? state,
        IProgressDisplay display, Func<int, double, double> body, CancellationToken ct)
    {
        int step = state?.Step ?? 0;
        double startSeconds = state?.Seconds ?? 0, ema = state?.Loss ?? double.NaN;
        var clock = Stopwatch.StartNew();
        using var progress = display.Start(step == 0 ? stage : $"{stage} (from step {step})", o.Steps - step, "steps");
        while (step < o.Steps && !ct.IsCancellationRequested)
        {
            using (NewDisposeScope()) ema = body(step, ema);
            step++;
            double elapsed = clock.Elapsed.TotalSeconds;
            progress.Advance(1, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"loss {ema:F4}"));
            bool timeUp = o.MaxSeconds > 0 && elapsed >= o.MaxSeconds;
            if (step % o.CheckpointEvery == 0 || step == o.Steps || timeUp || ct.IsCancellationRequested)
                Checkpoint(o.OutDir, model, opt, new TrainerState(stage, step, o.Seed, ema, startSeconds + elapsed));
            if (timeUp) break;
        }
        return (step, ema);
    }

    /// <summary>The caller's progress display, or plain lines on the stage's log.</summary>
    private static IProgressDisplay Display(IProgressDisplay? progress, TextWriter log) => progress ?? new PlainProgressDisplay(log);

    /// <summary>Backward, gradient-norm clip at 1, one AdamW step at the schedule's rate; returns the loss's exponential moving average (0.95).</summary>
    private static double OptimizerStep(PretrainOptimizer opt, Tensor loss, double ema)
    {
        opt.Step(loss, maxNorm: 1.0);
        double l = loss.item<float>();
        return double.IsNaN(ema) ? l : 0.95 * ema + 0.05 * l;
    }

    private static bool SameTokenizer(TokenizerConfig a, TokenizerConfig b) =>
        a.Architecture == b.Architecture && a.ImageSize == b.ImageSize && a.Channels == b.Channels && a.LatentChannels == b.LatentChannels && a.Downsamples == b.Downsamples
        && a.CodebookSize == b.CodebookSize && a.PhiCount == b.PhiCount && a.Scales.Length == b.Scales.Length
        && a.Scales.Zip(b.Scales).All(p => p.First.SequenceEqual(p.Second));

    private static (VarModel Model, TrainerState? State) OpenOrCreate(PretrainOptions o, string stage, VarModelConfig config)
    {
        var statePath = Path.Combine(o.OutDir, StateFile);
        if (File.Exists(statePath))
        {
            var state = JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(statePath))
                ?? throw new InvalidDataException($"{statePath}: empty trainer state.");
            if (state.Stage != stage) throw new InvalidDataException($"{o.OutDir} holds a {state.Stage} run, not a {stage} run.");
            return (VarModel.Load(o.OutDir), state);
        }
        manual_seed(o.Seed);
        return (new VarModel(config), null);
    }

    private static void LoadOptimizer(string dir, PretrainOptimizer opt, TrainerState? state)
    {
        if (state is null)
        {
            opt.StartAt(0);
            return;
        }
        var tensors = StateDictFile.Read(Path.Combine(dir, OptimFile));
        try { opt.Load(tensors, state.Step, Path.Combine(dir, OptimFile)); }
        finally { foreach (var t in tensors.Values) t.Dispose(); }
    }

    private static void Checkpoint(string dir, VarModel model, PretrainOptimizer opt, TrainerState state)
    {
        Directory.CreateDirectory(dir);
        StateDictFile.WriteSafetensors(Path.Combine(dir, OptimFile), opt.State());
        model.Save(dir);
        AtomicFile.WriteAllText(Path.Combine(dir, StateFile), JsonSerializer.Serialize(state));
    }
}
