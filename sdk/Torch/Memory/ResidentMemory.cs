using System.Diagnostics;
using System.Globalization;

namespace NextFlowRL.Torch.Memory;

/// <summary>
/// Resident memory of this process, with a resettable peak: Linux reads <c>VmRSS</c>/<c>VmHWM</c> from
/// <c>/proc/self/status</c> and resets the peak with <c>clear_refs</c> (the kernel's own high-water mark, so the peak
/// between two calls is exact, not sampled); elsewhere the runtime's working-set figures (peak since start).
/// </summary>
public static class ResidentMemory
{
    /// <summary>Resets the peak and returns the current resident bytes.</summary>
    /// <param name="collect">Run a full garbage collection first (benchmarks; the trainer's per-phase peaks skip it).</param>
    public static long ResetPeak(bool collect = true)
    {
        if (collect) GC.Collect();
        if (OperatingSystem.IsLinux())
        {
            try { File.WriteAllText("/proc/self/clear_refs", "5"); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            return Status("VmRSS") ?? Environment.WorkingSet;
        }
        return Environment.WorkingSet;
    }

    /// <summary>Peak resident bytes since the last <see cref="ResetPeak"/>.</summary>
    public static long Peak() => OperatingSystem.IsLinux() ? Status("VmHWM") ?? Process.GetCurrentProcess().PeakWorkingSet64 : Process.GetCurrentProcess().PeakWorkingSet64;

    /// <summary>Resident bytes now.</summary>
    public static long Current() => OperatingSystem.IsLinux() ? Status("VmRSS") ?? Environment.WorkingSet : Environment.WorkingSet;

    /// <summary>
    /// Bytes of a <c>/proc/self/status</c> line such as <c>"VmRSS:\t  204800 kB"</c>. The kernel pads the number to 8
    /// characters after the tab, so from 10^7 kB (9.5 GiB) on there is no space before it; null when unreadable.
    /// </summary>
    public static long? ParseStatusKilobytes(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        int colon = line.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0) return null;
        var fields = line[(colon + 1)..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        return fields.Length > 0 && long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var kb) ? kb * 1024 : null;
    }

    private static long? Status(string key)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (!line.StartsWith(key + ":", StringComparison.Ordinal)) continue;
                return ParseStatusKilobytes(line);
            }
        }
        catch (IOException)
        {
        }
        return null;
    }
}

/// <summary>
/// Samples the resident size on a background thread (every <c>interval</c>) and keeps the largest value since the last
/// <see cref="TakePeak"/>: the peak of a phase without touching the kernel's high-water mark, which external tools
/// (<c>/usr/bin/time -v</c>, cgroup limits) read for the whole process.
/// </summary>
public sealed class RssPeakSampler : IDisposable
{
    private readonly Thread _thread;
    private readonly TimeSpan _interval;
    private long _peak;
    private volatile bool _stop;

    /// <summary>Starts sampling.</summary>
    /// <param name="interval">Time between samples (default 10 ms: a phase's allocation peak lasts longer than that).</param>
    public RssPeakSampler(TimeSpan? interval = null)
    {
        _interval = interval ?? TimeSpan.FromMilliseconds(10);
        _peak = ResidentMemory.Current();
        _thread = new Thread(Loop) { IsBackground = true, Name = "nextflow-rss-sampler", Priority = ThreadPriority.AboveNormal };
        _thread.Start();
    }

    /// <summary>The largest resident size seen since the last call (or the start), in bytes; the next period starts now.</summary>
    public long TakePeak()
    {
        long now = ResidentMemory.Current();
        long peak = Interlocked.Exchange(ref _peak, now);
        return Math.Max(peak, now);
    }

    private void Loop()
    {
        while (!_stop)
        {
            long rss = ResidentMemory.Current();
            long seen;
            while (rss > (seen = Interlocked.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, rss, seen) != seen)
            {
            }
            Thread.Sleep(_interval);
        }
    }

    /// <summary>Stops sampling.</summary>
    public void Dispose()
    {
        _stop = true;
        _thread.Join();
    }
}
