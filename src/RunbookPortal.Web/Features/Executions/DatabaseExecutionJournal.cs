using Microsoft.EntityFrameworkCore;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Data;

namespace RunbookPortal.Web.Features.Executions;

/// <summary>
/// The engine's journal for one running execution: each event is saved with its seq and state change in one
/// transaction, then published to live pages. Calls are serialised (stdout and stderr arrive concurrently).
/// </summary>
public sealed class DatabaseExecutionJournal(PortalDbContext db, Guid executionId, ExecutionNotifier notifier, TimeProvider time) : IExecutionJournal
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private Execution? _execution;

    public async Task RecordAsync(ExecutionEvent executionEvent, CancellationToken cancellationToken)
    {
        // Recording must not be skipped because the run is being cancelled: the history has to be complete.
        await _gate.WaitAsync(CancellationToken.None);
        try
        {
            for (var attempt = 1; ; attempt++)
            {
                _execution ??= await db.Executions.Include(e => e.Steps).FirstAsync(e => e.Id == executionId, CancellationToken.None);
                var record = ExecutionLedger.Append(db, _execution, executionEvent, time.GetUtcNow().UtcDateTime);
                try
                {
                    await db.SaveChangesAsync(CancellationToken.None);
                    notifier.Publish(record);
                    return;
                }
                catch (DbUpdateException) when (attempt < 10)
                {
                    // Someone else (an API call) appended an event meanwhile (the seq's unique index or the
                    // LastSeq token refused ours): reload and take the next seq.
                    db.ChangeTracker.Clear();
                    _execution = null;
                }
            }
        }
        finally
        {
            _gate.Release();
        }
    }
}
