using System.Diagnostics;

namespace NextFlowRL.Training.Rollouts;

/// <summary>What a scoring job gave and how long it ran.</summary>
/// <param name="Value">The job's result.</param>
/// <param name="Seconds">Seconds from the job's start (after the job before it ended) to its end.</param>
public sealed record Scored<T>(T Value, double Seconds);

/// <summary>
/// Reward scoring that overlaps the caller's tensor work (sampling the next batch, the reference's forward pass): jobs
/// run on the thread pool one at a time, in the order they were added, so a reward is never called twice at once and
/// results come back in order. With <see cref="Overlap"/> false every job runs to its end before <see cref="Add{T}"/>
/// returns (scoring after sampling, as before pipelining). The results are the same either way (a reward scores an
/// image the same whatever runs beside it); only the wall time differs.
/// </summary>
/// <remarks>
/// Why not a bounded <c>Channel</c> or TPL Dataflow block: the consumer is the reward and the producer is synchronous
/// tensor code that must stay on its own thread (TorchSharp's dispose scopes are per thread); a chain of tasks is the
/// whole of the ordering this needs, and each job's <see cref="Task{TResult}"/> is the handle its caller waits on.
/// A failed job fails the jobs after it with the same exception, so a caller sees the first failure wherever it waits.
/// </remarks>
public sealed class ScoringQueue
{
    private Task _tail = Task.CompletedTask;

    /// <summary>Creates a queue; <paramref name="overlap"/> false runs every job at once, to its end.</summary>
    public ScoringQueue(bool overlap) => Overlap = overlap;

    /// <summary>Whether jobs run beside the caller's work (true) or before <see cref="Add{T}"/> returns (false).</summary>
    public bool Overlap { get; }

    /// <summary>
    /// Adds a job; it starts when the jobs added before it have ended. Without <see cref="Overlap"/> this waits for it
    /// (its failure is not thrown here but by the returned task, as with overlap).
    /// </summary>
    public Task<Scored<T>> Add<T>(Func<Task<T>> job)
    {
        ArgumentNullException.ThrowIfNull(job);
        var previous = _tail;
        var task = Task.Run(async () =>
        {
            await previous.ConfigureAwait(false);
            long start = Stopwatch.GetTimestamp();
            var value = await job().ConfigureAwait(false);
            return new Scored<T>(value, Stopwatch.GetElapsedTime(start).TotalSeconds);
        });
        _tail = task;
        if (!Overlap)
        {
            long start = Stopwatch.GetTimestamp();
            WaitQuietly(task);
            BlockedSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        return task;
    }

    /// <summary>Seconds <see cref="Add{T}"/> blocked the caller (without <see cref="Overlap"/>: all of the scoring).</summary>
    public double BlockedSeconds { get; private set; }

    /// <summary>Blocks until <paramref name="task"/> has ended, whether it succeeded or not (its result or failure stays in it).</summary>
    public static void WaitQuietly(Task task)
    {
        ArgumentNullException.ThrowIfNull(task);
        ((IAsyncResult)task).AsyncWaitHandle.WaitOne();
    }
}
