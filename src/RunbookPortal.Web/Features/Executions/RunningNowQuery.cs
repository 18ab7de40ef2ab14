using Microsoft.EntityFrameworkCore;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Data;

namespace RunbookPortal.Web.Features.Executions;

/// <summary>
/// A run that has not ended: queued, running, rolling back, waiting for an approval or for a person at a manual step.
/// <see cref="Since"/> is when the state shown began to count: the request for a run awaiting approval, the queueing for
/// a queued one, else its start. <see cref="CurrentStepId"/> is the step it is at (the step being rolled back while it
/// rolls back); <see cref="ApprovalId"/> the approval it waits for.
/// </summary>
public sealed record RunningExecution(
    Guid Id, string Runbook, int Version, ExecutionStatus Status, bool DryRun, string RequestedBy, DateTime RequestedAt, DateTime Since,
    string? CurrentStepId, string? CurrentStepName, Guid? ApprovalId);

/// <summary>A run that failed (or was interrupted: its node died) recently, with the step it failed at and why.</summary>
public sealed record FailedExecution(
    Guid Id, string Runbook, int Version, ExecutionStatus Status, bool DryRun, string RequestedBy, DateTime FinishedAt,
    string? FailedStepId, string? FailedStepName, string? Reason);

/// <summary>What is running now, and what failed since <see cref="FailuresSince"/>; each list newest first, cut at its limit (the totals are not).</summary>
public sealed record RunningNowView(
    DateTime At, IReadOnlyList<RunningExecution> Active, int ActiveTotal, DateTime FailuresSince, IReadOnlyList<FailedExecution> RecentFailures, int RecentFailuresTotal);

/// <summary>
/// The "Running now" board of the dashboard, its page and <c>GET /api/executions/running</c>: every execution that has
/// not ended (<see cref="ExecutionTimeline.IsEnded"/>, the one definition of ended), and the failures of the last 24 hours.
/// Two queries for the rows and two counts; the step names come from the execution's step rows.
/// </summary>
public sealed class RunningNowQuery(PortalDbContext db, TimeProvider time)
{
    public static readonly TimeSpan FailureWindow = TimeSpan.FromHours(24);
    public const int MaxActive = 100;
    public const int MaxFailures = 50;

    /// <summary>Statuses of a run that has not ended.</summary>
    public static readonly IReadOnlyList<ExecutionStatus> ActiveStatuses = Enum.GetValues<ExecutionStatus>().Where(s => !ExecutionTimeline.IsEnded(s)).ToArray();

    /// <summary>Statuses listed among the failures.</summary>
    public static readonly IReadOnlyList<ExecutionStatus> FailureStatuses = [ExecutionStatus.Failed, ExecutionStatus.Interrupted];

    public async Task<RunningNowView> GetAsync(CancellationToken ct = default)
    {
        var now = time.GetUtcNow().UtcDateTime;
        var since = now - FailureWindow;
        // EF translates Contains over a local list to IN (...) on both providers.
        var activeStatuses = ActiveStatuses.ToList();
        var failureStatuses = FailureStatuses.ToList();

        var active = db.Executions.AsNoTracking().Where(e => activeStatuses.Contains(e.Status));
        var activeTotal = await active.CountAsync(ct);
        var activeRows = await active.OrderByDescending(e => e.RequestedAt).Take(MaxActive)
            .Select(e => new
            {
                e.Id, e.RunbookName, e.Version, e.Status, e.DryRun, e.RequestedBy, e.RequestedAt, e.QueuedAt, e.StartedAt, e.CurrentStepId, e.ApprovalRequestId,
                CurrentStepName = e.Steps.Where(s => s.StepId == e.CurrentStepId).Select(s => s.Name).FirstOrDefault(),
            })
            .ToListAsync(ct);

        var failures = db.Executions.AsNoTracking().Where(e => failureStatuses.Contains(e.Status) && e.FinishedAt != null && e.FinishedAt >= since);
        var failuresTotal = await failures.CountAsync(ct);
        var failureRows = await failures.OrderByDescending(e => e.FinishedAt).Take(MaxFailures)
            .Select(e => new
            {
                e.Id, e.RunbookName, e.Version, e.Status, e.DryRun, e.RequestedBy, e.FinishedAt, e.FailedStepId, e.Reason,
                Step = e.Steps.Where(s => s.StepId == e.FailedStepId).Select(s => new { s.Name, s.Error }).FirstOrDefault(),
            })
            .ToListAsync(ct);

        return new RunningNowView(
            now,
            activeRows.Select(e => new RunningExecution(e.Id, e.RunbookName, e.Version, e.Status, e.DryRun, e.RequestedBy, e.RequestedAt,
                e.Status switch
                {
                    ExecutionStatus.AwaitingApproval => e.RequestedAt,
                    ExecutionStatus.Queued => e.QueuedAt ?? e.RequestedAt,
                    _ => e.StartedAt ?? e.QueuedAt ?? e.RequestedAt,
                },
                e.CurrentStepId, NameOf(e.CurrentStepId, e.CurrentStepName), e.Status == ExecutionStatus.AwaitingApproval ? e.ApprovalRequestId : null)).ToList(),
            activeTotal,
            since,
            failureRows.Select(e => new FailedExecution(e.Id, e.RunbookName, e.Version, e.Status, e.DryRun, e.RequestedBy, e.FinishedAt!.Value,
                e.FailedStepId, NameOf(e.FailedStepId, e.Step?.Name), e.Reason ?? e.Step?.Error)).ToList(),
            failuresTotal);
    }

    private static string? NameOf(string? id, string? name) => id is null ? null : string.IsNullOrEmpty(name) ? id : name;
}
