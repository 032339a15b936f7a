using NextFlowRL.Torch.Devices;
using NextFlowRL.Torch.Precision;
using NextFlowRL.Torch.Checkpoints;
using NextFlowRL.Imaging;
using TorchSharp.Modules;
using static TorchSharp.torch.nn;

namespace NextFlowRL.Rewards.Clip;

/// <summary>A model folder that cannot be used; the message is one line naming the folder and what is wrong.</summary>
public sealed class ClipModelException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ClipModelException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public ClipModelException(string message, Exception inner) : base(message, inner) { }

    /// <summary>Creates the exception.</summary>
    public ClipModelException() { }
}

/// <summary>Which parameter layout a model folder uses.</summary>
public enum ClipLayout
{
    /// <summary>Hugging Face <c>CLIPModel</c>: <c>config.json</c>, <c>model.safetensors</c>, optional <c>preprocessor_config.json</c>.</summary>
    HuggingFace,

    /// <summary>OpenCLIP: <c>open_clip_config.json</c> and <c>open_clip_model.safetensors</c> (or <c>model.safetensors</c>).</summary>
    OpenClip,
}

/// <summary>
/// A loaded CLIP-family model with its tokenizer and image preprocessing: computes image-text cosine similarities in
/// batches without gradients (<see cref="Cosine"/>) or differentiably with respect to image tensors
/// (<see cref="CosineTensor"/>). One caller at a time.
/// </summary>
public sealed class ClipScorer : IDisposable
{
    /// <summary>File names of the tokenizer, expected in every model folder.</summary>
    public const string VocabFile = "vocab.json", MergesFile = "merges.txt";

    private readonly Module _module;

    private ClipScorer(Module module, IClipEncoder model, ClipTokenizer tokenizer, ClipImageProcessor processor, ClipLayout layout, Device device)
    {
        _module = module;
        Model = model;
        Tokenizer = tokenizer;
        Processor = processor;
        Layout = layout;
        Device = device;
    }

    /// <summary>The encoder.</summary>
    public IClipEncoder Model { get; }

    /// <summary>The tokenizer.</summary>
    public ClipTokenizer Tokenizer { get; }

    /// <summary>The image preprocessing.</summary>
    public ClipImageProcessor Processor { get; }

    /// <summary>The parameter layout the model was loaded from.</summary>
    public ClipLayout Layout { get; }

    /// <summary>The device the model runs on.</summary>
    public Device Device { get; }

    /// <summary>Precision of the encoders' matrix products (<see cref="Autocast"/>); normalisation and cosines stay float32.</summary>
    public TorchPrecision Precision { get; set; } = TorchPrecision.Fp32;

    /// <summary>
    /// Loads a Hugging Face <c>CLIPModel</c> folder: <c>config.json</c>, <c>model.safetensors</c>, <c>vocab.json</c>,
    /// <c>merges.txt</c>, optional <c>preprocessor_config.json</c>.
    /// </summary>
    /// <exception cref="ClipModelException">Missing folder or files, or files that do not fit together.</exception>
    public static ClipScorer LoadHuggingFace(string folder, string? device = "cpu", string? weightsFile = null, TorchPrecision precision = TorchPrecision.Fp32)
    {
        var dev = ParseDevice(device);
        var dir = RequireFolder(folder);
        var weights = weightsFile ?? "model.safetensors";
        RequireFiles(dir, ["config.json", weights, VocabFile, MergesFile], weights);
        return Wrap(dir, () =>
        {
            var arch = ClipConfigReader.ReadHuggingFace(Path.Combine(dir, "config.json"));
            var processor = ClipConfigReader.ReadPreprocessor(Path.Combine(dir, "preprocessor_config.json"), arch.ImageSize);
            var tokenizer = LoadTokenizer(dir, arch, "config.json");
            var model = new HfClipModel(arch);
            return Finish(model, model, tokenizer, processor, ClipLayout.HuggingFace, Path.Combine(dir, weights), dev, precision);
        });
    }

    /// <summary>
    /// Loads an OpenCLIP folder: a model config (<c>open_clip_config.json</c> by default), weights
    /// (<c>open_clip_model.safetensors</c>, else <c>model.safetensors</c>), <c>vocab.json</c>, <c>merges.txt</c>.
    /// Image mean/std come from the config's <c>preprocess_cfg</c> (else OpenAI's).
    /// </summary>
    /// <exception cref="ClipModelException">Missing folder or files, or files that do not fit together.</exception>
    public static ClipScorer LoadOpenClip(string folder, string? device = "cpu", string? configFile = null, string? weightsFile = null, TorchPrecision precision = TorchPrecision.Fp32)
    {
        var dev = ParseDevice(device);
        var dir = RequireFolder(folder);
        var config = configFile ?? "open_clip_config.json";
        var weights = weightsFile ?? (File.Exists(Path.Combine(dir, "open_clip_model.safetensors")) || !File.Exists(Path.Combine(dir, "model.safetensors"))
            ? "open_clip_model.safetensors" : "model.safetensors");
        RequireFiles(dir, [config, weights, VocabFile, MergesFile], weights);
        return Wrap(dir, () =>
        {
            var (arch, mean, std) = ClipConfigReader.ReadOpenClip(Path.Combine(dir, config));
            var processor = new ClipImageProcessor(arch.ImageSize, arch.ImageSize, arch.ImageSize, mean, std);
            var tokenizer = LoadTokenizer(dir, arch, config);
            var model = new OpenClipModel(arch);
            return Finish(model, model, tokenizer, processor, ClipLayout.OpenClip, Path.Combine(dir, weights), dev, precision);
        });
    }

    /// <summary>
    /// Copies <paramref name="tensors"/> into <paramref name="module"/>'s parameters by name. Every
    /// parameter must be present with the right shape; extra entries (e.g. <c>position_ids</c>) are ignored. A
    /// <c>module.</c> prefix on every key (a DataParallel checkpoint) is stripped.
    /// </summary>
    /// <exception cref="InvalidDataException">Missing entries or shape mismatches (the first few are named).</exception>
    public static void LoadWeights(Module module, IReadOnlyDictionary<string, Tensor> tensors, string source)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(tensors);
        var map = tensors.Count > 0 && tensors.Keys.All(k => k.StartsWith("module.", StringComparison.Ordinal))
            ? tensors.ToDictionary(p => p.Key["module.".Length..], p => p.Value)
            : tensors.ToDictionary(p => p.Key, p => p.Value);
        var missing = new List<string>();
        var mismatched = new List<string>();
        var targets = module.named_parameters().Select(p => (p.name, (Tensor)p.parameter)).ToList();
        foreach (var (name, target) in targets)
        {
            if (!map.TryGetValue(name, out var stored))
            {
                missing.Add(name);
                continue;
            }
            if (!stored.shape.SequenceEqual(target.shape))
                mismatched.Add($"{name} is [{string.Join(", ", stored.shape)}] but the config needs [{string.Join(", ", target.shape)}]");
        }
        if (missing.Count > 0 || mismatched.Count > 0)
        {
            var parts = new List<string>();
            if (mismatched.Count > 0) parts.Add($"{mismatched.Count} shape mismatch(es): {string.Join("; ", mismatched.Take(3))}");
            if (missing.Count > 0) parts.Add($"{missing.Count} missing tensor(s): {string.Join(", ", missing.Take(5))}{(missing.Count > 5 ? ", ..." : "")}");
            throw new InvalidDataException($"{source} does not match the model config: {string.Join("; ", parts)}");
        }
        using (torch.no_grad())
        {
            foreach (var (name, target) in targets)
                target.copy_(map[name].to(target.dtype));
        }
    }

    /// <summary>Saves the model's parameters as safetensors in this layout's key names.</summary>
    public void SaveWeights(string path) =>
        StateDictFile.WriteSafetensors(path, _module.named_parameters().Select(p => KeyValuePair.Create(p.name, (Tensor)p.parameter)));

    /// <summary>Text features <c>[batch, EmbedDim]</c>, L2-normalized, for <paramref name="texts"/> (gradients follow the caller's mode).</summary>
    public Tensor EncodeTexts(IReadOnlyList<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        int ctx = Model.Architecture.ContextLength;
        var ids = new long[texts.Count * ctx];
        var ends = new long[texts.Count];
        int? pad = Layout == ClipLayout.OpenClip ? 0 : null;
        for (int i = 0; i < texts.Count; i++)
        {
            var (t, end) = Tokenizer.Tokenize(texts[i], ctx, pad);
            t.CopyTo(ids, i * ctx);
            ends[i] = end;
        }
        using var precision = Autocast.Enter(Precision);
        var features = Model.EncodeText(torch.tensor(ids, new long[] { texts.Count, ctx }, device: Device), torch.tensor(ends, device: Device));
        return nn.functional.normalize(features, dim: -1);
    }

    /// <summary>Image features <c>[batch, EmbedDim]</c>, L2-normalized, of preprocessed pixels <c>[batch, 3, S, S]</c>.</summary>
    public Tensor EncodePixels(Tensor pixels)
    {
        using var precision = Autocast.Enter(Precision);
        return nn.functional.normalize(Model.EncodeImage(pixels.to(Device)), dim: -1);
    }

    /// <summary>
    /// Cosine similarity of each image with its text, without gradients, <paramref name="batchSize"/> pairs at a time.
    /// </summary>
    public double[] Cosine(IReadOnlyList<RgbImage> images, IReadOnlyList<string> texts, int batchSize = 16, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(texts);
        if (images.Count != texts.Count) throw new ArgumentException($"{images.Count} images but {texts.Count} texts");
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize));
        var result = new double[images.Count];
        for (int start = 0; start < images.Count; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int n = Math.Min(batchSize, images.Count - start);
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            var pixels = Processor.ProcessBatch(images.Skip(start).Take(n).ToList());
            var cos = (EncodePixels(pixels) * EncodeTexts(texts.Skip(start).Take(n).ToList())).sum(-1).to(torch.float64).cpu();
            cos.data<double>().ToArray().CopyTo(result, start);
        }
        return result;
    }

    /// <summary>
    /// Differentiable cosine similarities <c>[batch]</c> of image tensors <c>[batch, 3, H, W]</c> (values in [0, 1], any
    /// size: preprocessed with <see cref="ClipImageProcessor.ProcessTensor"/>) with <paramref name="texts"/>. Gradients
    /// flow to <paramref name="images"/>; the model's own parameters are frozen. Call it inside a dispose scope.
    /// </summary>
    public Tensor CosineTensor(Tensor images, IReadOnlyList<string> texts)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(texts);
        if (images.shape[0] != texts.Count) throw new ArgumentException($"{images.shape[0]} images but {texts.Count} texts");
        Tensor text;
        using (torch.no_grad()) text = EncodeTexts(texts);
        return (EncodePixels(Processor.ProcessTensor(images.to(Device))) * text).sum(-1);
    }

    /// <inheritdoc/>
    public void Dispose() => _module.Dispose();

    private static ClipScorer Finish(Module module, IClipEncoder encoder, ClipTokenizer tokenizer, ClipImageProcessor processor, ClipLayout layout, string weightsPath, Device dev, TorchPrecision precision)
    {
        try
        {
            var tensors = StateDictFile.Read(weightsPath);
            try
            {
                LoadWeights(module, tensors, Path.GetFileName(weightsPath));
            }
            finally
            {
                foreach (var t in tensors.Values) t.Dispose();
            }
            foreach (var p in module.parameters()) p.requires_grad = false;
            module.eval();
            module.to(dev);
            return new ClipScorer(module, encoder, tokenizer, processor, layout, dev) { Precision = precision };
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    /// <summary>The device, checked before any file is read (an unusable device is not a broken model folder).</summary>
    private static Device ParseDevice(string? device)
    {
        try
        {
            return TorchDevice.Parse(device, "Device");
        }
        catch (InvalidDataException e)
        {
            throw new ArgumentException(e.Message, nameof(device), e);
        }
    }

    private static ClipTokenizer LoadTokenizer(string dir, ClipArchitecture arch, string configName)
    {
        var tokenizer = ClipTokenizer.FromFiles(Path.Combine(dir, VocabFile), Path.Combine(dir, MergesFile));
        if (tokenizer.MaxId >= arch.VocabSize)
            throw new InvalidDataException($"{VocabFile} has token ids up to {tokenizer.MaxId} but {configName} says the text vocabulary has {arch.VocabSize} entries: tokenizer and model do not belong together");
        return tokenizer;
    }

    private static string RequireFolder(string folder)
    {
        if (string.IsNullOrWhiteSpace(folder))
            throw new ClipModelException("no model folder given (set ModelPath)");
        var dir = Path.GetFullPath(folder);
        if (!Directory.Exists(dir))
            throw new ClipModelException($"model folder {dir} does not exist");
        return dir;
    }

    private static void RequireFiles(string dir, string[] files, string weights)
    {
        var missing = files.Where(f => !File.Exists(Path.Combine(dir, f))).ToList();
        if (missing.Count == 0) return;
        var hint = missing.Contains(weights) && Directory.EnumerateFiles(dir).Any(f => f.EndsWith(".bin", StringComparison.Ordinal) || f.EndsWith(".pt", StringComparison.Ordinal) || f.EndsWith(".pth", StringComparison.Ordinal))
            ? " (the folder has PyTorch pickle weights: convert them to safetensors, see docs/real-clip-hps-and-remote-rewards.md)"
            : "";
        throw new ClipModelException($"model folder {dir} is missing {string.Join(", ", missing)}{hint}");
    }

    private static ClipScorer Wrap(string dir, Func<ClipScorer> load)
    {
        try
        {
            return load();
        }
        catch (Exception e) when (e is InvalidDataException or IOException or FileNotFoundException)
        {
            throw new ClipModelException($"model folder {dir}: {e.Message}", e);
        }
    }
}
