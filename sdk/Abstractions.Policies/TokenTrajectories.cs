using TorchSharp;
using static TorchSharp.torch;

namespace NextFlowRL.Policies;

/// <summary>
/// A batch of (partial) next-scale trajectories: for each row a prompt and the token grids of the first
/// <see cref="Length"/> scales. <c>Grids[t]</c> is an int64 tensor <c>[rows, h_t, w_t]</c> on the policy's device.
/// The object owns its tensors; dispose it when done.
/// </summary>
public sealed class TokenTrajectories : IDisposable
{
    private readonly Tensor[] _grids;

    /// <summary>Creates a batch. The tensors are taken over (not copied).</summary>
    /// <exception cref="ArgumentException">Row counts disagree or a grid is not 3-D int64.</exception>
    public TokenTrajectories(IReadOnlyList<string> prompts, IEnumerable<Tensor> grids)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(grids);
        Prompts = prompts.ToArray();
        _grids = grids.ToArray();
        for (int t = 0; t < _grids.Length; t++)
        {
            var g = _grids[t];
            if (g.dim() != 3 || g.dtype != ScalarType.Int64)
                throw new ArgumentException($"Grid {t} must be an int64 [rows, h, w] tensor, got {g.dtype} [{string.Join(",", g.shape)}].");
            if (g.shape[0] != Prompts.Count)
                throw new ArgumentException($"Grid {t} has {g.shape[0]} rows for {Prompts.Count} prompts.");
        }
    }

    /// <summary>The prompt of each row.</summary>
    public IReadOnlyList<string> Prompts { get; }

    /// <summary>Token grids per scale, <c>[rows, h_t, w_t]</c> int64.</summary>
    public IReadOnlyList<Tensor> Grids => _grids;

    /// <summary>Number of rows.</summary>
    public int Count => Prompts.Count;

    /// <summary>Number of scales present.</summary>
    public int Length => _grids.Length;

    /// <summary>The first <paramref name="scales"/> scales (tensors share storage with this batch).</summary>
    public TokenTrajectories Prefix(int scales)
    {
        if (scales < 0 || scales > Length)
            throw new ArgumentOutOfRangeException(nameof(scales), $"Prefix length {scales} outside 0..{Length}.");
        return new TokenTrajectories(Prompts, _grids.Take(scales).Select(g => g.alias()));
    }

    /// <summary>Each row repeated <paramref name="times"/> times in place (rows a,a,b,b for times = 2).</summary>
    public TokenTrajectories RepeatEach(int times)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(times, 1);
        var prompts = Prompts.SelectMany(p => Enumerable.Repeat(p, times)).ToArray();
        return new TokenTrajectories(prompts, _grids.Select(g => g.repeat_interleave(times, dim: 0)));
    }

    /// <summary>The given rows, in the given order.</summary>
    public TokenTrajectories Select(IReadOnlyList<int> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        foreach (var r in rows)
        {
            if (r < 0 || r >= Count) throw new ArgumentOutOfRangeException(nameof(rows), $"Row {r} outside 0..{Count - 1}.");
        }
        var device = _grids.Length > 0 ? _grids[0].device : CPU;
        using var index = tensor(rows.Select(r => (long)r).ToArray(), device: device);
        return new TokenTrajectories(rows.Select(r => Prompts[r]).ToArray(), _grids.Select(g => g.index_select(0, index)));
    }

    /// <summary>Rows of several batches stacked in order. All batches must have the same length and grid shapes.</summary>
    public static TokenTrajectories Concat(IReadOnlyList<TokenTrajectories> parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        if (parts.Count == 0) throw new ArgumentException("Nothing to concatenate.", nameof(parts));
        int length = parts[0].Length;
        if (parts.Any(p => p.Length != length))
            throw new ArgumentException("Batches of different lengths cannot be concatenated.", nameof(parts));
        var grids = Enumerable.Range(0, length).Select(t => cat(parts.Select(p => p._grids[t]).ToArray(), 0));
        return new TokenTrajectories(parts.SelectMany(p => p.Prompts).ToArray(), grids);
    }

    /// <summary>A copy on the CPU (for checkpoints and inspection).</summary>
    public TokenTrajectories ToCpu() => new(Prompts, _grids.Select(g => g.cpu().clone()));

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var g in _grids) g.Dispose();
    }
}
