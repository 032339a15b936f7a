using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using NextFlowRL.Imaging;
using NextFlowRL.Plugins;
using NextFlowRL.Policies;
using NextFlowRL.Torch.Devices;
using NextFlowRL.Torch.Imaging;
using NextFlowRL.Torch.NextScale;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MyPolicy;

/// <summary>
/// The policy: sampling, continuation (VMR), plain and guided teacher-forced log-probs come from
/// <see cref="NextScalePolicyBase{TCondition}"/>; this class adds decoding, persistence and the frozen copy.
/// </summary>
public sealed class MyPolicyPolicy : NextScalePolicyBase<Tensor>
{
    private const string WeightsFile = "weights.dat";
    private const string ConfigFile = "config.json";
    private readonly MyPolicyNetwork _net;
    private readonly string _source;

    /// <summary>Wraps a network.</summary>
    public MyPolicyPolicy(MyPolicyNetwork net, string source)
    {
        _net = net;
        _source = source;
    }

    /// <inheritdoc/>
    public override nn.Module AdaptableModule => _net;

    /// <inheritdoc/>
    protected override INextScaleNetwork<Tensor> Network => _net;

    /// <inheritdoc/>
    public override string Name => "my-policy";

    /// <inheritdoc/>
    public override PolicyInfo Info => new("my-policy", _net.ImageSize, _net.ImageSize, _net.parameters().Sum(p => p.numel()), _source);

    /// <inheritdoc/>
    public override ScaleSchedule Schedule => _net.Schedule;

    /// <inheritdoc/>
    public override Device Device => _net.Device;

    /// <inheritdoc/>
    public override double ForwardFlops(int rows) => _net.ForwardFlops(rows);

    /// <inheritdoc/>
    public override IReadOnlyList<RgbImage> Decode(TokenTrajectories trajectories)
    {
        using var scope = NewDisposeScope();
        using var no = no_grad();
        return ImageTensors.ToImages(_net.ToImage(NextScaleSampler.AccumulatedFeatures(_net, trajectories)));
    }

    /// <inheritdoc/>
    public override IReadOnlyList<Parameter> TrainableParameters() => _net.parameters().Where(p => p.requires_grad).ToList();

    /// <inheritdoc/>
    public override void SetTraining(bool training) => _net.train(training);

    /// <inheritdoc/>
    public override INextScalePolicy CreateFrozenCopy()
    {
        var copy = new MyPolicyNetwork(_net.Config);
        copy.to(Device);
        copy.load_state_dict(_net.state_dict());
        foreach (var p in copy.parameters()) p.requires_grad = false;
        copy.eval();
        return new MyPolicyPolicy(copy, _source) { Precision = Precision };
    }

    /// <inheritdoc/>
    public override void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var tmp = Path.Combine(directory, WeightsFile + ".tmp");
        _net.save(tmp);
        File.Move(tmp, Path.Combine(directory, WeightsFile), overwrite: true);
        AtomicFile.WriteAllText(Path.Combine(directory, ConfigFile), JsonSerializer.Serialize(_net.Config));
    }

    /// <summary>Loads what <see cref="Save"/> wrote.</summary>
    /// <exception cref="InvalidDataException">The folder holds no saved policy, or it does not match its configuration.</exception>
    public static MyPolicyPolicy Load(string directory, Device device)
    {
        var config = Path.Combine(directory, ConfigFile);
        var weights = Path.Combine(directory, WeightsFile);
        if (!File.Exists(config) || !File.Exists(weights))
            throw new InvalidDataException($"no my-policy checkpoint in '{directory}' ({ConfigFile} and {WeightsFile} expected)");
        var net = new MyPolicyNetwork(JsonSerializer.Deserialize<MyPolicyConfig>(File.ReadAllText(config))
            ?? throw new InvalidDataException($"{config} is empty"));
        try
        {
            net.load(weights);
        }
        catch (Exception e) when (e is not InvalidDataException)
        {
            net.Dispose();
            throw new InvalidDataException($"{weights} does not match {config}: {e.Message}", e);
        }
        net.to(device);
        net.eval();
        return new MyPolicyPolicy(net, Path.GetFullPath(directory));
    }

    /// <inheritdoc/>
    protected override void DisposeModel() => _net.Dispose();
}

/// <summary>Options, bound from Policies:my-policy (for example --set Policies:my-policy:Seed=3).</summary>
public sealed class MyPolicyOptions : ITorchComponentOptions
{
    /// <summary>Checkpoint folder used when the caller gives none; unset = random weights drawn from <see cref="Seed"/>.</summary>
    public string? Checkpoint { get; set; }

    /// <summary>Seed of the random weights.</summary>
    public int Seed { get; set; }

    /// <inheritdoc/>
    public string? Device { get; set; }

    /// <inheritdoc/>
    public TorchPrecision? Precision { get; set; }
}

/// <summary>Creates policies: from a checkpoint, or random weights.</summary>
public sealed class MyPolicyProvider(string name, MyPolicyOptions options) : IPolicyProvider
{
    /// <inheritdoc/>
    public string Name { get; } = name;

    /// <inheritdoc/>
    public INextScalePolicy Load(string? checkpoint, Device? device = null)
    {
        var dev = device ?? TorchDevice.Parse(options.Device, $"Policies:{Name}:Device");
        var dir = !string.IsNullOrWhiteSpace(checkpoint) ? checkpoint : options.Checkpoint;
        MyPolicyPolicy policy;
        if (!string.IsNullOrWhiteSpace(dir))
        {
            policy = MyPolicyPolicy.Load(dir, dev);
        }
        else
        {
            manual_seed(options.Seed);
            var net = new MyPolicyNetwork(new MyPolicyConfig());
            net.to(dev);
            net.eval();
            policy = new MyPolicyPolicy(net, $"random (seed {options.Seed})");
        }
        policy.Precision = options.Precision ?? TorchPrecision.Fp32;
        return policy;
    }
}

/// <summary>Registration: the provider and its validated options.</summary>
public static class MyPolicyExtensions
{
    /// <summary>Adds the policy under <paramref name="name"/>.</summary>
    public static INextFlowRLBuilder AddMyPolicy(this INextFlowRLBuilder builder, string name = "my-policy", Action<MyPolicyOptions>? configure = null)
    {
        builder.AddTorchComponentOptions(ComponentKind.Policy, name, configure);
        return builder.AddPolicy(name, "next-scale policy (template backbone)", (services, n) =>
            new MyPolicyProvider(n, services.GetRequiredService<IOptionsMonitor<MyPolicyOptions>>().Get(n)));
    }
}

/// <summary>The entry type the host looks for: exactly one per plugin assembly.</summary>
public sealed class MyPolicyPlugin : INextFlowRLPlugin
{
    /// <inheritdoc/>
    public void Register(INextFlowRLBuilder builder) => builder.AddMyPolicy();
}
