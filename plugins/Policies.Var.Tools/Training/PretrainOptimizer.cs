using TorchSharp.Modules;

namespace NextFlowRL.Policies.Var.Training;

/// <summary>
/// The pretraining optimizer: TorchSharp's <c>torch.optim.AdamW</c> with two parameter groups (weight decay on matrices
/// and convolution kernels, none on 1-D parameters: biases, norms), its <c>LambdaLR</c> scheduler for the warmup and
/// cosine schedule, and <c>clip_grad_norm_</c>. Its moments are stored as named tensors (<c>m.&lt;parameter&gt;</c>,
/// <c>v.&lt;parameter&gt;</c>) in a safetensors file rather than TorchSharp's own optimizer format, so a checkpoint stays
/// readable from Python and every checkpoint written by earlier versions (the same names) resumes unchanged.
/// </summary>
public sealed class PretrainOptimizer : IDisposable
{
    private readonly (string Name, Parameter P)[] _params;
    private readonly AdamW _adam;
    private readonly Parameter[] _all;
    private optim.lr_scheduler.LRScheduler? _schedule;
    private readonly Func<int, double> _learningRate;
    private readonly double _peak;

    /// <summary>Creates the optimizer over the trainable parameters of <paramref name="parameters"/>.</summary>
    /// <param name="parameters">Named parameters (frozen ones are left out).</param>
    /// <param name="learningRate">The learning rate of step <c>s</c> (0-based).</param>
    /// <param name="peak">The schedule's peak (the groups' initial rate; <paramref name="learningRate"/> is taken relative to it).</param>
    /// <param name="weightDecay">Decoupled weight decay of the parameters with more than one dimension.</param>
    /// <param name="beta1">First-moment decay.</param>
    /// <param name="beta2">Second-moment decay.</param>
    /// <param name="eps">Numerical epsilon.</param>
    public PretrainOptimizer(IEnumerable<(string Name, Parameter P)> parameters, Func<int, double> learningRate, double peak,
        double weightDecay = 0.01, double beta1 = 0.9, double beta2 = 0.95, double eps = 1e-8)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(learningRate);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(peak);
        var trainable = parameters.Where(p => p.P.requires_grad).ToArray();
        // Group order fixes the state order: decayed parameters first, then the others, each in module order.
        _params = [.. trainable.Where(p => p.P.dim() > 1), .. trainable.Where(p => p.P.dim() <= 1)];
        _all = _params.Select(p => p.P).ToArray();
        _learningRate = learningRate;
        _peak = peak;
        _adam = optim.AdamW(
        [
            new AdamW.ParamGroup(_params.Where(p => p.P.dim() > 1).Select(p => p.P), peak, beta1, beta2, eps, weightDecay),
            new AdamW.ParamGroup(_params.Where(p => p.P.dim() <= 1).Select(p => p.P), peak, beta1, beta2, eps, 0.0),
        ], peak, beta1, beta2, eps, weightDecay);
    }

    /// <summary>The learning rate the next <see cref="Step"/> uses.</summary>
    public double LearningRate => _adam.ParamGroups.First().LearningRate;

    /// <summary>Steps taken (including those of a loaded state).</summary>
    public long Steps { get; private set; }

    /// <summary>Starts the schedule at <paramref name="step"/> (0 for a fresh run; the checkpoint's step on resume).</summary>
    public void StartAt(int step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        foreach (var group in _adam.ParamGroups) group.InitialLearningRate = _peak;
        // LambdaLR sets the rate of epoch last_epoch + 1 on construction: the rate of `step`.
        _schedule = optim.lr_scheduler.LambdaLR(_adam, s => _learningRate(s) / _peak, last_epoch: step - 1);
        Steps = step;
    }

    /// <summary>Backward of <paramref name="loss"/>, global gradient-norm clip at <paramref name="maxNorm"/>, one AdamW step, and the schedule's next rate.</summary>
    /// <returns>The gradient norm before clipping.</returns>
    public double Step(Tensor loss, double maxNorm = 1.0)
    {
        ArgumentNullException.ThrowIfNull(loss);
        if (_schedule is null) StartAt(0);
        _adam.zero_grad();
        loss.backward();
        double norm = nn.utils.clip_grad_norm_(_all, maxNorm);
        _adam.step();
        _schedule!.step();
        Steps++;
        return norm;
    }

    /// <summary>The moments as named tensors (<c>m.*</c>, <c>v.*</c>) for checkpoints.</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> State()
    {
        var states = _adam.state_dict().State.Cast<AdamW.State>().ToArray();
        for (int i = 0; i < _params.Length; i++)
        {
            yield return KeyValuePair.Create("m." + _params[i].Name, states[i].exp_avg);
            yield return KeyValuePair.Create("v." + _params[i].Name, states[i].exp_avg_sq);
        }
    }

    /// <summary>Restores the moments written by <see cref="State"/> after <paramref name="steps"/> steps and starts the schedule there.</summary>
    /// <exception cref="InvalidDataException">A moment tensor is missing or mis-shaped; the message names it and <paramref name="source"/>.</exception>
    public void Load(IReadOnlyDictionary<string, Tensor> state, int steps, string source)
    {
        ArgumentNullException.ThrowIfNull(state);
        var states = _adam.state_dict().State.Cast<AdamW.State>().ToArray();
        using (no_grad())
        {
            for (int i = 0; i < _params.Length; i++)
            {
                var (name, p) = _params[i];
                foreach (var (prefix, target) in new[] { ("m.", states[i].exp_avg), ("v.", states[i].exp_avg_sq) })
                {
                    if (!state.TryGetValue(prefix + name, out var t) || !t.shape.SequenceEqual(p.shape))
                        throw new InvalidDataException($"{source}: optimizer state for '{name}' missing or mis-shaped.");
                    target.copy_(t);
                }
                states[i].step = steps;
            }
        }
        StartAt(steps);
    }

    /// <inheritdoc/>
    public void Dispose() => _adam.Dispose();
}
