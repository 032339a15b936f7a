using NextFlowRL.Plugins;
using NextFlowRL.Policies.Var.Model;
using NextFlowRL.Policies.Var.Training;

namespace NextFlowRL.Policies.Var.Commands;

/// <summary>Shared parsing of the pretraining commands.</summary>
internal static class PretrainArgs
{
    public static readonly string[] Common = ["out", "steps", "batch", "lr", "warmup", "seed", "checkpoint-every", "log-every", "threads", "max-minutes"];

    public static PretrainOptions Options(Args a, VarModelConfig config, string? tokenizer = null) => new()
    {
        OutDir = a.String("out") ?? throw new ArgumentException("--out DIR is required"),
        Steps = a.Int("steps", 2000, 1),
        Batch = a.Int("batch", 32, 1, 4096),
        LearningRate = a.Double("lr", 2e-3, 1e-7, 1),
        Warmup = a.Int("warmup", 100, 1),
        Seed = a.Int("seed", 1),
        CheckpointEvery = a.Int("checkpoint-every", 200, 1),
        LogEvery = a.Int("log-every", 20, 1),
        Threads = a.Int("threads", 2, 0, 256),
        MaxSeconds = a.Double("max-minutes", 0, 0) * 60,
        Config = config,
        TokenizerCheckpoint = tokenizer,
    };

    public static async Task<int> Run(string usage, IReadOnlyList<string> args, string[] extra, Func<Args, int> body)
    {
        Args a;
        try { a = Args.Parse(args, Common.Concat(extra).ToArray()); }
        catch (ArgumentException e)
        {
            await Console.Error.WriteLineAsync($"error: {e.Message}. Usage: {usage}");
            return 2;
        }
        if (a.Help)
        {
            Console.WriteLine(usage);
            return 0;
        }
        try { return body(a); }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or IOException)
        {
            await Console.Error.WriteLineAsync($"error: {e.Message}");
            return 2;
        }
    }
}

/// <summary><c>nextflow-rl pretrain tokenizer</c>: trains the multi-scale VQ-VAE on synthetic text renders.</summary>
public sealed class PretrainTokenizerCommand : INextFlowRLCommand
{
    private const string Usage = "nextflow-rl pretrain tokenizer --out DIR [--steps N] [--batch N] [--lr X] [--seed S] [--arch linear|patch|conv] [--scales 1,2,3,4,6,8,12,16] " +
        "[--codebook V] [--channels C] [--latent-channels Z] [--downsamples D] [--threads T] [--max-minutes M] [--checkpoint-every N] (resumes when DIR holds a run)";

    /// <inheritdoc/>
    public IReadOnlyList<string> Path { get; } = ["pretrain", "tokenizer"];

    /// <inheritdoc/>
    public string Description => "Pretrain the VAR policy's multi-scale VQ-VAE tokenizer (resumable).";

    /// <inheritdoc/>
    public Task<int> InvokeAsync(IReadOnlyList<string> args, CancellationToken cancellationToken) =>
        PretrainArgs.Run(Usage, args, ["arch", "scales", "codebook", "channels", "latent-channels", "downsamples", "name"], a =>
        {
            var d = new TokenizerConfig();
            var tc = new TokenizerConfig
            {
                Architecture = a.String("arch") ?? d.Architecture,
                Scales = a.Scales("scales") ?? d.Scales,
                CodebookSize = a.Int("codebook", d.CodebookSize, 2, 65536),
                Channels = a.Int("channels", d.Channels, 1, 1024),
                LatentChannels = a.Int("latent-channels", d.LatentChannels, 1, 1024),
                Downsamples = a.Int("downsamples", d.Downsamples, 0, 6),
            };
            tc.Validate();
            var o = PretrainArgs.Options(a, new VarModelConfig { Name = a.String("name") ?? "tiny-text", Tokenizer = tc });
            Pretrainer.TrainTokenizer(o, Console.Out, cancellationToken);
            return 0;
        });
}

/// <summary><c>nextflow-rl pretrain generator</c>: trains the next-scale transformer on a frozen tokenizer.</summary>
public sealed class PretrainGeneratorCommand : INextFlowRLCommand
{
    private const string Usage = "nextflow-rl pretrain generator --out DIR (--tokenizer TOKDIR [--dim D] [--depth L] [--heads H] | --init MODELDIR) [--steps N] [--batch N] [--lr X] " +
        "[--seed S] [--cond-dropout P] [--threads T] [--max-minutes M] [--checkpoint-every N] (resumes when DIR holds a run; --init starts from a model's weights with a new optimizer)";

    /// <inheritdoc/>
    public IReadOnlyList<string> Path { get; } = ["pretrain", "generator"];

    /// <inheritdoc/>
    public string Description => "Pretrain the VAR policy's next-scale transformer on a frozen tokenizer (resumable).";

    /// <inheritdoc/>
    public Task<int> InvokeAsync(IReadOnlyList<string> args, CancellationToken cancellationToken) =>
        PretrainArgs.Run(Usage, args, ["tokenizer", "init", "dim", "depth", "heads", "cond-dropout", "name"], a =>
        {
            var tokDir = a.String("tokenizer");
            var initDir = a.String("init");
            var outDir = a.String("out") ?? throw new ArgumentException("--out DIR is required");
            bool resume = File.Exists(System.IO.Path.Combine(outDir, "trainer_state.json"));
            if (initDir is not null)
            {
                if (tokDir is not null || a.String("dim") is not null || a.String("depth") is not null || a.String("heads") is not null)
                    throw new ArgumentException("--init takes the tokenizer and the architecture from MODELDIR: drop --tokenizer, --dim, --depth and --heads");
                var initPath = System.IO.Path.Combine(initDir, VarModel.ConfigFile);
                if (!File.Exists(initPath)) throw new InvalidDataException($"{initPath}: model config not found.");
                var init = VarModelConfig.FromJson(File.ReadAllText(initPath), initPath);
                var config = init with { Generator = init.Generator with { CondDropout = a.Double("cond-dropout", init.Generator.CondDropout, 0, 0.99) } };
                var io = PretrainArgs.Options(a, config) with { InitCheckpoint = initDir };
                Pretrainer.TrainGenerator(io, Console.Out, cancellationToken);
                return 0;
            }
            if (tokDir is null && !resume) throw new ArgumentException("--tokenizer TOKDIR (or --init MODELDIR) is required for a fresh run");
            TokenizerConfig tc = new();
            if (tokDir is not null)
            {
                var cfgPath = System.IO.Path.Combine(tokDir, VarModel.ConfigFile);
                if (!File.Exists(cfgPath)) throw new InvalidDataException($"{cfgPath}: tokenizer checkpoint config not found.");
                tc = VarModelConfig.FromJson(File.ReadAllText(cfgPath), cfgPath).Tokenizer;
            }
            var d = new GeneratorConfig();
            var gc = new GeneratorConfig
            {
                Dim = a.Int("dim", d.Dim, 8, 4096),
                Depth = a.Int("depth", d.Depth, 1, 64),
                Heads = a.Int("heads", d.Heads, 1, 64),
                CondDropout = a.Double("cond-dropout", d.CondDropout, 0, 0.99),
            };
            gc.Validate();
            var o = PretrainArgs.Options(a, new VarModelConfig { Name = a.String("name") ?? "tiny-text", Tokenizer = tc, Generator = gc }, tokDir);
            Pretrainer.TrainGenerator(o, Console.Out, cancellationToken);
            return 0;
        });
}
