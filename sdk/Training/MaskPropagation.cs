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

    /// <summary>
    /// Propagates finest-grid masks <c>[rows, h_T, w_T]</c> to every scale of <paramref name="schedule"/>, fine to
    /// coarse. Element t is <c>[rows, h_t, w_t]</c> float 0/1.
    /// </summary>
    public static Tensor[] Propagate(Tensor finest, ScaleSchedule schedule)
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
        return masks;
    }
}
