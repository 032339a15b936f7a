namespace NextFlowRL.Policies.Var.Model;

/// <summary>Teacher-forced computations shared by pretraining and the policy's log-probabilities.</summary>
public static class VarForward
{
    /// <summary>
    /// Input features of every scale 1..end-1 given the tokens of scales 0..end-2: the accumulated features through
    /// scale k-1 area-downsampled to scale k's grid (no gradients: the tokenizer is frozen).
    /// </summary>
    public static List<Tensor> TeacherInputs(MultiScaleVqVae tokenizer, IReadOnlyList<Tensor> tokens, int endScale)
    {
        using var _ = no_grad();
        var result = new List<Tensor>();
        Tensor? fhat = null;
        for (int k = 1; k < endScale; k++)
        {
            var e = tokenizer.EmbedScale(tokens[k - 1], k - 1);
            fhat = fhat is null ? e : fhat + e;
            result.Add(tokenizer.Downsample(fhat, k));
        }
        return result;
    }

    /// <summary>
    /// Logits <c>[B, L_end, V]</c> of all positions of scales 0..end-1 in one teacher-forced pass with the block-causal
    /// mask. Gradients flow into the generator when autograd is on.
    /// </summary>
    public static Tensor TeacherForcedLogits(VarModel model, TextCondition cond, IReadOnlyList<Tensor> tokens, int endScale)
    {
        var inputs = TeacherInputs(model.Tokenizer, tokens, endScale);
        var parts = new List<Tensor> { model.Generator.EmbedInput(0, cond, null) };
        for (int k = 1; k < endScale; k++) parts.Add(model.Generator.EmbedInput(k, cond, inputs[k - 1]));
        var x = cat(parts.ToArray(), 1);
        var mask = model.Generator.BlockCausalMask(endScale, x.device);
        return model.Generator.Forward(x, cond, mask, null);
    }
}
