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
/// and <c>ocr-edit</c> (Flow-GRPO's edit-distance reward, first double-quoted span), and the command <c>bench ocr</c>.
/// </summary>
public sealed class OcrPlugin : INextFlowRLPlugin
{
    /// <inheritdoc/>
    public void Register(INextFlowRLBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddOcrReward("ocr", o => o.Formula = OcrRewardFormula.Paper);
        builder.AddOcrReward("ocr-edit", o => o.Formula = OcrRewardFormula.Edit);
        builder.AddCommand<OcrBenchCommand>();
    }
}
