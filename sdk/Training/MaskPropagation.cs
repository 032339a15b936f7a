using NextFlowRL.Policies;
using NextFlowRL.Rewards;
using static TorchSharp.torch;

namespace NextFlowRL.Training;

/// <summary>
/// Mask Propagation (method.md section 5): reward regions -> a mask on the finest token grid -> coarser grids by
/// <c>M_{t-1} = AreaDownsample(M_t) &gt; 0</c> (an adaptive max-pool: a coarse token is active when its footprint
/// covers any active fine cell).
/// </summary>
public static class MaskPropagation
{
    /// <summary>
    /// The finest-grid mask <c>[h_T, w_T]</c> (float 0/1) of one image: a cell is 1 when its pixel footprint
    /// intersects a region. Returns null when no region is usable (the caller falls back to all ones).
    /// </summary>
    public static float[,]? FinestMask(IReadOnlyList<RewardRegion> regions, int imageWidth, int imageHeight, ScaleShape finest, bool dilate, bool includeUnmatched)
    {
        ArgumentNullException.ThrowIfNull(regions);
        var usable = regions.Where(r => (includeUnmatched || r.Target is not null) && r.Width > 0 && r.Height > 0).ToList();
        if (usable.Count == 0) return null;
        int h = finest.Height, w = finest.Width;
        var mask = new float[h, w];
        double cellW = (double)imageWidth / w, cellH = (double)imageHeight / h;
        bool any = false;
        foreach (var r in usable)
        {
            // Cells [x0, x1) whose footprint [j*cellW, (j+1)*cellW) intersects [r.X, r.X + r.Width).
            int x0 = Math.Max(0, (int)Math.Floor(r.X / cellW));
            int x1 = Math.Min(w, (int)Math.Ceiling((r.X + r.Width) / cellW));
            int y0 = Math.Max(0, (int)Math.Floor(r.Y / cellH));
            int y1 = Math.Min(h, (int)Math.Ceiling((r.Y + r.Height) / cellH));
            for (int i = y0; i < y1; i++)
                for (int j = x0; j < x1; j++)
                {
                    mask[i, j] = 1;
                    any = true;
                }
        }
        if (!any) return null;
        return dilate ? Dilate(mask) : mask;
    }

    /// <summary>One-cell dilation with a 3x3 neighbourhood.</summary>
    public static float[,] Dilate(float[,] mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        int h = mask.GetLength(0), w = mask.GetLength(1);
        var result = new float[h, w];
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++)
            {
                if (mask[i, j] == 0) continue;
                for (int di = -1; di <= 1; di++)
                    for (int dj = -1; dj <= 1; dj++)
                    {
                        int y = i + di, x = j + dj;
                        if (y >= 0 && y < h && x >= 0 && x < w) result[y, x] = 1;
                    }
            }
        return result;
    }

    /// <summary>The union (cell-wise max) of masks of the same shape; null when there are none.</summary>
    public static float[,]? Union(IEnumerable<float[,]?> masks)
    {
        ArgumentNullException.ThrowIfNull(masks);
        float[,]? u = null;
        foreach (var m in masks)
        {
            if (m is null) continue;
            if (u is null) { u = (float[,])m.Clone(); continue; }
            for (int i = 0; i < u.GetLength(0); i++)
                for (int j = 0; j < u.GetLength(1); j++) u[i, j] = Math.Max(u[i, j], m[i, j]);
        }
        return u;
    }

    /// <summary>How many rows of a batch needed a fallback mask.</summary>
    /// <param name="Group">Rows without a region of their own that took the union of their group's masks.</param>
    /// <param name="Ones">Rows that took the all-ones mask because no valid member of their group had a region.</param>
    /// <param name="Valid">Rows that take part (dropped rows do not).</param>
    public readonly record struct FallbackCounts(int Group, int Ones, int Valid);

    /// <summary>
    /// Completes per-row masks (method.md section 5): a valid row without a region (null) takes the union of its group's
    /// valid members' masks, and all ones only when no valid member of the group has a region. Invalid rows (a dropped
    /// reward) take no part in unions or counts and get an all-zero mask.
    /// </summary>
    public static (float[][,] Masks, FallbackCounts Counts) WithGroupFallback(IReadOnlyList<float[,]?> masks, IReadOnlyList<bool> valid,
        IReadOnlyList<IReadOnlyList<int>> groups, ScaleShape finest)
    {
        ArgumentNullException.ThrowIfNull(masks);
        ArgumentNullException.ThrowIfNull(valid);
        ArgumentNullException.ThrowIfNull(groups);
        var result = new float[masks.Count][,];
        int group = 0, ones = 0, count = 0;
        var seen = new bool[masks.Count];
        foreach (var members in groups)
        {
            var union = Union(members.Where(i => valid[i]).Select(i => masks[i]));
            foreach (var i in members)
            {
                seen[i] = true;
                if (!valid[i]) { result[i] = new float[finest.Height, finest.Width]; continue; }
                count++;
                if (masks[i] is { } own) { result[i] = own; continue; }
                if (union is not null) { result[i] = (float[,])union.Clone(); group++; }
                else { result[i] = Filled(finest, 1); ones++; }
            }
        }
        for (int i = 0; i < masks.Count; i++)
            if (!seen[i]) throw new ArgumentException($"row {i} belongs to no group", nameof(groups));
        return (result, new FallbackCounts(group, ones, count));
    }

    /// <summary>A mask of the given shape with every cell set to <paramref name="value"/>.</summary>
    public static float[,] Filled(ScaleShape shape, float value)
    {
        var m = new float[shape.Height, shape.Width];
        for (int i = 0; i < shape.Height; i++)
            for (int j = 0; j < shape.Width; j++) m[i, j] = value;
        return m;
    }

    /// <summary>
    /// Propagates finest-grid masks <c>[rows, h_T, w_T]</c> to every scale of <paramref name="schedule"/>, fine to
    /// coarse. Element t is <c>[rows, h_t, w_t]</c> float 0/1. With <paramref name="dilateEveryScale"/> every coarser
    /// mask is also dilated by one cell (3x3), after it has been derived from the undilated finer one.
    /// </summary>
    public static Tensor[] Propagate(Tensor finest, ScaleSchedule schedule, bool dilateEveryScale = false)
    {
        ArgumentNullException.ThrowIfNull(finest);
        ArgumentNullException.ThrowIfNull(schedule);
        var masks = new Tensor[schedule.Count];
        masks[^1] = finest.to_type(ScalarType.Float32);
        for (int t = schedule.Count - 2; t >= 0; t--)
        {
            var s = schedule[t];
            var pooled = nn.functional.adaptive_avg_pool2d(masks[t + 1].unsqueeze(1), [s.Height, s.Width]).squeeze(1);
            masks[t] = (pooled > 0).to_type(ScalarType.Float32);
        }
        if (dilateEveryScale)
        {
            for (int t = 0; t < schedule.Count - 1; t++)
            {
                var grown = nn.functional.max_pool2d(masks[t].unsqueeze(1), [3, 3], [1, 1], [1, 1]).squeeze(1);
                masks[t].Dispose();
                masks[t] = grown;
            }
        }
        return masks;
    }
}
