using System.Collections.Concurrent;
using RunbookPortal.Web.Data;

namespace RunbookPortal.Web.Features.Executions;

/// <summary>
/// Fan-out of committed execution events to this node's live pages and hub clients (and a wake-up for the worker when
/// work is queued). Events committed on this node are <see cref="Publish">published</see>; with PostgreSQL the
/// <see cref="PostgresEventBridge"/> passes them to the other nodes, and <see cref="Deliver">delivers</see> theirs
/// here. The database stays the source of truth: <see cref="ExecutionFeed"/> reads whatever a watcher missed.
/// </summary>
public sealed class ExecutionNotifier(ExecutionFeed feed)
{
    private readonly ConcurrentDictionary<Guid, ConcurrentDictionary<Guid, Func<ExecutionEventRecord, Task>>> _byExecution = new();
    private readonly ConcurrentDictionary<Guid, Func<ExecutionEventRecord, Task>> _anyChange = new();
    private readonly SemaphoreSlim _workQueued = new(0);
    private readonly Lock _subscriptions = new();

    /// <summary>Calls <paramref name="onEvent"/> for each new event of one execution until disposed.</summary>
    public IDisposable Subscribe(Guid executionId, Func<ExecutionEventRecord, Task> onEvent)
    {
        var key = Guid.NewGuid();
        lock (_subscriptions)
            _byExecution.GetOrAdd(executionId, _ => new()).TryAdd(key, onEvent);
        return new Unsubscriber(() =>
        {
            // The last page of an execution to leave takes its entry away, so the map does not grow with every run viewed.
            lock (_subscriptions)
            {
                if (_byExecution.TryGetValue(executionId, out var handlers) && handlers.TryRemove(key, out _) && handlers.IsEmpty)
                    _byExecution.TryRemove(executionId, out _);
            }
        });
    }

    /// <summary>Calls <paramref name="onChange"/> with every new event of any execution.</summary>
    public IDisposable SubscribeAll(Func<ExecutionEventRecord, Task> onChange)
    {
        var key = Guid.NewGuid();
        _anyChange.TryAdd(key, onChange);
        return new Unsubscriber(() => _anyChange.TryRemove(key, out _));
    }

    /// <summary>An event this node committed: delivered here, and passed to the other nodes.</summary>
    public void Publish(ExecutionEventRecord record)
    {
        Deliver(record);
        Committed?.Invoke(record);
    }

    /// <summary>Raised for each event this node committed (not for those of other nodes).</summary>
    internal event Action<ExecutionEventRecord>? Committed;

    /// <summary>A committed event, of this node or another, to this node's watchers.</summary>
    internal void Deliver(ExecutionEventRecord record)
    {
        feed.Offer(record);
        if (_byExecution.TryGetValue(record.ExecutionId, out var handlers))
        {
            foreach (var handler in handlers.Values)
                _ = SafeAsync(() => handler(record));
        }
        foreach (var handler in _anyChange.Values)
            _ = SafeAsync(() => handler(record));
    }

    /// <summary>Wakes the worker: something was queued (or a slot may have freed).</summary>
    public void WorkQueued()
    {
        if (_workQueued.CurrentCount == 0)
            _workQueued.Release();
    }

    internal Task<bool> WaitForWorkAsync(TimeSpan timeout, CancellationToken ct) => _workQueued.WaitAsync(timeout, ct);

    private static async Task SafeAsync(Func<Task> work)
    {
        try
        {
            await work();
        }
        catch
        {
            // A broken page must not break the engine; the page reloads from the database.
        }
    }

    private sealed class Unsubscriber(Action dispose) : IDisposable
    {
        private Action? _dispose = dispose;
        public void Dispose() => Interlocked.Exchange(ref _dispose, null)?.Invoke();
    }
}
