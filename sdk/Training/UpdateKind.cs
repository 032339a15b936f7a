namespace NextFlowRL.Training;

/// <summary>What one update optimizes.</summary>
public enum UpdateKind
{
    /// <summary>Whole trajectories, one group per prompt (vanilla GRPO).</summary>
    Joint,

    /// <summary>VMR prefix update: scales before the split, reward = soft middle value.</summary>
    Prefix,

    /// <summary>VMR suffix update: scales from the split on, group = all continuations of a prompt.</summary>
    Suffix,
}

/// <summary>Which update each step runs.</summary>
public static class Alternation
{
    /// <summary>The update kind of step <paramref name="step"/> (0-based) of a run of <paramref name="totalSteps"/> under the literal alternation.</summary>
    public static UpdateKind KindAt(VmrOptions vmr, int step, int totalSteps) => LiteralKind(vmr, step, CoarsePrefixSteps(vmr, totalSteps));

    private static UpdateKind LiteralKind(VmrOptions vmr, int step, int coarsePrefixSteps)
    {
        ArgumentNullException.ThrowIfNull(vmr);
        return vmr.Schedule switch
        {
            AlternationSchedule.Joint => UpdateKind.Joint,
            AlternationSchedule.Fine => step % (vmr.PrefixUpdatesPerSuffix + 1) < vmr.PrefixUpdatesPerSuffix ? UpdateKind.Prefix : UpdateKind.Suffix,
            AlternationSchedule.Coarse => step < coarsePrefixSteps ? UpdateKind.Prefix : UpdateKind.Suffix,
            _ => throw new ArgumentOutOfRangeException(nameof(vmr), vmr.Schedule, "unknown schedule"),
        };
    }

    /// <summary>
    /// The updates that sampling pass <paramref name="step"/> feeds, in order. With <see cref="RolloutReuse.Both"/> and
    /// the fine schedule every pass feeds a prefix update and every <c>PrefixUpdatesPerSuffix</c>-th pass (steps r-1,
    /// 2r-1, ...) also a suffix update, which keeps the prefix:suffix ratio at r:1 while no pass's data goes unused;
    /// the coarse schedule keeps its two phases (<paramref name="coarsePrefixSteps"/> prefix passes, then suffix passes);
    /// joint training is one update per pass. <see cref="RolloutReuse.Literal"/> is one update per pass as
    /// <see cref="KindAt"/> says.
    /// </summary>
    public static IReadOnlyList<UpdateKind> UpdatesAt(VmrOptions vmr, int step, int coarsePrefixSteps)
    {
        ArgumentNullException.ThrowIfNull(vmr);
        if (vmr.Reuse == RolloutReuse.Literal || vmr.Schedule != AlternationSchedule.Fine)
            return [LiteralKind(vmr, step, coarsePrefixSteps)];
        int r = vmr.PrefixUpdatesPerSuffix;
        return step % r == r - 1 ? [UpdateKind.Prefix, UpdateKind.Suffix] : [UpdateKind.Prefix];
    }

    /// <summary>Prefix steps of the coarse schedule (at least one of each kind when there are two or more steps).</summary>
    public static int CoarsePrefixSteps(VmrOptions vmr, int totalSteps)
    {
        ArgumentNullException.ThrowIfNull(vmr);
        int n = (int)Math.Round(vmr.CoarsePrefixFraction * totalSteps);
        return totalSteps >= 2 ? Math.Clamp(n, 1, totalSteps - 1) : totalSteps;
    }

    /// <summary>
    /// Resolves the VMR split scale m against a schedule: by resolution (<c>HxW</c> or <c>S</c>) when given, else by
    /// index. A split must leave a non-empty prefix and suffix (1 &lt;= m &lt;= T-1).
    /// </summary>
    /// <exception cref="ArgumentException">Unknown resolution or an empty prefix/suffix; the message lists valid choices.</exception>
    public static int ResolveSplit(VmrOptions vmr, Policies.ScaleSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(vmr);
        ArgumentNullException.ThrowIfNull(schedule);
        string valid = $"valid: index 1..{schedule.Count - 1} or a resolution among {string.Join(", ", schedule.Skip(1).Select(s => s.ToString()))} (schedule {schedule})";
        int m;
        if (!string.IsNullOrWhiteSpace(vmr.SplitResolution))
        {
            var parts = vmr.SplitResolution.ToLowerInvariant().Split('x');
            if (parts.Length is < 1 or > 2 || !parts.All(p => int.TryParse(p, out _)))
                throw new ArgumentException($"Train:Vmr:SplitResolution '{vmr.SplitResolution}' is not HxW or S; {valid}");
            int h = int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture);
            int w = parts.Length == 2 ? int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture) : h;
            m = schedule.IndexOf(new Policies.ScaleShape(h, w));
            if (m < 0) throw new ArgumentException($"Train:Vmr:SplitResolution {h}x{w} is not a scale of the policy; {valid}");
        }
        else
        {
            m = vmr.SplitScale < 0 ? DefaultSplit(schedule) : vmr.SplitScale;
        }
        if (m < 1 || m > schedule.Count - 1)
            throw new ArgumentException($"Train:Vmr split scale {m} leaves an empty {(m < 1 ? "prefix" : "suffix")}; {valid}");
        return m;
    }

    /// <summary>
    /// The default split: the first scale whose side reaches a quarter of the final side (the paper's m_256 at
    /// 1024 px), kept inside 1..T-1.
    /// </summary>
    public static int DefaultSplit(Policies.ScaleSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        var final = schedule.Final;
        for (int t = 1; t < schedule.Count; t++)
            if (schedule[t].Height * 4 >= final.Height && schedule[t].Width * 4 >= final.Width)
                return Math.Min(t, schedule.Count - 1);
        return schedule.Count - 1;
    }
}
