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
/// </summary>
public static class ExecutionLedger
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

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
        Apply(execution, ev.Kind, ev.StepId, data, now);
        db.ExecutionEvents.Add(record);
        return record;
    }

    private static void Apply(Execution e, string kind, string? stepId, JsonElement data, DateTime now)
    {
        var step = stepId is null ? null
            : e.Steps.FirstOrDefault(s => s.StepId == stepId)
              ?? e.Steps.FirstOrDefault(s => stepId.EndsWith(".rollback", StringComparison.Ordinal) && s.StepId == stepId[..^".rollback".Length]);
        switch (kind)
        {
            case "execution_started":
                e.Status = ExecutionStatus.Running;
                e.StartedAt ??= now;
                break;
            case "step_started":
                if (step is not null)
                {
                    step.Status = StepStatus.Running;
                    step.Attempts = Int(data, "attempt") ?? step.Attempts + 1;
                    step.StartedAt ??= now;
                    step.FinishedAt = null;
                    step.Error = null;
                }
                e.CurrentStepId = stepId;
                break;
            case "step_retrying":
                if (step is not null)
                {
                    step.Status = StepStatus.Retrying;
                    step.Error = Text(data, "reason");
                }
                break;
            case "step_succeeded":
                if (step is not null)
                {
                    step.Status = StepStatus.Succeeded;
                    step.FinishedAt = now;
                    step.OutputsJson = data.TryGetProperty("outputs", out var outputs) ? outputs.GetRawText() : null;
                    step.SucceededOrder = e.Steps.Max(s => s.SucceededOrder ?? 0) + 1;
                }
                break;
            case "step_failed":
                if (step is not null)
                {
                    step.Status = Bool(data, "timedOut") == true ? StepStatus.TimedOut : StepStatus.Failed;
                    step.FinishedAt = now;
                    step.Error = Text(data, "reason");
                }
                break;
            case "step_cancelled":
                if (step is not null)
                {
                    step.Status = StepStatus.Cancelled;
                    step.FinishedAt = now;
                    step.Error = Text(data, "reason");
                }
                break;
            case "step_skipped":
                if (step is not null)
                {
                    step.Status = StepStatus.Skipped;
                    step.FinishedAt = now;
                }
                break;
            case "rollback_started":
                e.Status = ExecutionStatus.RollingBack;
                break;
            case "rollback_step_started":
                e.CurrentStepId = stepId;
                break;
            case "rollback_step_succeeded":
                if (step is not null)
                    step.Status = StepStatus.RolledBack;
                break;
            case "rollback_step_failed":
                if (step is not null)
                {
                    step.Status = StepStatus.RollbackFailed;
                    step.Error = Text(data, "reason");
                }
                break;
            case "execution_finished":
                if (Enum.TryParse<ExecutionStatus>(Text(data, "status"), ignoreCase: true, out var status))
                    e.Status = status;
                e.FailedStepId = Text(data, "failedStepId") ?? e.FailedStepId;
                e.Reason = Text(data, "reason");
                e.RolledBack = Bool(data, "rolledBack") ?? e.RolledBack;
                e.FinishedAt = now;
                e.CurrentStepId = null;
                break;
            // Host events.
            case "execution_queued":
                e.Status = ExecutionStatus.Queued;
                e.QueuedAt = now;
                e.FinishedAt = null;
                break;
            case "execution_claimed":
                e.Status = e.Mode == ExecutionMode.Rollback ? ExecutionStatus.RollingBack : ExecutionStatus.Running;
                e.StartedAt ??= now;
                break;
            case "execution_interrupted":
                e.Status = ExecutionStatus.Interrupted;
                e.Reason = Text(data, "reason");
                e.FailedStepId = e.CurrentStepId ?? e.FailedStepId;
                e.LeaseOwner = null;
                e.LeaseExpiresAt = null;
                e.FinishedAt = now;
                if (step is not null && step.Status is StepStatus.Running or StepStatus.Retrying)
                    step.Status = StepStatus.Failed;
                break;
            case "execution_cancelled":
                StopWaiting(e, Text(data, "reason"));
                e.Status = ExecutionStatus.Cancelled;
                e.Reason = Text(data, "reason");
                e.FinishedAt = now;
                break;
            case "execution_rollback_requested":
                StopWaiting(e, $"cancelled by {Text(data, "by")} while it waited for input");
                break;
            // Approvals.
            case "execution_approved":
                break; // the execution_queued that follows queues it
            case "execution_rejected":
                e.Status = ExecutionStatus.Rejected;
                e.Reason = Text(data, "reason");
                e.FinishedAt = now;
                break;
            case "execution_expired":
                e.Status = ExecutionStatus.Expired;
                e.Reason = Text(data, "reason");
                e.FinishedAt = now;
                break;
            // Manual steps: the run is suspended (no node holds it) until a person decides or the step times out.
            case "step_waiting_for_input":
                e.Status = ExecutionStatus.WaitingForInput;
                e.CurrentStepId = stepId;
                e.StartAt = step?.Index ?? e.StartAt;
                e.InputRole = Text(data, "role");
                e.InputDeadline = Long(data, "timeoutMs") is { } ms ? now.AddMilliseconds(ms) : null;
                e.InputStepId = e.InputDecision = e.InputBy = e.InputComment = null;
                break;
            case "step_input_received":
                e.InputStepId = stepId;
                e.InputDecision = Text(data, "decision");
                e.InputBy = Text(data, "by");
                e.InputComment = Text(data, "comment");
                e.InputDeadline = null;
                break;
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

    private static long? Long(JsonElement data, string name) =>
        data.ValueKind == JsonValueKind.Object && data.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : null;

    private static string? Text(JsonElement data, string name) =>
        data.ValueKind == JsonValueKind.Object && data.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null
            ? v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText()
            : null;

    private static int? Int(JsonElement data, string name) =>
        data.ValueKind == JsonValueKind.Object && data.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;

    private static bool? Bool(JsonElement data, string name) =>
        data.ValueKind == JsonValueKind.Object && data.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;
}
