using System.Text.Json;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Data;

namespace RunbookPortal.Web.Features.Executions;

/// <summary>An event the host itself records (queued, claimed, cancel requested, interrupted, resumed…).</summary>
public sealed record HostEvent(string HostKind, string? HostStepId, object? Payload = null) : ExecutionEvent(HostKind, HostStepId)
{
    public override JsonElement Data() => JsonSerializer.SerializeToElement(Payload ?? new { }, ExecutionLedger.Json);
}

/// <summary>
/// Appends an event to a tracked execution: the next seq (LastSeq is a concurrency token, so two writers cannot
/// take the same one) and the state change the event implies, to be saved in one SaveChanges — one transaction.
/// The runner's events are applied from their typed fields; the host's own (a <see cref="HostEvent"/>) from the
/// payload they carry.
/// </summary>
public static class ExecutionLedger
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>The statuses of a run that holds a slot of its concurrency key (and of its node, while it runs).</summary>
    public static readonly ExecutionStatus[] HoldingASlot = [ExecutionStatus.Running, ExecutionStatus.RollingBack, ExecutionStatus.WaitingForInput];

    public static ExecutionEventRecord Append(PortalDbContext db, Execution execution, ExecutionEvent ev, DateTime now)
    {
        var data = ev.Data();
        var record = new ExecutionEventRecord
        {
            ExecutionId = execution.Id,
            Seq = execution.LastSeq + 1,
            At = now,
            Kind = ev.Kind,
            StepId = ev.StepId,
            DataJson = data.GetRawText(),
        };
        execution.LastSeq = record.Seq;
        var step = StepOf(execution, ev.StepId);
        if (ev is HostEvent host)
            ApplyHost(execution, host.Kind, ev.StepId, step, data, now);
        else
            Apply(execution, ev, step, now);
        db.ExecutionEvents.Add(record);
        return record;
    }

    /// <summary>The step row an event is about; a rollback's own events (<c>&lt;id&gt;.rollback</c>) are about the step it undoes.</summary>
    private static ExecutionStepRecord? StepOf(Execution e, string? stepId) =>
        stepId is null ? null
            : e.Steps.FirstOrDefault(s => s.StepId == stepId)
              ?? (stepId.EndsWith(".rollback", StringComparison.Ordinal) ? e.Steps.FirstOrDefault(s => s.StepId == stepId[..^".rollback".Length]) : null);

    private static void Apply(Execution e, ExecutionEvent ev, ExecutionStepRecord? step, DateTime now)
    {
        switch (ev)
        {
            case ExecutionStarted:
                e.Status = ExecutionStatus.Running;
                e.StartedAt ??= now;
                break;
            case StepStarted started:
                if (step is not null)
                {
                    step.Status = StepStatus.Running;
                    step.Attempts = started.Attempt;
                    step.StartedAt ??= now;
                    step.FinishedAt = null;
                    step.Error = null;
                }
                e.CurrentStepId = started.StepId;
                break;
            case StepRetrying retrying when step is not null:
                step.Status = StepStatus.Retrying;
                step.Error = retrying.Reason;
                break;
            case StepSucceeded succeeded when step is not null:
                step.Status = StepStatus.Succeeded;
                step.FinishedAt = now;
                step.OutputsJson = JsonSerializer.Serialize(succeeded.Outputs, Json);
                step.SucceededOrder = e.Steps.Max(s => s.SucceededOrder ?? 0) + 1;
                break;
            case StepFailed failed when step is not null:
                step.Status = failed.TimedOut ? StepStatus.TimedOut : StepStatus.Failed;
                step.FinishedAt = now;
                step.Error = failed.Reason;
                break;
            case StepCancelled cancelled when step is not null:
                step.Status = StepStatus.Cancelled;
                step.FinishedAt = now;
                step.Error = cancelled.Reason;
                break;
            case StepSkipped when step is not null:
                step.Status = StepStatus.Skipped;
                step.FinishedAt = now;
                break;
            case RollbackStarted:
                e.Status = ExecutionStatus.RollingBack;
                break;
            case RollbackStepStarted started:
                e.CurrentStepId = started.StepId;
                break;
            case RollbackStepSucceeded when step is not null:
                step.Status = StepStatus.RolledBack;
                break;
            case RollbackStepFailed failed when step is not null:
                step.Status = StepStatus.RollbackFailed;
                step.Error = failed.Reason;
                break;
            case ExecutionFinished finished:
                e.Status = finished.Status;
                e.FailedStepId = finished.FailedStepId ?? e.FailedStepId;
                e.Reason = finished.Reason;
                e.RolledBack = finished.RolledBack;
                e.FinishedAt = now;
                e.CurrentStepId = null;
                break;
            // Manual steps: the run is suspended (no node holds it) until a person decides or the step times out.
            case StepWaitingForInput waiting:
                e.Status = ExecutionStatus.WaitingForInput;
                e.CurrentStepId = waiting.StepId;
                e.StartAt = step?.Index ?? e.StartAt;
                e.InputRole = waiting.Role;
                e.InputDeadline = waiting.TimeoutMs is { } ms ? now.AddMilliseconds(ms) : null;
                e.InputStepId = e.InputDecision = e.InputBy = e.InputComment = null;
                break;
        }
    }

    private static void ApplyHost(Execution e, string kind, string? stepId, ExecutionStepRecord? step, JsonElement data, DateTime now)
    {
        switch (kind)
        {
            case EventKinds.ExecutionQueued:
                e.Status = ExecutionStatus.Queued;
                e.QueuedAt = now;
                e.FinishedAt = null;
                break;
            case EventKinds.ExecutionClaimed:
                e.Status = e.Mode == ExecutionMode.Rollback ? ExecutionStatus.RollingBack : ExecutionStatus.Running;
                e.StartedAt ??= now;
                break;
            case EventKinds.ExecutionInterrupted:
                e.Status = ExecutionStatus.Interrupted;
                e.Reason = Text(data, "reason");
                e.FailedStepId = e.CurrentStepId ?? e.FailedStepId;
                e.LeaseOwner = null;
                e.LeaseExpiresAt = null;
                e.FinishedAt = now;
                if (step is not null && step.Status is StepStatus.Running or StepStatus.Retrying)
                    step.Status = StepStatus.Failed;
                break;
            case EventKinds.ExecutionCancelled:
                StopWaiting(e, Text(data, "reason"));
                e.Status = ExecutionStatus.Cancelled;
                e.Reason = Text(data, "reason");
                e.FinishedAt = now;
                break;
            case EventKinds.ExecutionRollbackRequested:
                StopWaiting(e, $"cancelled by {Text(data, "by")} while it waited for input");
                break;
            case EventKinds.ExecutionRejected:
                e.Status = ExecutionStatus.Rejected;
                e.Reason = Text(data, "reason");
                e.FinishedAt = now;
                break;
            case EventKinds.ExecutionExpired:
                e.Status = ExecutionStatus.Expired;
                e.Reason = Text(data, "reason");
                e.FinishedAt = now;
                break;
            case EventKinds.StepInputReceived:
                e.InputStepId = stepId;
                e.InputDecision = Text(data, "decision");
                e.InputBy = Text(data, "by");
                e.InputComment = Text(data, "comment");
                e.InputDeadline = null;
                break;
            // The others (approved, approval recorded, awaiting approval, resumed, cancel and rollback-stop requests)
            // change nothing by themselves: the row changes the host makes beside them, or the queued that follows, do.
        }
    }

    /// <summary>A run cancelled while a manual step waited: that step did not complete.</summary>
    private static void StopWaiting(Execution e, string? reason)
    {
        if (e.Status != ExecutionStatus.WaitingForInput)
            return;
        if (e.Steps.FirstOrDefault(s => s.StepId == e.CurrentStepId) is { Status: StepStatus.Running } waiting)
        {
            waiting.Status = StepStatus.Failed;
            waiting.Error = reason;
        }
        e.FailedStepId = e.CurrentStepId;
        e.InputDeadline = null;
    }

    private static string? Text(JsonElement data, string name) =>
        data.ValueKind == JsonValueKind.Object && data.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null
            ? v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText()
            : null;
}
