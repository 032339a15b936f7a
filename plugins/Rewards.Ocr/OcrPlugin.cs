using Microsoft.Extensions.DependencyInjection.Extensions;
using NextFlowRL.Plugins;
using NextFlowRL.Rewards.Ocr.Bench;

namespace NextFlowRL.Rewards.Ocr;

/// <summary>Registration of OCR rewards.</summary>
public static class OcrRewardExtensions
{
    /// <summary>
    /// Adds an OCR reward under <paramref name="name"/>; options from <c>Rewards:&lt;name&gt;</c>, then
    /// <paramref name="configure"/>; validated at start (including that the language data exists).
    /// </summary>
    public static INextFlowRLBuilder AddOcrReward(
        this INextFlowRLBuilder builder,
        string name = "ocr",
        Action<OcrRewardOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddComponentOptions(ComponentKind.Reward, name, configure);
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<OcrRewardOptions>, OcrRewardOptionsValidator>());
        return builder.AddReward(name, "OCR (Tesseract 5): text in the image vs the prompt's quoted words", (sp, n) =>
            new OcrReward(n, sp.GetRequiredService<IOptionsMonitor<OcrRewardOptions>>().Get(n)));
    }
}

/// <summary>
/// Plugin entry: registers the rewards <c>ocr</c> (the paper's <c>Comp + Sim - Pen</c>, CVTG-2K single-quoted targets)
/// and <c>ocr-edit</c> (Flow-GRPO's edit-distance reward, first double-quoted span), the second reader
/// <c>ocr-block</c> (the <c>ocr</c> formula with another Tesseract pipeline: one uniform block of text, page segmentation
/// mode 6 instead of sparse text, and 4x instead of 3x upscaling below 512 pixels; it scores evaluations beside the
/// reward so that a gain is not one reader's taste), and the command <c>bench ocr</c>.
/// </summary>
public sealed class OcrPlugin : INextFlowRLPlugin
{
    /// <summary>Name of the second reader.</summary>
    public const string SecondReader = "ocr-block";

    /// <inheritdoc/>
    public void Register(INextFlowRLBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddOcrReward("ocr", o => o.Formula = OcrRewardFormula.Paper);
        builder.AddOcrReward("ocr-edit", o => o.Formula = OcrRewardFormula.Edit);
        // The second reader's pipeline as defaults (registered before the binding, so Rewards:ocr-block:... overrides them).
        builder.Services.Configure<OcrRewardOptions>(SecondReader, o =>
        {
            o.PageSegmentationMode = 6;
            o.UpscaleBelow = 512;
            o.UpscaleFactor = 4;
        });
        builder.AddOcrReward(SecondReader, o => o.Formula = OcrRewardFormula.Paper);
        builder.AddCommand<OcrBenchCommand>();
    }
}
