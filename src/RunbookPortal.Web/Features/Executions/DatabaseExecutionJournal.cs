using Microsoft.AspNetCore.DataProtection;
using System.Runtime.ExceptionServices;
using Microsoft.EntityFrameworkCore;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Data;

namespace RunbookPortal.Web.Features.Executions;

/// <summary>
/// The engine's journal for one running execution: events are saved in order, each with its seq and the state
/// change it implies, then published to live pages.
/// <list type="bullet">
/// <item>A state change (step started, succeeded, failed…) returns once it is durable, together with every event
/// recorded before it.</item>
/// <item>Output lines are written behind: the call returns at once and a writer saves the lines waiting, many in
/// one transaction, so a step that prints fast is not slowed to one commit per line. Back-pressure holds a step
/// that outruns the database by more than <see cref="MaxPending"/> lines.</item>
/// <item>An event recorded "with the next" (<see cref="IExecutionJournal.RecordWithNextAsync"/>: a step's end) waits in the
/// queue and is saved in the next one's transaction: a step's end and the next step's start are one commit.</item>
/// <item>When a save fails, every later call throws, so the engine stops the step and reports it.</item>
/// <item>With a <c>leaseOwner</c> (the worker's claim: node and claim id), nothing is saved once the execution's
/// lease is no longer that claim's — the run was taken over (and maybe resumed by another claim), and the record of
/// the claim that holds it is the one that counts: the save throws <see cref="LeaseLostException"/> instead — and so
/// it does once <c>fenced</c> is cancelled (the worker could not renew the lease in time).</item>
/// </list>
/// <item>With an <c>outputProtector</c>, a step's outputs as produced (<see cref="StepSucceeded.RawOutputs"/>, secrets
/// unmasked) are stored encrypted beside the masked ones, for a resumed run's later steps.</item>
/// Dispose (await) it before its database context: it waits for the writer.
/// </summary>
public sealed class DatabaseExecutionJournal(
    PortalDbContext db, Guid executionId, ExecutionNotifier notifier, TimeProvider time, string? leaseOwner = null,
    IDataProtector? outputProtector = null, CancellationToken fenced = default)
    : IExecutionJournal, IAsyncDisposable
{
    /// <summary>The data-protection purpose of stored step outputs.</summary>
    internal const string OutputsPurpose = "RunbookPortal.StepOutputs";

    /// <summary>The most events saved in one transaction.</summary>
    private const int MaxBatch = 500;

    /// <summary>Output lines waiting beyond which the step waits for the writer.</summary>
    private const int MaxPending = 5000;

    private readonly Lock _lock = new();
    private readonly Queue<Pending> _queue = new();
    private Task _writer = Task.CompletedTask;
    private bool _writing;
    private ExceptionDispatchInfo? _failure;
    private Execution? _execution;

    public Task RecordAsync(ExecutionEvent executionEvent, CancellationToken cancellationToken) =>
        EnqueueAsync(executionEvent, executionEvent is StepOutput ? Durability.Behind : Durability.Now);

    public Task RecordWithNextAsync(ExecutionEvent executionEvent, CancellationToken cancellationToken) =>
        EnqueueAsync(executionEvent, Durability.WithNext);

    private enum Durability
    {
        /// <summary>The caller waits until it is saved.</summary>
        Now,
        /// <summary>Saved by a writer of its own, as soon as it can (output).</summary>
        Behind,
        /// <summary>Saved with the next event (or when the journal is disposed).</summary>
        WithNext,
    }

    private async Task EnqueueAsync(ExecutionEvent executionEvent, Durability durability)
    {
        // Recording must not be skipped because the run is being cancelled: the history has to be complete.
        var durable = durability == Durability.Now ? new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) : null;
        Task writer;
        int waiting;
        Task<Task>? start = null;
        lock (_lock)
        {
            _failure?.Throw();
            _queue.Enqueue(new Pending(executionEvent, time.GetUtcNow().UtcDateTime, durable));
            waiting = _queue.Count;
            if (durability == Durability.WithNext)
                return;
            if (!_writing)
            {
                _writing = true;
                start = new Task<Task>(WriteAllAsync);
                _writer = start.Unwrap();
            }
            writer = _writer;
        }
        // A state change with nothing in flight is written by its caller, which waits for it anyway; output gets
        // a writer of its own, so the step's output keeps being read meanwhile.
        if (start is not null && durable is not null)
            start.RunSynchronously();
        else
            start?.Start(TaskScheduler.Default);
        if (durable is not null)
            await durable.Task.ConfigureAwait(false);
        else if (waiting >= MaxPending)
            await writer.ConfigureAwait(false);
    }

    /// <summary>Saves what is waiting, a batch per transaction, until nothing is.</summary>
    private async Task WriteAllAsync()
    {
        while (true)
        {
            List<Pending> batch;
            lock (_lock)
            {
                if (_queue.Count == 0)
                {
                    _writing = false;
                    return;
                }
                batch = new List<Pending>(Math.Min(_queue.Count, MaxBatch));
                while (batch.Count < MaxBatch && _queue.TryDequeue(out var next))
                    batch.Add(next);
            }
            try
            {
                await SaveAsync(batch).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                List<Pending> abandoned;
                lock (_lock)
                {
                    _failure = ExceptionDispatchInfo.Capture(ex);
                    abandoned = [.. batch, .. _queue];
                    _queue.Clear();
                    _writing = false;
                }
                foreach (var pending in abandoned)
                    pending.Durable?.TrySetException(ex);
                return;
            }
            foreach (var pending in batch)
                pending.Durable?.TrySetResult();
        }
    }

    private async Task SaveAsync(List<Pending> batch)
    {
        for (var attempt = 1; ; attempt++)
        {
            _execution ??= await db.Executions.Include(e => e.Steps).FirstAsync(e => e.Id == executionId, CancellationToken.None).ConfigureAwait(false);
            // A takeover appends an event, so a run that lost its lease meets the seq conflict below and reloads. A node
            // fenced off (it could not renew the lease in time) records nothing more, whatever the row says.
            if (leaseOwner is not null && (_execution.LeaseOwner != leaseOwner || fenced.IsCancellationRequested))
                throw new LeaseLostException(executionId, leaseOwner);
            var records = batch.Select(p => ExecutionLedger.Append(db, _execution, p.Event, p.At)).ToList();
            foreach (var pending in batch)
            {
                if (pending.Event is StepSucceeded { RawOutputs.Count: > 0 } succeeded && outputProtector is not null
                    && _execution.Steps.FirstOrDefault(s => s.StepId == succeeded.StepId) is { } step)
                    step.ProtectedOutputs = outputProtector.Protect(System.Text.Json.JsonSerializer.Serialize(succeeded.RawOutputs));
            }
            try
            {
                await db.SaveChangesAsync(CancellationToken.None).ConfigureAwait(false);
                foreach (var record in records)
                {
                    db.Entry(record).State = EntityState.Detached; // saved for good: the next save need not look at it again
                    notifier.Publish(record);
                }
                return;
            }
            catch (DbUpdateException) when (attempt < 10)
            {
                // Someone else (an API call) appended an event meanwhile (the seq's unique index or the
                // LastSeq token refused ours): reload and take the next seqs.
                db.ChangeTracker.Clear();
                _execution = null;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        Task writer;
        Task<Task>? start = null;
        lock (_lock)
        {
            if (!_writing && _queue.Count > 0 && _failure is null)
            {
                // An event waited for the next one, and none came (the run stopped in the host): saved now.
                _writing = true;
                start = new Task<Task>(WriteAllAsync);
                _writer = start.Unwrap();
            }
            writer = _writer;
        }
        start?.Start(TaskScheduler.Default);
        try
        {
            await writer.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Reported to the callers already.
        }
    }

    private sealed record Pending(ExecutionEvent Event, DateTime At, TaskCompletionSource? Durable);
}

/// <summary>The execution's lease is no longer this node's: another node took the run over.</summary>
public sealed class LeaseLostException(Guid executionId, string lease)
    : InvalidOperationException($"Execution {executionId} is no longer held by the claim {lease}: it was taken over.");
