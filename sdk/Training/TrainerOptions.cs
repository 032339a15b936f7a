namespace NextFlowRL.Training;

/// <summary>How the split scale of VMR and the update schedule work together.</summary>
public enum AlternationSchedule
{
    /// <summary>No split: one group over whole trajectories (vanilla GRPO).</summary>
    Joint,

    /// <summary>Fine-grained alternation: <see cref="VmrOptions.PrefixUpdatesPerSuffix"/> prefix updates, then one suffix update, repeated.</summary>
    Fine,

    /// <summary>All prefix updates first (<see cref="VmrOptions.CoarsePrefixFraction"/> of the steps), then all suffix updates.</summary>
    Coarse,
}

/// <summary>How the rollouts of one VMR sampling pass are used.</summary>
public enum RolloutReuse
{
    /// <summary>
    /// Every pass feeds a prefix update (the continuations' rewards through the middle values), and every
    /// <see cref="VmrOptions.PrefixUpdatesPerSuffix"/>-th pass also a suffix update on the same continuations, whose old
    /// log-probs are taken before any optimizer step of the pass. No scored rollout is sampled for nothing. The coarse
    /// schedule keeps its phases (prefix passes, then suffix passes).
    /// </summary>
    Both,

    /// <summary>The literal alternation: one update per pass, prefix or suffix as the schedule says (the other update's data unused).</summary>
    Literal,
}

/// <summary>How several rewards combine into one scalar.</summary>
public enum RewardAggregation
{
    /// <summary>Weighted sum of raw rewards.</summary>
    WeightedSum,

    /// <summary>Each reward z-normalized within its group first, then the weighted sum ("GDPO").</summary>
    NormalizeThenSum,
}

/// <summary>What to do when a reward fails for a batch or a sample.</summary>
public enum RewardFailurePolicy
{
    /// <summary>Retry the batch up to <see cref="RewardSpec.Retries"/> times, then stop training.</summary>
    Retry,

    /// <summary>Treat the failed samples as missing: they leave their group for this step.</summary>
    Drop,

    /// <summary>Stop training with an error that names the reward.</summary>
    Stop,
}

/// <summary>Which distribution the loss's log-probabilities come from.</summary>
public enum LossDistribution
{
    /// <summary>The plain conditional distribution (no CFG, no truncation), the paper's choice.</summary>
    Conditional,

    /// <summary>
    /// The distribution the rollouts are drawn from before truncation: <c>Rollout:CfgScale</c> (with the policy's guidance
    /// schedule) and <c>Rollout:Temperature</c>, no top-k/top-p; an unconditional pass is added to every forward. Needs a
    /// policy that implements <c>INextScalePolicy.GuidedLogProbs</c> (the VAR policy does).
    /// </summary>
    Guided,
}

/// <summary>One reward of the ensemble.</summary>
public sealed class RewardSpec
{
    /// <summary>Registered reward name (e.g. <c>ocr</c>).</summary>
    public string Name { get; set; } = "";

    /// <summary>Weight in the combination.</summary>
    public double Weight { get; set; } = 1.0;

    /// <summary>Failure policy.</summary>
    public RewardFailurePolicy OnFailure { get; set; } = RewardFailurePolicy.Retry;

    /// <summary>Retries of a failed batch (policy <see cref="RewardFailurePolicy.Retry"/>).</summary>
    public int Retries { get; set; } = 2;

    /// <summary>Time limit of one reward call in seconds (0 = none).</summary>
    public double TimeoutSeconds { get; set; } = 300;
}

/// <summary>LoRA options (section <c>Train:Lora</c>).</summary>
public sealed class LoraOptions
{
    /// <summary>Adapter rank; 0 = full fine-tuning (default).</summary>
    public int Rank { get; set; }

    /// <summary>The adapters' scale is <c>Alpha / Rank</c>.</summary>
    public double Alpha { get; set; } = 16;

    /// <summary>
    /// Module-path patterns of the adapted linear layers: a plain name matches the last segment (<c>qkv</c>), a pattern
    /// with <c>.</c> or <c>*</c> the whole path (<c>blocks.*.fc1</c>); empty = the attention and MLP projections
    /// (<c>NextFlowRL.Torch.Adapters.LoraSet.DefaultTargets</c>).
    /// </summary>
    public List<string> Targets { get; set; } = [];
}

/// <summary>VMR: value as middle return.</summary>
public sealed class VmrOptions
{
    /// <summary>Alternation schedule; <see cref="AlternationSchedule.Joint"/> disables VMR.</summary>
    public AlternationSchedule Schedule { get; set; } = AlternationSchedule.Fine;

    /// <summary>Split scale index m (prefix = scales before m). Used when <see cref="SplitResolution"/> is empty.</summary>
    public int SplitScale { get; set; } = -1;

    /// <summary>Split by grid resolution, e.g. <c>4x4</c> or <c>4</c>: the first scale with that grid.</summary>
    public string? SplitResolution { get; set; }

    /// <summary>Continuations per prefix (K).</summary>
    public int Continuations { get; set; } = 2;

    /// <summary>Soft-max temperature eta of the middle value.</summary>
    public double Eta { get; set; } = 1.0;

    /// <summary>
    /// Use eta = <see cref="TrainerOptions.KlBeta"/> (Theorem 2's condition for the split to keep the full-horizon
    /// KL-regularized optimum); <see cref="Eta"/> is then ignored.
    /// </summary>
    public bool TieEtaToKlBeta { get; set; }

    /// <summary>How a pass's rollouts feed updates (default: both updates, no rollout wasted).</summary>
    public RolloutReuse Reuse { get; set; } = RolloutReuse.Both;

    /// <summary>Prefix updates per suffix update in the fine schedule.</summary>
    public int PrefixUpdatesPerSuffix { get; set; } = 3;

    /// <summary>Fraction of steps that are prefix updates in the coarse schedule.</summary>
    public double CoarsePrefixFraction { get; set; } = 0.75;
}

/// <summary>Mask propagation.</summary>
public sealed class MaskOptions
{
    /// <summary>Use reward regions to mask the loss.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Dilate the finest-grid mask by one cell.</summary>
    public bool Dilate { get; set; } = true;

    /// <summary>Also use regions that matched no target (default: only matched ones).</summary>
    public bool IncludeUnmatchedRegions { get; set; }

    /// <summary>
    /// Dilate the propagated mask by one cell at every coarser scale too (bicubic upsampling and the phi convs spread a
    /// coarse token's influence beyond its footprint).
    /// </summary>
    public bool DilateEveryScale { get; set; }
}

/// <summary>Rollout sampling settings.</summary>
public sealed class RolloutOptions
{
    /// <summary>Classifier-free guidance scale (default: the main job's 0.5, measured on tiny-text; method.md's VAR default is 3).</summary>
    public double CfgScale { get; set; } = 0.5;

    /// <summary>Top-k (0 = off; default 3, the main job's).</summary>
    public int TopK { get; set; } = 3;

    /// <summary>Top-p (1 = off).</summary>
    public double TopP { get; set; } = 1.0;

    /// <summary>Temperature (default 0.6, the main job's).</summary>
    public double Temperature { get; set; } = 0.6;

    /// <summary>
    /// Score while the policy works on (default true): the first trajectories while their VMR continuations sample, a
    /// shard while the next one samples, the step's last rewards while the trainer takes the reference's and the old
    /// log-probs, an evaluation batch while the next one samples. The metrics are the same either way (the same
    /// images and reward calls); false scores each batch before going on (<c>time_reward_overlap</c> then reads 0).
    /// </summary>
    public bool PipelineRewards { get; set; } = true;
}

/// <summary>
/// Rollout and reward workers on a cluster (<c>Train:Cluster</c>; docs/scaling.md). Without <see cref="Gateways"/> the
/// rollouts run in this process; sharding (<see cref="ShardPrompts"/>) applies in both cases, so a clustered run and
/// an in-process run with the same shards and seed give the same metrics.
/// </summary>
public sealed class ClusterOptions
{
    /// <summary>Gateway endpoints (<c>host:port</c>) of worker silos; empty (and no <see cref="Redis"/>) = no cluster, rollouts in this process.</summary>
    public List<string> Gateways { get; set; } = [];

    /// <summary>
    /// Instead of <see cref="Gateways"/>: the Redis connection string of the workers' membership table
    /// (<c>nextflow-worker --membership redis</c>); the trainer finds every live worker's gateway there.
    /// </summary>
    public string? Redis { get; set; }

    /// <summary>The cluster's id (every worker of the cluster is started with the same one).</summary>
    public string ClusterId { get; set; } = "nextflow";

    /// <summary>The service id (the same on every member).</summary>
    public string ServiceId { get; set; } = "nextflow-rl";

    /// <summary>
    /// Prompts per rollout shard, the unit a worker samples and scores (0 = the whole step in one shard; a cluster
    /// needs at least as many shards as workers to use them all). Part of the run's definition: the same seed and
    /// shard size give the same run however many workers run it.
    /// </summary>
    public int ShardPrompts { get; set; }

    /// <summary>Seconds a shard may take before it is sent to another worker.</summary>
    public double ShardTimeoutSeconds { get; set; } = 600;

    /// <summary>Times a failed or timed-out shard is re-run on another worker before the step fails.</summary>
    public int ShardRetries { get; set; } = 3;

    /// <summary>Worker silos the trainer waits for (up to <see cref="JoinTimeoutSeconds"/>) before the first step.</summary>
    public int MinWorkers { get; set; } = 1;

    /// <summary>Seconds to wait for the cluster's gateways and for <see cref="MinWorkers"/> workers.</summary>
    public double JoinTimeoutSeconds { get; set; } = 60;

    /// <summary>
    /// Shared secret the workers were started with (required when a gateway is not a loopback address); empty on loopback.
    /// Read from the environment variable <c>NEXTFLOW_CLUSTER_SECRET</c> when unset. Never written to the run's
    /// config.json: a resumed run (saved configuration) reads it from the environment.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string? Secret { get; set; }

    /// <summary>Splits <c>host:port</c> (an IPv6 host may be bracketed); false when it is not of that form or the port is outside 1-65535.</summary>
    public static bool TrySplitEndpoint(string text, out string host, out int port)
    {
        ArgumentNullException.ThrowIfNull(text);
        int colon = text.LastIndexOf(':');
        host = colon > 0 ? text[..colon].Trim('[', ']') : "";
        port = 0;
        return colon > 0 && host.Length > 0 && int.TryParse(text[(colon + 1)..], out port) && port is > 0 and < 65536;
    }

    /// <summary>Whether the run uses a cluster.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool Enabled => Gateways.Count > 0 || !string.IsNullOrWhiteSpace(Redis);

    /// <summary>Where the cluster is, for messages: the gateways or the Redis table.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string Where => Gateways.Count > 0 ? string.Join(", ", Gateways) : $"the Redis membership table at {Redis}";
}

/// <summary>An evaluation metric a report shows (<see cref="TrainerOptions.ReportMetrics"/>).</summary>
public sealed class ReportMetric
{
    /// <summary>The metric's key in the evaluation (e.g. <c>word_accuracy</c>, <c>facet/heldout/ned</c>).</summary>
    public string Key { get; set; } = "";

    /// <summary>The column's label.</summary>
    public string Label { get; set; } = "";

    /// <summary>The headline metric: its paired difference to the baseline is reported with a verdict.</summary>
    public bool Headline { get; set; }
}

/// <summary>Everything a training run needs (configuration section <c>Train</c>).</summary>
public sealed class TrainerOptions
{
    /// <summary>The configuration section name.</summary>
    public const string Section = "Train";

    /// <summary>Policy plugin name.</summary>
    public string Policy { get; set; } = "var";

    /// <summary>Policy checkpoint directory; null = the plugin's default model.</summary>
    public string? Checkpoint { get; set; }

    /// <summary>Rewards and weights.</summary>
    public List<RewardSpec> Rewards { get; set; } = [];

    /// <summary>How rewards combine.</summary>
    public RewardAggregation Aggregation { get; set; } = RewardAggregation.WeightedSum;

    /// <summary>Training prompts (JSONL; see <see cref="PromptSet"/>).</summary>
    public string? TrainPrompts { get; set; }

    /// <summary>Held-out evaluation prompts (JSONL).</summary>
    public string? EvalPrompts { get; set; }

    /// <summary>
    /// Validation prompts (JSONL) for tuning settings (guidance, KL weight, learning rate); the held-out
    /// <see cref="EvalPrompts"/> are for reporting only.
    /// </summary>
    public string? ValidationPrompts { get; set; }

    /// <summary>
    /// Further evaluation prompt sets by name (e.g. <c>ood</c>: the out-of-distribution prompts), evaluated before and
    /// after training like <see cref="EvalPrompts"/> (same images per prompt, seed and limit) and reported beside it, never
    /// used for tuning. Names are file-name parts: letters, digits, <c>-</c> and <c>_</c>, not <c>eval</c>.
    /// </summary>
    public Dictionary<string, string> EvalSets { get; set; } = new(StringComparer.Ordinal);

    /// <summary>The name <see cref="EvalPrompts"/> goes by among the evaluation sets (in file names and reports).</summary>
    public const string MainEvalSet = "eval";

    /// <summary>
    /// Further rewards that read every evaluation's images beside the first of <see cref="Rewards"/> (e.g. <c>ocr-block</c>,
    /// a second OCR pipeline), so that a gain is not one reader's taste. They score the same images: no extra sampling.
    /// </summary>
    public List<string> EvalReaders { get; set; } = [];

    /// <summary>
    /// The evaluation sets in effect, by name: <see cref="EvalSets"/> without those whose file is empty (an empty value
    /// turns a configured set off, e.g. <c>--set Train:EvalSets:ood=</c> for a model the set is not made for); none
    /// without <see cref="Evaluate"/>.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public IReadOnlyList<KeyValuePair<string, string>> ActiveEvalSets =>
        Evaluate ? EvalSets.Where(kv => !string.IsNullOrWhiteSpace(kv.Value)).OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList() : [];

    /// <summary>The further readers in effect: <see cref="EvalReaders"/> without empty entries (<c>--set Train:EvalReaders:0=</c> turns one off); none without <see cref="Evaluate"/>.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public IReadOnlyList<string> ActiveEvalReaders => Evaluate ? EvalReaders.Where(r => !string.IsNullOrWhiteSpace(r)).ToList() : [];

    /// <summary>Images per evaluation prompt (the evaluation protocol: at least 4).</summary>
    public int EvalImagesPerPrompt { get; set; } = 4;

    /// <summary>
    /// Seed of the evaluation images, independent of <see cref="Seed"/>: every variant and run is evaluated on the same
    /// prompts with the same random streams, so evaluations pair.
    /// </summary>
    public long EvalSeed { get; set; } = 20_261_201;

    /// <summary>Bootstrap resamples of the evaluation's confidence intervals.</summary>
    public int BootstrapResamples { get; set; } = Evidence.Bootstrap.DefaultResamples;

    /// <summary>Use at most this many evaluation prompts (0 = all).</summary>
    public int EvalLimit { get; set; }

    /// <summary>Updates to run.</summary>
    public int Steps { get; set; } = 40;

    /// <summary>Prompts per update.</summary>
    public int PromptsPerStep { get; set; } = 4;

    /// <summary>Group size G (trajectories or prefixes per prompt).</summary>
    public int GroupSize { get; set; } = 8;

    /// <summary>Optimizer passes over each batch.</summary>
    public int InnerEpochs { get; set; } = 1;

    /// <summary>Trajectories per forward/backward chunk (memory bound; gradients are accumulated).</summary>
    public int MicroBatch { get; set; } = 16;

    /// <summary>AdamW learning rate.</summary>
    public double LearningRate { get; set; } = 1e-4;

    /// <summary>AdamW beta1.</summary>
    public double Beta1 { get; set; } = 0.9;

    /// <summary>AdamW beta2.</summary>
    public double Beta2 { get; set; } = 0.95;

    /// <summary>AdamW weight decay.</summary>
    public double WeightDecay { get; set; } = 0.05;

    /// <summary>Gradient-norm clip (0 = off).</summary>
    public double MaxGradNorm { get; set; } = 1.0;

    /// <summary>PPO clip epsilon.</summary>
    public double ClipEpsilon { get; set; } = 0.2;

    /// <summary>KL coefficient beta (0 skips the reference policy entirely; default 0.1, the main job's, ten times method.md's 0.01).</summary>
    public double KlBeta { get; set; } = 0.1;

    /// <summary>Std floor in the group z-score.</summary>
    public double AdvantageEpsilon { get; set; } = 1e-4;

    /// <summary>Distribution of the loss's log-probabilities.</summary>
    public LossDistribution LossDistribution { get; set; } = LossDistribution.Conditional;

    /// <summary>PANW exponent alpha (0 = vanilla token mean).</summary>
    public double Alpha { get; set; } = 0.7;

    /// <summary>VMR settings.</summary>
    public VmrOptions Vmr { get; set; } = new();

    /// <summary>LoRA adapters instead of full fine-tuning (<c>Train:Lora:Rank</c> &gt; 0).</summary>
    public LoraOptions Lora { get; set; } = new();

    /// <summary>Mask propagation settings.</summary>
    public MaskOptions Mask { get; set; } = new();

    /// <summary>Rollout sampling.</summary>
    public RolloutOptions Rollout { get; set; } = new();

    /// <summary>Rollout sharding and cluster workers.</summary>
    public ClusterOptions Cluster { get; set; } = new();

    /// <summary>Run seed: data order, sampling seeds.</summary>
    public long Seed { get; set; } = 1;

    /// <summary>Write a checkpoint every N steps (0 = only at the end and on Ctrl-C).</summary>
    public int CheckpointEvery { get; set; } = 10;

    /// <summary>Keep this many most recent checkpoints.</summary>
    public int KeepCheckpoints { get; set; } = 2;

    /// <summary>Write a captioned sample grid every N steps (0 = never).</summary>
    public int SampleEvery { get; set; } = 10;

    /// <summary>Evaluate held-out prompts before and after training.</summary>
    public bool Evaluate { get; set; } = true;

    /// <summary>Also evaluate before training (when <see cref="Evaluate"/> is on); ablations evaluate the base model once.</summary>
    public bool EvaluateBefore { get; set; } = true;

    /// <summary>Torch intra-op threads (0 = leave the default).</summary>
    public int Threads { get; set; }

    /// <summary>
    /// Metrics drawn into curves.png besides the reward mean and spread, each reward's <c>&lt;name&gt;/score</c> and the
    /// health metrics (e.g. <c>ocr/word_acc</c>: a reward's own metric names belong to the run's configuration, not to the engine).
    /// </summary>
    public List<string> PlotMetrics { get; set; } = [];

    /// <summary>
    /// The evaluation metrics the ablation table reports, in order, one of them the headline whose paired difference gets
    /// a verdict (empty: the reward's mean score). The main job's
    /// appsettings.json names OCR's word accuracy and NED.
    /// </summary>
    public List<ReportMetric> ReportMetrics { get; set; } = [];

    /// <summary>A deep copy.</summary>
    public TrainerOptions Clone()
    {
        var copy = System.Text.Json.JsonSerializer.Deserialize<TrainerOptions>(System.Text.Json.JsonSerializer.Serialize(this))!;
        copy.Cluster.Secret = Cluster.Secret; // not serialized (kept out of config.json)
        return copy;
    }

    private static bool IsFileNamePart(string? name) =>
        !string.IsNullOrEmpty(name) && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');

    /// <summary>Every problem with these options (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        void Check(bool ok, string message)
        {
            if (!ok) errors.Add(message);
        }
        Check(!string.IsNullOrWhiteSpace(Policy), "Train:Policy is empty");
        Check(Rewards.Count > 0, "Train:Rewards is empty: name at least one reward");
        for (int i = 0; i < Rewards.Count; i++)
        {
            Check(!string.IsNullOrWhiteSpace(Rewards[i].Name), $"Train:Rewards:{i}:Name is empty");
            Check(double.IsFinite(Rewards[i].Weight), $"Train:Rewards:{i}:Weight must be finite");
            Check(Rewards[i].Retries >= 0, $"Train:Rewards:{i}:Retries must be >= 0");
            Check(Rewards[i].TimeoutSeconds >= 0, $"Train:Rewards:{i}:TimeoutSeconds must be >= 0");
        }
        Check(Rewards.Select(r => r.Name).Distinct().Count() == Rewards.Count, "Train:Rewards names a reward twice");
        Check(!string.IsNullOrWhiteSpace(TrainPrompts), "Train:TrainPrompts is empty");
        Check(Steps >= 1, $"Train:Steps must be >= 1, got {Steps}");
        Check(PromptsPerStep >= 1, $"Train:PromptsPerStep must be >= 1, got {PromptsPerStep}");
        Check(GroupSize >= 2, $"Train:GroupSize must be >= 2 (a group z-score needs two samples), got {GroupSize}");
        Check(InnerEpochs >= 1, $"Train:InnerEpochs must be >= 1, got {InnerEpochs}");
        Check(MicroBatch >= 1, $"Train:MicroBatch must be >= 1, got {MicroBatch}");
        Check(Lora.Rank >= 0, $"Train:Lora:Rank must be >= 0 (0 = full fine-tuning), got {Lora.Rank}");
        Check(Lora.Alpha > 0 && double.IsFinite(Lora.Alpha), $"Train:Lora:Alpha must be > 0, got {Lora.Alpha}");
        Check(LearningRate > 0 && double.IsFinite(LearningRate), $"Train:LearningRate must be > 0, got {LearningRate}");
        Check(Beta1 is >= 0 and < 1, $"Train:Beta1 must be in [0, 1), got {Beta1}");
        Check(Beta2 is >= 0 and < 1, $"Train:Beta2 must be in [0, 1), got {Beta2}");
        Check(WeightDecay >= 0, $"Train:WeightDecay must be >= 0, got {WeightDecay}");
        Check(MaxGradNorm >= 0, $"Train:MaxGradNorm must be >= 0, got {MaxGradNorm}");
        Check(ClipEpsilon is > 0 and < 1, $"Train:ClipEpsilon must be in (0, 1), got {ClipEpsilon}");
        Check(KlBeta >= 0, $"Train:KlBeta must be >= 0, got {KlBeta}");
        Check(AdvantageEpsilon > 0, $"Train:AdvantageEpsilon must be > 0, got {AdvantageEpsilon}");
        Check(Alpha >= 0 && double.IsFinite(Alpha), $"Train:Alpha must be >= 0, got {Alpha}");
        Check(Vmr.Continuations >= 1, $"Train:Vmr:Continuations must be >= 1, got {Vmr.Continuations}");
        Check(Vmr.Eta > 0, $"Train:Vmr:Eta must be > 0, got {Vmr.Eta}");
        Check(!Vmr.TieEtaToKlBeta || KlBeta > 0, "Train:Vmr:TieEtaToKlBeta needs Train:KlBeta > 0 (eta = beta must be positive)");
        Check(Vmr.PrefixUpdatesPerSuffix >= 1, $"Train:Vmr:PrefixUpdatesPerSuffix must be >= 1, got {Vmr.PrefixUpdatesPerSuffix}");
        Check(Vmr.CoarsePrefixFraction is > 0 and < 1, $"Train:Vmr:CoarsePrefixFraction must be in (0, 1), got {Vmr.CoarsePrefixFraction}");
        Check(Rollout.CfgScale >= 0, $"Train:Rollout:CfgScale must be >= 0, got {Rollout.CfgScale}");
        Check(Rollout.TopK >= 0, $"Train:Rollout:TopK must be >= 0, got {Rollout.TopK}");
        Check(Rollout.TopP is > 0 and <= 1, $"Train:Rollout:TopP must be in (0, 1], got {Rollout.TopP}");
        Check(Rollout.Temperature > 0, $"Train:Rollout:Temperature must be > 0, got {Rollout.Temperature}");
        Check(CheckpointEvery >= 0, $"Train:CheckpointEvery must be >= 0, got {CheckpointEvery}");
        Check(KeepCheckpoints >= 1, $"Train:KeepCheckpoints must be >= 1, got {KeepCheckpoints}");
        Check(SampleEvery >= 0, $"Train:SampleEvery must be >= 0, got {SampleEvery}");
        Check(EvalLimit >= 0, $"Train:EvalLimit must be >= 0, got {EvalLimit}");
        Check(EvalImagesPerPrompt >= 1, $"Train:EvalImagesPerPrompt must be >= 1, got {EvalImagesPerPrompt}");
        foreach (var (name, _) in ActiveEvalSets)
            Check(IsFileNamePart(name) && name != MainEvalSet, $"Train:EvalSets:{name}: a set name must be letters, digits, '-' or '_' and not '{MainEvalSet}'");
        for (int i = 0; i < EvalReaders.Count; i++)
            Check(string.IsNullOrWhiteSpace(EvalReaders[i]) || IsFileNamePart(EvalReaders[i]), $"Train:EvalReaders:{i} must be a reward name of letters, digits, '-' or '_', got '{EvalReaders[i]}'");
        var readers = ActiveEvalReaders;
        Check(readers.Distinct().Count() == readers.Count && (Rewards.Count == 0 || !readers.Contains(Rewards[0].Name)),
            "Train:EvalReaders names a reader twice (the first of Train:Rewards always reads)");
        Check(BootstrapResamples >= 100, $"Train:BootstrapResamples must be >= 100, got {BootstrapResamples}");
        Check(Threads >= 0, $"Train:Threads must be >= 0, got {Threads}");
        Check(Cluster.ShardPrompts >= 0, $"Train:Cluster:ShardPrompts must be >= 0 (0 = one shard per step), got {Cluster.ShardPrompts}");
        Check(Cluster.ShardTimeoutSeconds > 0, $"Train:Cluster:ShardTimeoutSeconds must be > 0, got {Cluster.ShardTimeoutSeconds}");
        Check(Cluster.ShardRetries >= 0, $"Train:Cluster:ShardRetries must be >= 0, got {Cluster.ShardRetries}");
        Check(Cluster.MinWorkers >= 1, $"Train:Cluster:MinWorkers must be >= 1, got {Cluster.MinWorkers}");
        Check(Cluster.JoinTimeoutSeconds > 0, $"Train:Cluster:JoinTimeoutSeconds must be > 0, got {Cluster.JoinTimeoutSeconds}");
        for (int i = 0; i < Cluster.Gateways.Count; i++)
            Check(ClusterOptions.TrySplitEndpoint(Cluster.Gateways[i], out _, out _), $"Train:Cluster:Gateways:{i} must be host:port, got '{Cluster.Gateways[i]}'");
        Check(Cluster.Gateways.Count == 0 || string.IsNullOrWhiteSpace(Cluster.Redis), "Train:Cluster: give Gateways or Redis, not both");
        return errors;
    }
}
