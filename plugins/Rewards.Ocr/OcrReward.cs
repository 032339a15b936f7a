using System.ComponentModel.DataAnnotations;
using NextFlowRL.Rewards.Ocr.Engine;
using NextFlowRL.Rewards.Ocr.Scoring;

namespace NextFlowRL.Rewards.Ocr;

/// <summary>Which formula an <see cref="OcrReward"/> computes.</summary>
public enum OcrRewardFormula
{
    /// <summary>The paper's <c>Comp + Sim - Pen</c> (max 2); registered as <c>ocr</c>.</summary>
    Paper,

    /// <summary>Flow-GRPO's <c>1 - min(Levenshtein, |target|)/|target|</c> with substring credit (max 1); registered as <c>ocr-edit</c>.</summary>
    Edit,
}

/// <summary>Options of an OCR reward (configuration section <c>Rewards:&lt;name&gt;</c>).</summary>
public sealed class OcrRewardOptions
{
    /// <summary>The formula.</summary>
    public OcrRewardFormula Formula { get; set; } = OcrRewardFormula.Paper;

    /// <summary>Tesseract language(s), e.g. <c>eng</c> or <c>eng+deu</c>.</summary>
    [Required, RegularExpression(@"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$", ErrorMessage = "Language must look like 'eng' or 'eng+deu'.")]
    public string Language { get; set; } = "eng";

    /// <summary>Folder holding the <c>.traineddata</c> files; null or empty: <c>TESSDATA_PREFIX</c>, then the usual system folders.</summary>
    public string? TessdataPath { get; set; }

    /// <summary>
    /// The native Tesseract 5 library file (e.g. <c>C:\Program Files\Tesseract-OCR\libtesseract-5.dll</c>); null or empty:
    /// <c>NEXTFLOW_TESSERACT_LIBRARY</c>, then the OS's usual names and folders (see the plugin README). One library per process.
    /// </summary>
    public string? LibraryPath { get; set; }

    /// <summary>Tesseract page segmentation mode: 11 (sparse text, default) suits images with several text regions; 7 a single line, 8 a single word.</summary>
    [Range(0, 13)]
    public int PageSegmentationMode { get; set; } = 11;

    /// <summary>Images whose longest side is below this many pixels are upscaled by <see cref="UpscaleFactor"/>.</summary>
    [Range(0, 4096)]
    public int UpscaleBelow { get; set; } = 256;

    /// <summary>Upscaling factor for small images (1 = never upscale).</summary>
    [Range(1.0, 8.0)]
    public double UpscaleFactor { get; set; } = 3;

    /// <summary>Images whose longest side exceeds this are downscaled to it before recognition (boxes are still reported in original pixels).</summary>
    [Range(64, 16384)]
    public int MaxSide { get; set; } = 4096;

    /// <summary>Parallel workers, one Tesseract engine each; 0 = one per processor.</summary>
    [Range(0, 256)]
    public int Workers { get; set; }

    /// <summary>Linux: bind each worker to its own processor while it reads a batch (when workers &lt;= processors).</summary>
    public bool PinWorkers { get; set; } = true;

    /// <summary>Recognized words below this confidence (in [0, 1]) are ignored by the formulas (still reported as regions, unmatched).</summary>
    [Range(0.0, 1.0)]
    public double MinConfidence { get; set; }

    /// <summary>
    /// Where target words come from when the sample has no <see cref="RewardMetadataKeys.TargetWords"/> metadata;
    /// null = the formula's convention (<see cref="TargetConvention.SingleQuoted"/> for Paper,
    /// <see cref="TargetConvention.DoubleQuoted"/> for Edit).
    /// </summary>
    public TargetConvention? Targets { get; set; }

    /// <summary>Ignore leading and trailing punctuation of recognized and target words (<c>"Hello,"</c> reads as <c>hello</c>).</summary>
    public bool IgnoreEdgePunctuation { get; set; } = true;

    /// <summary>A recognized word that is the best match <c>p*</c> of a target with at least this similarity is reported as a region of that target.</summary>
    [Range(0.0, 1.0)]
    public double RegionMatchThreshold { get; set; } = 0.5;

    /// <summary>
    /// A sample without any target word fails (<see cref="RewardResult.Error"/>) instead of getting the documented
    /// no-target score (Paper: <c>-Pen</c>; Edit: 0).
    /// </summary>
    public bool FailWithoutTargets { get; set; }

    /// <summary>The engine settings these options describe.</summary>
    public TesseractSettings ToSettings() =>
        new(Language, string.IsNullOrWhiteSpace(TessdataPath) ? null : TessdataPath, PageSegmentationMode, UpscaleBelow, UpscaleFactor, MaxSide);

    /// <summary>The target convention in effect.</summary>
    public TargetConvention EffectiveTargets =>
        Targets ?? (Formula == OcrRewardFormula.Edit ? TargetConvention.DoubleQuoted : TargetConvention.SingleQuoted);

    /// <summary>The worker count in effect.</summary>
    public int EffectiveWorkers => Workers > 0 ? Workers : Environment.ProcessorCount;
}

/// <summary>
/// Checks at start that Tesseract's language data exists, so a missing package is reported before any work
/// (the message names the path and the Debian package).
/// </summary>
public sealed class OcrRewardOptionsValidator : IValidateOptions<OcrRewardOptions>
{
    /// <inheritdoc/>
    public ValidateOptionsResult Validate(string? name, OcrRewardOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.Language)) return ValidateOptionsResult.Skip; // data annotations report it
        try
        {
            TesseractLibrary.UsePath(options.LibraryPath);
            TesseractLibrary.FindTessdata(options.TessdataPath, options.Language);
            return ValidateOptionsResult.Success;
        }
        catch (OcrEngineException e)
        {
            return ValidateOptionsResult.Fail(e.Message);
        }
    }
}

/// <summary>
/// OCR rewards on Tesseract 5 (see the plugin README). Per image: the words Tesseract recognizes (word boxes and
/// confidences), compared with the sample's target words by <see cref="OcrRewardFormula"/>. Batches are read by
/// <see cref="OcrRewardOptions.Workers"/> engines in parallel.
/// <para>
/// Components of every scored image: <c>word_acc</c>, <c>ned</c> (CVTG-2K, this image), <c>targets</c>,
/// <c>matched</c>, <c>ned_sum</c> (counts for <see cref="Summarize"/>), <c>recognized</c> (words used); Paper adds
/// <c>comp</c>, <c>sim</c>, <c>pen</c>; Edit adds <c>edit_distance</c>, <c>target_chars</c>, <c>substring</c>.
/// Regions: every recognized word (original pixels, confidence, raw text), with the target it matched or null.
/// </para>
/// </summary>
public sealed class OcrReward : ISummarizingReward, IDisposable
{
    private readonly OcrRewardOptions _options;
    private readonly OcrEnginePool _pool;

    /// <summary>Creates the reward; Tesseract engines are created by the first batch.</summary>
    public OcrReward(string name, OcrRewardOptions options)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(options);
        Name = name;
        _options = options;
        TesseractLibrary.UsePath(options.LibraryPath);
        _pool = new OcrEnginePool(options.ToSettings(), options.EffectiveWorkers, options.PinWorkers);
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <summary>The options in use.</summary>
    public OcrRewardOptions Options => _options;

    /// <summary>Number of parallel workers.</summary>
    public int Workers => _pool.Workers;

    /// <summary>Tesseract engines created so far (for tests: engines are created once per worker and reused).</summary>
    internal int EnginesCreated => _pool.EnginesCreated;

    /// <inheritdoc/>
    /// <exception cref="OcrEngineException">Tesseract or its language data is missing (the message says what to install).</exception>
    public async Task<IReadOnlyList<RewardResult>> ScoreAsync(IReadOnlyList<RewardSample> samples, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(samples);
        for (int i = 0; i < samples.Count; i++)
        {
            if (samples[i] is null || samples[i].Image is null)
                throw new ArgumentException($"sample {i} is null or has no image", nameof(samples));
        }
        return await _pool.RunAsync(samples.Count, (engine, i) => ScoreOne(engine, samples[i]), cancellationToken).ConfigureAwait(false);
    }

    private RewardResult ScoreOne(TesseractEngine engine, RewardSample sample)
    {
        var targets = Targets.For(sample, _options.EffectiveTargets)
            .Select(t => TextMetrics.Normalize(t, _options.IgnoreEdgePunctuation)).Where(t => t.Length > 0).ToList();
        if (targets.Count == 0 && _options.FailWithoutTargets)
            return RewardResult.Failed($"no target words: the prompt has no {DescribeConvention()} and there is no '{RewardMetadataKeys.TargetWords}' metadata");
        IReadOnlyList<RecognizedWord> words;
        try
        {
            words = engine.Recognize(sample.Image);
        }
        catch (OcrEngineException e)
        {
            return new RewardResult(double.NaN, new Dictionary<string, double> { ["targets"] = targets.Count }, [], e.Message);
        }
        return Score(targets, words);
    }

    /// <summary>
    /// Scores recognized words against target words with this reward's formula and options (no OCR involved): the
    /// same result <see cref="ScoreAsync"/> gives for an image Tesseract read as <paramref name="words"/>.
    /// </summary>
    public RewardResult Score(IReadOnlyList<string> targetWords, IReadOnlyList<RecognizedWord> words)
    {
        ArgumentNullException.ThrowIfNull(targetWords);
        ArgumentNullException.ThrowIfNull(words);
        var targets = targetWords.Select(t => TextMetrics.Normalize(t, _options.IgnoreEdgePunctuation)).Where(t => t.Length > 0).ToList();
        // The words the formulas see: normalized, non-empty, confident enough; remember where each came from.
        var used = new List<(string Text, double Confidence)>();
        var usedIndex = new List<int>();
        for (int i = 0; i < words.Count; i++)
        {
            var text = TextMetrics.Normalize(words[i].Text, _options.IgnoreEdgePunctuation);
            if (text.Length == 0 || words[i].Confidence < _options.MinConfidence) continue;
            used.Add((text, words[i].Confidence));
            usedIndex.Add(i);
        }
        var paper = OcrFormulas.Paper(targets, used);
        var counts = paper.Counts;
        var components = new Dictionary<string, double>
        {
            ["word_acc"] = counts.WordAccuracy,
            ["ned"] = counts.Ned,
            ["targets"] = counts.TargetWords,
            ["matched"] = counts.MatchedWords,
            ["ned_sum"] = counts.NedSum,
            ["recognized"] = used.Count,
        };
        double score;
        if (_options.Formula == OcrRewardFormula.Paper)
        {
            components["comp"] = paper.Comp;
            components["sim"] = paper.Sim;
            components["pen"] = paper.Pen;
            score = paper.Reward;
        }
        else
        {
            var edit = OcrFormulas.Edit(string.Concat(targets), string.Concat(used.Select(u => u.Text)));
            components["edit_distance"] = edit.Distance;
            components["target_chars"] = edit.Target.Length;
            components["substring"] = edit.IsSubstring ? 1 : 0;
            score = edit.Reward;
        }
        return new RewardResult(score, components, Regions(targets, words, used, usedIndex, paper));
    }

    private List<RewardRegion> Regions(
        List<string> targets, IReadOnlyList<RecognizedWord> words, List<(string Text, double Confidence)> used, List<int> usedIndex, PaperReward paper)
    {
        var matched = new string?[words.Count];
        var targetSet = targets.ToHashSet(StringComparer.Ordinal);
        for (int u = 0; u < used.Count; u++)
        {
            if (targetSet.Contains(used[u].Text)) matched[usedIndex[u]] = used[u].Text;
        }
        for (int g = 0; g < targets.Count; g++)
        {
            int u = paper.BestMatch[g];
            if (u < 0 || matched[usedIndex[u]] is not null) continue;
            if (TextMetrics.Similarity(targets[g], used[u].Text) >= _options.RegionMatchThreshold)
                matched[usedIndex[u]] = targets[g];
        }
        var regions = new List<RewardRegion>(words.Count);
        for (int i = 0; i < words.Count; i++)
        {
            var w = words[i];
            regions.Add(new RewardRegion(w.X, w.Y, w.Width, w.Height, w.Confidence, w.Text, matched[i]));
        }
        return regions;
    }

    private string DescribeConvention() => _options.EffectiveTargets switch
    {
        TargetConvention.SingleQuoted => "single-quoted words",
        TargetConvention.DoubleQuoted => "double-quoted span",
        _ => "targets",
    };

    /// <summary>
    /// Set-level metrics: <c>word_accuracy</c> and <c>ned</c> (CVTG-2K, word-weighted over every result that carries
    /// the <c>targets</c> count, including images whose recognition failed: their words count as missed),
    /// <c>target_words</c>, <c>matched_words</c>, <c>images</c> (results counted), <c>failed</c> (results with an error),
    /// and <c>mean_score</c> (over valid results; NaN when none).
    /// </summary>
    public IReadOnlyDictionary<string, double> Summarize(IReadOnlyList<RewardResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var counts = new List<CvtgCounts>();
        int failed = 0;
        double scoreSum = 0;
        int valid = 0;
        foreach (var r in results)
        {
            if (r.Error is not null) failed++;
            if (r.IsValid)
            {
                scoreSum += r.Score;
                valid++;
            }
            if (!r.Components.TryGetValue("targets", out var t)) continue;
            counts.Add(new CvtgCounts(
                (int)t,
                (int)r.Components.GetValueOrDefault("matched"),
                r.Components.GetValueOrDefault("ned_sum")));
        }
        var summary = CvtgMetrics.Summarize(counts);
        return new Dictionary<string, double>
        {
            ["word_accuracy"] = summary.WordAccuracy,
            ["ned"] = summary.Ned,
            ["target_words"] = summary.TargetWords,
            ["matched_words"] = summary.MatchedWords,
            ["images"] = summary.Images,
            ["failed"] = failed,
            ["mean_score"] = valid == 0 ? double.NaN : scoreSum / valid,
        };
    }

    /// <summary>Releases the Tesseract engines.</summary>
    public void Dispose() => _pool.Dispose();
}
