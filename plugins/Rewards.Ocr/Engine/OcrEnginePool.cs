namespace NextFlowRL.Rewards.Ocr.Engine;

/// <summary>
/// A fixed set of <see cref="TesseractEngine"/>s, one per worker, created on first use and reused. A batch is scored
/// by that many workers in parallel, each with its own engine (Tesseract engines are not thread-safe).
/// </summary>
public sealed class OcrEnginePool : IDisposable
{
    private readonly TesseractSettings _settings;
    private readonly TesseractEngine?[] _engines;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private bool _disposed;
    private int _created;

    /// <summary>Creates a pool; engines are created by the first <see cref="RunAsync{T}"/>.</summary>
    /// <param name="settings">Engine settings.</param>
    /// <param name="workers">Number of engines and parallel workers (at least 1).</param>
    /// <param name="pinWorkers">
    /// Linux: bind worker <c>i</c> to processor <c>i</c> while it reads a batch (only when there are no more workers than
    /// processors). Tesseract's working set is large; a worker that stays on one core keeps its cache.
    /// </param>
    public OcrEnginePool(TesseractSettings settings, int workers, bool pinWorkers = true)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        _settings = settings;
        _engines = new TesseractEngine?[workers];
        PinWorkers = pinWorkers && workers > 1 && workers <= Environment.ProcessorCount;
    }

    /// <summary>Whether workers are bound to processors while they read (see the constructor).</summary>
    public bool PinWorkers { get; }

    /// <summary>Engines created so far (at most <see cref="Workers"/>: each is created once and reused).</summary>
    internal int EnginesCreated => Volatile.Read(ref _created);

    /// <summary>Number of workers (engines).</summary>
    public int Workers => _engines.Length;

    /// <summary>
    /// Runs <paramref name="work"/> for every index in [0, <paramref name="count"/>) on the workers, each call with the
    /// engine of the worker that took the index. Returns the results in index order. One batch at a time: concurrent
    /// callers wait for each other.
    /// </summary>
    /// <exception cref="OperationCanceledException">Cancelled; workers stop after the image they are reading.</exception>
    /// <exception cref="OcrEngineException">An engine could not be created.</exception>
    public async Task<T[]> RunAsync<T>(int count, Func<TesseractEngine, int, T> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var results = new T[count];
        if (count == 0) return results;
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            int workers = Math.Min(_engines.Length, count);
            int next = -1;
            // A worker that fails stops the others: the batch fails anyway.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var tasks = new Task[workers];
            for (int w = 0; w < workers; w++)
            {
                int worker = w;
                tasks[w] = Task.Factory.StartNew(() =>
                {
                    using var pin = PinWorkers ? TesseractLibrary.PinCurrentThread(worker) : null;
                    try
                    {
                        var engine = _engines[worker];
                        if (engine is null)
                        {
                            engine = _engines[worker] = new TesseractEngine(_settings);
                            Interlocked.Increment(ref _created);
                        }
                        int i;
                        while ((i = Interlocked.Increment(ref next)) < count)
                        {
                            stop.Token.ThrowIfCancellationRequested();
                            results[i] = work(engine, i);
                        }
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        stop.Cancel();
                        throw;
                    }
                }, stop.Token, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            }
            try
            {
                await Task.WhenAll(tasks).ConfigureAwait(false);
            }
            catch
            {
                var first = tasks.Select(t => t.Exception?.InnerException).FirstOrDefault(e => e is not null and not OperationCanceledException);
                if (first is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
                cancellationToken.ThrowIfCancellationRequested();
                throw;
            }
            return results;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Releases every engine.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _gate.Wait();
        try
        {
            _disposed = true;
            for (int i = 0; i < _engines.Length; i++)
            {
                _engines[i]?.Dispose();
                _engines[i] = null;
            }
        }
        finally
        {
            _gate.Release();
        }
        _gate.Dispose();
    }
}
