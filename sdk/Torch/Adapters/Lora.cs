using NextFlowRL.Policies;
using NextFlowRL.Torch.Checkpoints;
using NextFlowRL.Torch.Precision;
using TorchSharp.Modules;

namespace NextFlowRL.Torch.Adapters;

/// <summary>A policy whose trained module can carry LoRA adapters (its linear layers are <see cref="AutocastLinear"/>).</summary>
public interface IAdaptablePolicy
{
    /// <summary>The module the trainer updates (the transformer; the frozen tokenizer is not part of it).</summary>
    nn.Module AdaptableModule { get; }
}

/// <summary>
/// A low-rank adapter on one <see cref="AutocastLinear"/>: <c>y = W x + b + (alpha / r) B (A x)</c>. <c>A</c> starts
/// Kaiming-uniform (seeded) and <c>B</c> at zero, so an attached adapter changes nothing until it is trained.
/// </summary>
public sealed class LoraAdapter : IDisposable
{
    internal LoraAdapter(long inputSize, long outputSize, int rank, double alpha, Device device, Generator generator)
    {
        Rank = rank;
        Alpha = alpha;
        // Kaiming-uniform with a = sqrt(5) (nn.Linear's and PEFT's choice) is U(-1/sqrt(in), 1/sqrt(in)); drawn from the
        // run's own generator so that the same seed gives the same adapters in every process.
        double bound = 1.0 / Math.Sqrt(Math.Max(1, inputSize));
        using var u = rand([rank, inputSize], generator: generator);
        using var init = u.mul(2 * bound).sub(bound);
        A = new Parameter(init.to(device));
        B = new Parameter(zeros(outputSize, rank, device: device));
    }

    /// <summary>Rank r.</summary>
    public int Rank { get; }

    /// <summary>The alpha of <c>alpha / r</c>.</summary>
    public double Alpha { get; }

    /// <summary>Down-projection <c>[r, in]</c>.</summary>
    public Parameter A { get; }

    /// <summary>Up-projection <c>[out, r]</c>.</summary>
    public Parameter B { get; }

    /// <summary><c>alpha / r</c>.</summary>
    public double Scale => Alpha / Rank;

    /// <summary>The adapter's contribution for input <paramref name="x"/> (through <see cref="Autocast"/>).</summary>
    internal Tensor Delta(Tensor x)
    {
        using var down = Autocast.Linear(x, A, null);
        using var up = Autocast.Linear(down, B, null);
        return up.mul(Scale);
    }

    /// <summary>Frees the adapter's parameters.</summary>
    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
    }
}

/// <summary>
/// LoRA for any TorchSharp policy whose linear layers are <see cref="AutocastLinear"/> (both bundled VAR policies):
/// attach adapters to the layers whose module path matches the targets, freeze everything else, train the adapters,
/// run the base with <see cref="Off"/> (the KL reference needs no frozen copy), save and load the adapters alone, or
/// merge them into the weights. Generic: nothing here knows a backbone.
/// </summary>
public sealed class LoraSet : IDisposable
{
    /// <summary>Default targets: the attention and MLP projections of the bundled backbones.</summary>
    public static readonly IReadOnlyList<string> DefaultTargets = ["qkv", "mat_qkv", "proj", "cross_q", "cross_kv", "cross_proj", "fc1", "fc2"];

    private static readonly AsyncLocal<bool> Disabled = new();
    private readonly List<(string Name, AutocastLinear Layer, LoraAdapter Adapter)> _entries;
    private readonly List<(Parameter Parameter, bool RequiresGrad)> _frozen;

    private LoraSet(List<(string, AutocastLinear, LoraAdapter)> entries, List<(Parameter, bool)> frozen, int rank, double alpha)
    {
        _entries = entries;
        _frozen = frozen;
        Rank = rank;
        Alpha = alpha;
    }

    /// <summary>Whether adapters act on this logical call (false inside <see cref="Off"/>).</summary>
    public static bool Active => !Disabled.Value;

    /// <summary>Runs the calling code on the base weights (every attached adapter off) until the scope is disposed.</summary>
    public static IDisposable Off()
    {
        bool previous = Disabled.Value;
        Disabled.Value = true;
        return new Restore(() => Disabled.Value = previous);
    }

    /// <summary>Rank r.</summary>
    public int Rank { get; }

    /// <summary>Alpha.</summary>
    public double Alpha { get; }

    /// <summary>Module paths of the adapted layers, in module order.</summary>
    public IReadOnlyList<string> Layers => _entries.Select(e => e.Name).ToList();

    /// <summary>The trainable parameters: every adapter's A and B.</summary>
    public IReadOnlyList<Parameter> Parameters() => _entries.SelectMany(e => new[] { e.Adapter.A, e.Adapter.B }).ToList();

    /// <summary>Whether module path <paramref name="name"/> matches a target: a target with a dot or <c>*</c> is a glob over the whole path, otherwise it names the last segment.</summary>
    public static bool Matches(string name, IEnumerable<string> targets)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(targets);
        var last = name[(name.LastIndexOf('.') + 1)..];
        foreach (var t in targets)
        {
            if (t.Contains('*', StringComparison.Ordinal) || t.Contains('.', StringComparison.Ordinal))
            {
                var pattern = "^" + System.Text.RegularExpressions.Regex.Escape(t).Replace(@"\*", ".*", StringComparison.Ordinal) + "$";
                if (System.Text.RegularExpressions.Regex.IsMatch(name, pattern)) return true;
            }
            else if (string.Equals(last, t, StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Attaches rank-<paramref name="rank"/> adapters to every <see cref="AutocastLinear"/> of <paramref name="module"/>
    /// whose path matches <paramref name="targets"/> (null: <see cref="DefaultTargets"/>) and freezes all of the module's
    /// own parameters. <c>A</c> is drawn from a generator seeded with <paramref name="seed"/> (layers in module order),
    /// <c>B</c> is zero.
    /// </summary>
    /// <exception cref="ArgumentException">A bad rank or alpha, no matching layer, or a layer that already has an adapter.</exception>
    public static LoraSet Attach(nn.Module module, int rank, double alpha, IReadOnlyList<string>? targets = null, long seed = 0)
    {
        ArgumentNullException.ThrowIfNull(module);
        if (rank < 1) throw new ArgumentException($"Lora:Rank must be >= 1, got {rank}", nameof(rank));
        if (!(alpha > 0) || !double.IsFinite(alpha)) throw new ArgumentException($"Lora:Alpha must be > 0, got {alpha}", nameof(alpha));
        targets ??= DefaultTargets;
        using var generator = new Generator((ulong)seed);
        var entries = new List<(string, AutocastLinear, LoraAdapter)>();
        var linears = module.named_modules().Where(m => m.module is AutocastLinear).Select(m => (m.name, Layer: (AutocastLinear)m.module)).ToList();
        foreach (var (name, layer) in linears)
        {
            if (!Matches(name, targets)) continue;
            if (layer.Adapter is not null) throw new ArgumentException($"layer {name} already has a LoRA adapter");
            var adapter = new LoraAdapter(layer.InputSize, layer.OutputSize, rank, alpha, layer.weight.device, generator);
            layer.Adapter = adapter;
            entries.Add((name, layer, adapter));
        }
        if (entries.Count == 0)
        {
            throw new ArgumentException(
                $"Lora:Targets [{string.Join(", ", targets)}] match none of the {linears.Count} linear layers (e.g. {string.Join(", ", linears.Take(6).Select(l => l.name))})");
        }
        var frozen = module.parameters().Select(p => (p, p.requires_grad)).ToList();
        foreach (var (p, _) in frozen) p.requires_grad = false;
        return new LoraSet(entries, frozen, rank, alpha);
    }

    /// <summary>The adapters as tensors named <c>&lt;layer&gt;.lora_A</c> / <c>&lt;layer&gt;.lora_B</c>.</summary>
    public IReadOnlyDictionary<string, Tensor> StateDict()
    {
        var d = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, _, a) in _entries)
        {
            d[name + ".lora_A"] = a.A;
            d[name + ".lora_B"] = a.B;
        }
        return d;
    }

    /// <summary>Writes the adapters (only) as safetensors, atomically.</summary>
    public void Save(string path) => StateDictFile.WriteSafetensors(path, StateDict());

    /// <summary>Reads adapters written by <see cref="Save"/> into the attached ones.</summary>
    /// <exception cref="InvalidDataException">Missing, extra or mis-shaped tensors, named.</exception>
    public void Load(string path)
    {
        var tensors = StateDictFile.Read(path);
        try
        {
            var mine = StateDict();
            var missing = mine.Keys.Where(k => !tensors.ContainsKey(k)).ToList();
            var extra = tensors.Keys.Where(k => !mine.ContainsKey(k)).ToList();
            var shapes = mine.Where(kv => tensors.TryGetValue(kv.Key, out var t) && !t.shape.SequenceEqual(kv.Value.shape))
                .Select(kv => $"{kv.Key} is [{string.Join(", ", tensors[kv.Key].shape)}] but the adapter needs [{string.Join(", ", kv.Value.shape)}]").ToList();
            if (missing.Count + extra.Count + shapes.Count > 0)
            {
                var parts = new List<string>();
                if (missing.Count > 0) parts.Add($"missing {string.Join(", ", missing.Take(4))}");
                if (extra.Count > 0) parts.Add($"unexpected {string.Join(", ", extra.Take(4))}");
                parts.AddRange(shapes.Take(3));
                throw new InvalidDataException($"{path} does not fit these adapters (rank {Rank}, {_entries.Count} layers): {string.Join("; ", parts)}");
            }
            using (no_grad())
            {
                foreach (var (k, t) in mine) t.copy_(tensors[k]);
            }
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Folds every adapter into its layer's weight (<c>W += (alpha / r) B A</c>), removes the adapters and restores the
    /// module's parameters' trainability: the module then computes what it computed with the adapters on.
    /// </summary>
    public void Merge()
    {
        using (no_grad())
        {
            foreach (var (_, layer, a) in _entries)
            {
                using var delta = a.B.matmul(a.A).mul(a.Scale);
                layer.weight.add_(delta);
            }
        }
        Dispose();
    }

    /// <summary>Removes the adapters (unmerged) and restores the module's parameters' trainability.</summary>
    public void Dispose()
    {
        foreach (var (_, layer, a) in _entries)
        {
            if (ReferenceEquals(layer.Adapter, a)) layer.Adapter = null;
            a.Dispose();
        }
        _entries.Clear();
        foreach (var (p, requiresGrad) in _frozen) p.requires_grad = requiresGrad;
        _frozen.Clear();
    }

    private sealed class Restore(Action action) : IDisposable
    {
        private Action? _action = action;

        public void Dispose() => Interlocked.Exchange(ref _action, null)?.Invoke();
    }
}

/// <summary>
/// The base of a LoRA-adapted policy as a policy: every call runs inside <see cref="LoraSet.Off"/>, so the KL
/// reference of LoRA training costs no frozen copy. It shares (and does not own) the adapted policy's modules.
/// </summary>
public sealed class AdaptersOffPolicy(INextScalePolicy adapted) : INextScalePolicy
{
    private readonly INextScalePolicy _inner = adapted ?? throw new ArgumentNullException(nameof(adapted));

    /// <inheritdoc/>
    public string Name => _inner.Name;

    /// <inheritdoc/>
    public PolicyInfo Info => _inner.Info with { Source = _inner.Info.Source + " (adapters off)" };

    /// <inheritdoc/>
    public ScaleSchedule Schedule => _inner.Schedule;

    /// <inheritdoc/>
    public Device Device => _inner.Device;

    /// <inheritdoc/>
    public TokenTrajectories Sample(IReadOnlyList<string> prompts, SamplingOptions options, CancellationToken cancellationToken = default)
    {
        using var off = LoraSet.Off();
        return _inner.Sample(prompts, options, cancellationToken);
    }

    /// <inheritdoc/>
    public TokenTrajectories Continue(TokenTrajectories prefix, SamplingOptions options, CancellationToken cancellationToken = default)
    {
        using var off = LoraSet.Off();
        return _inner.Continue(prefix, options, cancellationToken);
    }

    /// <inheritdoc/>
    public IReadOnlyList<Tensor> LogProbs(TokenTrajectories trajectories, int firstScale, int endScale)
    {
        using var off = LoraSet.Off();
        return _inner.LogProbs(trajectories, firstScale, endScale);
    }

    /// <inheritdoc/>
    public IReadOnlyList<Tensor> GuidedLogProbs(TokenTrajectories trajectories, int firstScale, int endScale, SamplingOptions guidance)
    {
        using var off = LoraSet.Off();
        return _inner.GuidedLogProbs(trajectories, firstScale, endScale, guidance);
    }

    /// <inheritdoc/>
    public IReadOnlyList<NextFlowRL.Imaging.RgbImage> Decode(TokenTrajectories trajectories) => _inner.Decode(trajectories);

    /// <inheritdoc/>
    public IReadOnlyList<TorchSharp.Modules.Parameter> TrainableParameters() => [];

    /// <inheritdoc/>
    public void SetTraining(bool training)
    {
    }

    /// <inheritdoc/>
    public INextScalePolicy CreateFrozenCopy() => new AdaptersOffPolicy(_inner);

    /// <inheritdoc/>
    public void Save(string directory) =>
        throw new NotSupportedException("the base of a LoRA-adapted policy is saved by saving the base checkpoint; save the adapters with LoraSet.Save");

    /// <summary>Nothing to free: the modules belong to the adapted policy.</summary>
    public void Dispose()
    {
    }
}
