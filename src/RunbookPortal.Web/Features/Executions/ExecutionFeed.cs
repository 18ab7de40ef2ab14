using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using RunbookPortal.Web.Data;

namespace RunbookPortal.Web.Features.Executions;

/// <summary>
/// This node's live view of the executions someone watches (an execution page, a hub client): every event after a
/// seq, in order, exactly once, then every new one as it is committed — on this node or another.
/// <list type="bullet">
/// <item>Per watched execution the feed keeps its latest <see cref="Kept"/> events in memory, read once from the
/// database (or taken as this node publishes them), and every watcher reads them at its own pace: a slow watcher
/// slows neither the run nor the others.</item>
/// <item>Older events (a watcher that starts from an early seq) are read from the database in pages.</item>
/// <item>What wakes the feed: <see cref="Offer"/> (an event this node committed, or another node's state change)
/// and <see cref="Wake"/> (another node says events up to a seq exist; see <see cref="PostgresEventBridge"/>).</item>
/// </list>
/// </summary>
public sealed class ExecutionFeed(IServiceScopeFactory scopes, ILogger<ExecutionFeed> log)
{
    /// <summary>Events kept in memory per watched execution.</summary>
    public const int Kept = 20_000;

    /// <summary>Events read from the database, or handed to a watcher, at a time.</summary>
    public const int Page = 1000;

    private readonly ConcurrentDictionary<Guid, Stream> _streams = new();
    private readonly Lock _gate = new();
    private readonly ILogger _log = log;

    /// <summary>
    /// Hands every event of <paramref name="executionId"/> after <paramref name="afterSeq"/> to
    /// <paramref name="deliver"/>, in order and in batches, until disposed or <paramref name="deliver"/> answers false.
    /// One delivery runs at a time.
    /// </summary>
    /// <param name="fellBehind">
    /// Given, a watcher that was live and fell more than <see cref="Kept"/> events behind is stopped, and this is told
    /// the last seq it was given (it should catch up from the events route); not given, it catches up from the database.
    /// </param>
    public IAsyncDisposable Watch(
        Guid executionId,
        long afterSeq,
        Func<IReadOnlyList<ExecutionEventRecord>, CancellationToken, ValueTask<bool>> deliver,
        Func<long, ValueTask>? fellBehind = null)
    {
        Stream stream;
        var watcher = new Watcher();
        lock (_gate)
        {
            stream = _streams.GetOrAdd(executionId, id => new Stream(this, id));
            stream.Watchers.Add(watcher);
        }
        stream.RequestRead();
        watcher.Pump = Task.Run(() => PumpAsync(stream, watcher, afterSeq, deliver, fellBehind));
        return new Unwatch(async () =>
        {
            await watcher.Stop.CancelAsync().ConfigureAwait(false);
            try
            {
                await watcher.Pump.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
            lock (_gate)
            {
                stream.Watchers.Remove(watcher);
                if (stream.Watchers.Count == 0)
                    _streams.TryRemove(new KeyValuePair<Guid, Stream>(executionId, stream));
            }
            watcher.Stop.Dispose();
        });
    }

    /// <summary>A committed event: kept when it is the next one; after a gap, the feed reads what it missed.</summary>
    public void Offer(ExecutionEventRecord record)
    {
        if (_streams.TryGetValue(record.ExecutionId, out var stream))
            stream.Offer(record);
    }

    /// <summary>Events of <paramref name="executionId"/> up to <paramref name="seq"/> exist (another node wrote them).</summary>
    public void Wake(Guid executionId, long seq)
    {
        if (_streams.TryGetValue(executionId, out var stream) && stream.Behind(seq))
            stream.RequestRead();
    }

    /// <summary>Reads what every watched execution may have missed (a lost connection to the other nodes, a sweep).</summary>
    public void WakeAll()
    {
        foreach (var stream in _streams.Values)
            stream.RequestRead();
    }

    /// <summary>How many executions this node watches now.</summary>
    public int Watched => _streams.Count;

    private async Task PumpAsync(
        Stream stream, Watcher watcher, long position,
        Func<IReadOnlyList<ExecutionEventRecord>, CancellationToken, ValueTask<bool>> deliver,
        Func<long, ValueTask>? fellBehind)
    {
        var stop = watcher.Stop.Token;
        var live = false;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var batch = stream.After(position, out var inMemory, out var evicted);
                if (!inMemory)
                {
                    if (live && evicted && fellBehind is not null)
                    {
                        await fellBehind(position).ConfigureAwait(false);
                        return;
                    }
                    batch = await ReadAsync(stream.ExecutionId, position, stop).ConfigureAwait(false);
                    if (batch.Count == 0)
                        live = true; // the database has nothing newer either: what comes next arrives live
                }
                else if (batch.Count == 0)
                {
                    live = true;
                }
                if (batch.Count == 0)
                {
                    await watcher.Signal.WaitAsync(stop).ConfigureAwait(false);
                    continue;
                }
                if (!await deliver(batch, stop).ConfigureAwait(false))
                    return;
                position = batch[^1].Seq;
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Unwatched.
        }
        catch (Exception ex)
        {
            _log.LogWarning(ex, "A watcher of execution {ExecutionId} stopped after seq {Seq}", stream.ExecutionId, position);
        }
    }

    private async Task<List<ExecutionEventRecord>> ReadAsync(Guid executionId, long after, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        return await db.ExecutionEvents.AsNoTracking()
            .Where(e => e.ExecutionId == executionId && e.Seq > after)
            .OrderBy(e => e.Seq).Take(Page)
            .ToListAsync(ct).ConfigureAwait(false);
    }

    private async Task<long> LastSeqAsync(Guid executionId)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        return await db.ExecutionEvents.Where(e => e.ExecutionId == executionId).MaxAsync(e => (long?)e.Seq).ConfigureAwait(false) ?? 0;
    }

    /// <summary>One watched execution: its latest events, in seq order without gaps, and who watches them.</summary>
    private sealed class Stream(ExecutionFeed feed, Guid executionId)
    {
        private readonly Lock _lock = new();
        private readonly List<ExecutionEventRecord> _events = [];
        private long? _last; // the last seq kept; null until the first read
        private long _floor; // the newest event when the memory started: it never held this one or any before it
        private bool _reading;
        private bool _readAgain;

        public Guid ExecutionId => executionId;

        /// <summary>Guarded by the feed's gate.</summary>
        public List<Watcher> Watchers { get; } = [];

        public bool Behind(long seq)
        {
            lock (_lock)
                return _last is not { } last || seq > last;
        }

        public void Offer(ExecutionEventRecord record)
        {
            lock (_lock)
            {
                if (_last is { } last && record.Seq <= last)
                    return;
                if (_last is { } previous && record.Seq == previous + 1)
                {
                    Append(record);
                }
                else
                {
                    RequestReadLocked();
                    return;
                }
            }
            SignalWatchers();
        }

        /// <summary>
        /// Up to <see cref="Page"/> kept events after <paramref name="seq"/>; <paramref name="inMemory"/> false when
        /// the event after it is not kept: <paramref name="evicted"/> when it was and made room for newer ones (a
        /// watcher that was live fell behind), otherwise it never was (it is older than the memory, or the memory has
        /// not started yet) and is read from the database.
        /// </summary>
        public List<ExecutionEventRecord> After(long seq, out bool inMemory, out bool evicted)
        {
            lock (_lock)
            {
                evicted = false;
                if (_last is not { } last)
                {
                    inMemory = false;
                    return [];
                }
                var first = last - _events.Count + 1; // the seq of _events[0]
                if (seq + 1 < first)
                {
                    inMemory = false;
                    evicted = seq + 1 > _floor;
                    return [];
                }
                inMemory = true;
                var from = (int)(seq + 1 - first);
                if (from >= _events.Count)
                    return [];
                return _events.GetRange(from, Math.Min(Page, _events.Count - from));
            }
        }

        public void RequestRead()
        {
            lock (_lock)
                RequestReadLocked();
        }

        private void RequestReadLocked()
        {
            if (_reading)
            {
                _readAgain = true;
                return;
            }
            _reading = true;
            _ = Task.Run(ReadLoopAsync);
        }

        /// <summary>Reads what is newer than the last kept event until there is nothing more; one read at a time.</summary>
        private async Task ReadLoopAsync()
        {
            while (true)
            {
                try
                {
                    long after;
                    lock (_lock)
                    {
                        _readAgain = false;
                        after = _last ?? -1;
                    }
                    if (after < 0)
                    {
                        var last = await feed.LastSeqAsync(executionId).ConfigureAwait(false);
                        lock (_lock)
                        {
                            if (_last is null)
                            {
                                // The memory starts at the newest event; older ones are read from the database on demand.
                                _last = last;
                                _floor = last;
                            }
                        }
                        SignalWatchers();
                        continue;
                    }
                    var fresh = await feed.ReadAsync(executionId, after, CancellationToken.None).ConfigureAwait(false);
                    var added = false;
                    lock (_lock)
                    {
                        foreach (var record in fresh)
                        {
                            if (record.Seq == _last + 1)
                            {
                                Append(record);
                                added = true;
                            }
                        }
                    }
                    if (added)
                        SignalWatchers();
                    lock (_lock)
                    {
                        if (fresh.Count < Page && !_readAgain)
                        {
                            _reading = false; // caught up; the next offer or wake reads again
                            return;
                        }
                    }
                }
                catch (Exception ex)
                {
                    feed._log.LogWarning(ex, "Could not read the events of execution {ExecutionId}; the next event or sweep reads them", executionId);
                    lock (_lock)
                        _reading = false;
                    return;
                }
            }
        }

        private void Append(ExecutionEventRecord record)
        {
            _events.Add(record);
            _last = record.Seq;
            if (_events.Count > Kept + Page)
                _events.RemoveRange(0, _events.Count - Kept);
        }

        private void SignalWatchers()
        {
            Watcher[] watchers;
            lock (feed._gate)
                watchers = [.. Watchers];
            foreach (var watcher in watchers)
                watcher.Wake();
        }
    }

    private sealed class Watcher
    {
        public SemaphoreSlim Signal { get; } = new(0, 1);
        public CancellationTokenSource Stop { get; } = new();
        public Task Pump { get; set; } = Task.CompletedTask;

        public void Wake()
        {
            lock (Signal)
            {
                if (Signal.CurrentCount == 0)
                    Signal.Release();
            }
        }
    }

    private sealed class Unwatch(Func<Task> dispose) : IAsyncDisposable
    {
        private Func<Task>? _dispose = dispose;
        public async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _dispose, null) is { } d)
                await d().ConfigureAwait(false);
        }
    }
}
