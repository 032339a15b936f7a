using NextFlowRL.Plugins;
using NextFlowRL.Policies.Var.Commands;

namespace NextFlowRL.Policies.Var;

/// <summary>
/// Plugin entry of the VAR policy's tools: the commands <c>pretrain tokenizer</c>, <c>pretrain generator</c>,
/// <c>data var-prompts</c> and <c>data var-images</c>, with the synthetic text data and the pretraining loop they use.
/// </summary>
public sealed class VarToolsPlugin : INextFlowRLPlugin
{
    /// <summary>The policy plugin's folder name beside this one in a plugins directory.</summary>
    public const string PolicyPluginFolder = "NextFlowRL.Policies.Var";

    /// <inheritdoc/>
    public void Register(INextFlowRLBuilder builder)
    {
        builder.AddCommand<PretrainTokenizerCommand>();
        builder.AddCommand<PretrainGeneratorCommand>();
        builder.AddCommand<ReferenceImagesCommand>();
        builder.AddCommand<PromptsCommand>();
    }

    /// <summary>
    /// The shipped model <c>tiny-text</c>: beside the policy assembly when it is there (a build or test output that holds
    /// both), else in the policy plugin's folder next to this plugin's (<c>plugins/NextFlowRL.Policies.Var/models/tiny-text</c>).
    /// </summary>
    public static string DefaultModelDirectory
    {
        get
        {
            var own = VarPolicyProvider.DefaultModelDirectory;
            if (Directory.Exists(own)) return own;
            var pluginDir = Path.GetDirectoryName(typeof(VarToolsPlugin).Assembly.Location) ?? AppContext.BaseDirectory;
            var sibling = Path.Combine(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(pluginDir)) ?? pluginDir, PolicyPluginFolder, "models", "tiny-text");
            return Directory.Exists(sibling) ? sibling : own;
        }
    }
}
