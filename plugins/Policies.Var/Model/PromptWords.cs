namespace NextFlowRL.Policies.Var.Model;

/// <summary>
/// The words a prompt asks to render: its single-quoted spans (CVTG convention), split at spaces. The text encoder
/// reads only these; the pretraining data and the prompt files use the same rule for their target words.
/// </summary>
public static class PromptWords
{
    /// <summary>Extracts the single-quoted spans of a prompt (the words to render), in order.</summary>
    public static IReadOnlyList<string> Quoted(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var result = new List<string>();
        int start = -1;
        for (int i = 0; i < prompt.Length; i++)
        {
            if (prompt[i] != '\'') continue;
            // An apostrophe inside a word (letter on both sides) is not a quote.
            bool inner = i > 0 && i + 1 < prompt.Length && char.IsLetter(prompt[i - 1]) && char.IsLetter(prompt[i + 1]);
            if (inner) continue;
            if (start < 0) start = i + 1;
            else
            {
                var span = prompt[start..i].Trim();
                if (span.Length > 0) result.AddRange(span.Split(' ', StringSplitOptions.RemoveEmptyEntries));
                start = -1;
            }
        }
        return result;
    }
}
