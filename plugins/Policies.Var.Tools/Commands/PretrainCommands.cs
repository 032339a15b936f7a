using System.CommandLine;
using System.Globalization;
using NextFlowRL.Plugins;
using NextFlowRL.Policies.Var.Model;
using NextFlowRL.Policies.Var.Training;

namespace NextFlowRL.Policies.Var.Commands;

/// <summary>The options both pretraining stages share, declared once (System.CommandLine through <see cref="CommandLineCommand"/>).</summary>
public abstract class PretrainCommandBase(IProgressDisplay? progress) : CommandLineCommand
{
    /// <summary>The host's progress display (plain lines on standard error when the host registers none).</summary>
    private protected IProgressDisplay Progress { get; } = progress ?? new PlainProgressDisplay();

    private protected readonly Option<string> Out = new("--out") { Description = "Output directory (a run resumes when it holds one).", Required = true };
    private protected readonly Option<int> Steps = Integer("--steps", "Total optimizer steps.", 2000, 1);
    private protected readonly Option<int> Batch = Integer("--batch", "Images per step.", 32, 1, 4096);
    private protected readonly Option<double> Lr = Number("--lr", "Peak learning rate (linear warmup, cosine decay to 10%).", 2e-3, 1e-7, 1);
    private protected readonly Option<int> Warmup = Integer("--warmup", "Warmup steps.", 100, 1);
    private protected readonly Option<int> Seed = Integer("--seed", "Data and initialization seed.", 1);
    private protected readonly Option<int> CheckpointEvery = Integer("--checkpoint-every", "Checkpoint interval in steps (and at the end).", 200, 1);
    private protected readonly Option<int> Threads = Integer("--threads", "Torch intra-op threads (0 = leave as is).", 2, 0, 256);
    private protected readonly Option<double> MaxMinutes = Number("--max-minutes", "Stop after this many minutes, checkpointing first (0 = no limit).", 0, 0);
    private protected readonly Option<string> Name = new("--name") { Description = "Model name written into config.json.", DefaultValueFactory = _ => "tiny-text" };

    /// <summary>A command with the shared options and <paramref name="extra"/>.</summary>
    private protected Command Create(string description, IEnumerable<Option> extra, Func<ParseResult, CancellationToken, int> body)
    {
        var command = new Command(Path[^1], description);
        foreach (var option in new Option[] { Out, Steps, Batch, Lr, Warmup, Seed, CheckpointEvery, Threads, MaxMinutes, Name }.Concat(extra))
            command.Options.Add(option);
        command.SetAction((parse, ct) => Task.FromResult(body(parse, ct)));
        return command;
    }

    private protected PretrainOptions Options(ParseResult a, VarModelConfig config, string? tokenizer = null) => new()
    {
        OutDir = a.GetValue(Out)!,
        Steps = a.GetValue(Steps),
        Batch = a.GetValue(Batch),
        LearningRate = a.GetValue(Lr),
        Warmup = a.GetValue(Warmup),
        Seed = a.GetValue(Seed),
        CheckpointEvery = a.GetValue(CheckpointEvery),
        Threads = a.GetValue(Threads),
        MaxSeconds = a.GetValue(MaxMinutes) * 60,
        Config = config,
        TokenizerCheckpoint = tokenizer,
    };

    /// <summary>Comma-separated side lengths (<c>1,2,4,8,16</c>) or <c>HxW</c> items (<c>1x2,2x4</c>).</summary>
    private protected static Option<int[][]?> ScalesOption(string name, string description) => new(name)
    {
        Description = description,
        CustomParser = result =>
        {
            var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
            try
            {
                return text.Split(',').Select(p =>
                {
                    var hw = p.Split('x');
                    return hw.Length switch
                    {
                        1 => [int.Parse(hw[0], CultureInfo.InvariantCulture), int.Parse(hw[0], CultureInfo.InvariantCulture)],
                        2 => new[] { int.Parse(hw[0], CultureInfo.InvariantCulture), int.Parse(hw[1], CultureInfo.InvariantCulture) },
                        _ => throw new FormatException(),
                    };
                }).ToArray();
            }
            catch (FormatException)
            {
                result.AddError($"{name} must look like 1,2,4,8,16 or 1x2,2x4, got '{text}'");
                return null;
            }
        },
    };
}

/// <summary><c>nextflow-rl pretrain tokenizer</c>: trains the multi-scale VQ-VAE on synthetic text renders.</summary>
/// <param name="progress">The host's progress display (optional).</param>
public sealed class PretrainTokenizerCommand(IProgressDisplay? progress = null) : PretrainCommandBase(progress)
{
    /// <inheritdoc/>
    public override IReadOnlyList<string> Path { get; } = ["pretrain", "tokenizer"];

    /// <inheritdoc/>
    public override string Description => "Pretrain the VAR policy's multi-scale VQ-VAE tokenizer (resumable).";

    /// <inheritdoc/>
    public override Command CreateCommand()
    {
        var d = new TokenizerConfig();
        var arch = new Option<string>("--arch") { Description = "Tokenizer architecture.", DefaultValueFactory = _ => d.Architecture };
        arch.AcceptOnlyFromAmong("linear", "patch", "conv");
        var scales = ScalesOption("--scales", "Token-grid side per scale, e.g. 1,2,3,4,6,8,12,16.");
        var codebook = Integer("--codebook", "Codebook size.", d.CodebookSize, 2, 65536);
        var channels = Integer("--channels", "Encoder width.", d.Channels, 1, 1024);
        var latent = Integer("--latent-channels", "Latent channels.", d.LatentChannels, 1, 1024);
        var downsamples = Integer("--downsamples", "Downsampling steps (image side / token-grid side = 2^D).", d.Downsamples, 0, 6);
        return Create(Description, [arch, scales, codebook, channels, latent, downsamples], (a, ct) =>
        {
            var tc = new TokenizerConfig
            {
                Architecture = a.GetValue(arch)!,
                Scales = a.GetValue(scales) is { Length: > 0 } given ? given : d.Scales, // an option not given reads as an empty array
                CodebookSize = a.GetValue(codebook),
                Channels = a.GetValue(channels),
                LatentChannels = a.GetValue(latent),
                Downsamples = a.GetValue(downsamples),
            };
            tc.Validate();
            Pretrainer.TrainTokenizer(Options(a, new VarModelConfig { Name = a.GetValue(Name)!, Tokenizer = tc }), Console.Out, Progress, ct);
            return 0;
        });
    }
}

/// <summary><c>nextflow-rl pretrain generator</c>: trains the next-scale transformer on a frozen tokenizer.</summary>
/// <param name="progress">The host's progress display (optional).</param>
public sealed class PretrainGeneratorCommand(IProgressDisplay? progress = null) : PretrainCommandBase(progress)
{
    /// <inheritdoc/>
    public override IReadOnlyList<string> Path { get; } = ["pretrain", "generator"];

    /// <inheritdoc/>
    public override string Description => "Pretrain the VAR policy's next-scale transformer on a frozen tokenizer (resumable; --init starts from a model's weights with a new optimizer).";

    /// <inheritdoc/>
    public override Command CreateCommand()
    {
        var d = new GeneratorConfig();
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Tokenizer checkpoint directory (from pretrain tokenizer), for a fresh run." };
        var init = new Option<string?>("--init") { Description = "Start a fresh run from this model's weights (tokenizer and architecture from it)." };
        var dim = Integer("--dim", "Transformer width.", d.Dim, 8, 4096);
        var depth = Integer("--depth", "Transformer blocks.", d.Depth, 1, 64);
        var heads = Integer("--heads", "Attention heads.", d.Heads, 1, 64);
        var dropout = Number("--cond-dropout", "Probability of dropping the condition (for classifier-free guidance).", d.CondDropout, 0, 0.99);
        return Create(Description, [tokenizer, init, dim, depth, heads, dropout], (a, ct) =>
        {
            var tokDir = a.GetValue(tokenizer);
            var initDir = a.GetValue(init);
            var outDir = a.GetValue(Out)!;
            bool resume = File.Exists(System.IO.Path.Combine(outDir, "trainer_state.json"));
            bool Given(Option option) => a.GetResult(option) is { Implicit: false };
            if (initDir is not null)
            {
                if (tokDir is not null || Given(dim) || Given(depth) || Given(heads))
                    throw new ArgumentException("--init takes the tokenizer and the architecture from MODELDIR: drop --tokenizer, --dim, --depth and --heads");
                var initPath = System.IO.Path.Combine(initDir, VarModel.ConfigFile);
                if (!File.Exists(initPath)) throw new InvalidDataException($"{initPath}: model config not found.");
                var loaded = VarModelConfig.FromJson(File.ReadAllText(initPath), initPath);
                var config = loaded with { Generator = loaded.Generator with { CondDropout = Given(dropout) ? a.GetValue(dropout) : loaded.Generator.CondDropout } };
                Pretrainer.TrainGenerator(Options(a, config) with { InitCheckpoint = initDir }, Console.Out, Progress, ct);
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
            var gc = new GeneratorConfig { Dim = a.GetValue(dim), Depth = a.GetValue(depth), Heads = a.GetValue(heads), CondDropout = a.GetValue(dropout) };
            gc.Validate();
            Pretrainer.TrainGenerator(Options(a, new VarModelConfig { Name = a.GetValue(Name)!, Tokenizer = tc, Generator = gc }, tokDir), Console.Out, Progress, ct);
            return 0;
        });
    }
}
