using System.Text.Json;
using RunbookPortal.Engine.Execution;

namespace RunbookPortal.Web.Features.Executions;

/// <summary>When a step (or a rollback) will be tried again, and why its last attempt failed.</summary>
public sealed record RetryDue(DateTime At, int NextAttempt, string? Reason);

/// <summary>
/// A step as the timeline shows it. <see cref="RunningTime"/> is the sum of its attempts' running intervals
/// (step_started until the attempt ended, or until the run stopped), so the idle gap between an interruption and a
/// resume is not counted; <see cref="RunningSince"/> is set while an attempt runs (add now − it for the live figure).
/// </summary>
public sealed record StepEntry(
    int Number, string Id, string Name, string Action, StepStatus Status, bool NotRun, bool IsFailedStep, bool IsCurrent,
    int Attempts, int AttemptsBeforeResume, DateTime? StartedAt, TimeSpan RunningTime, DateTime? RunningSince, RetryDue? Retry,
    string? Error, IReadOnlyList<string> Decisions)
{
    public TimeSpan Duration(DateTime now) => RunningTime + (RunningSince is { } since && now > since ? now - since : TimeSpan.Zero);
}

/// <summary>One rollback as it ran (in the order the rollbacks ran). <see cref="Outcome"/>: Running, RolledBack, RollbackFailed or Stopped.</summary>
public sealed record RollbackEntry(
    string StepId, string Name, string Outcome, DateTime StartedAt, TimeSpan RunningTime, DateTime? RunningSince, int Attempts, RetryDue? Retry, string? Reason)
{
    public string RollbackId => StepId + ".rollback";

    public TimeSpan Duration(DateTime now) => RunningTime + (RunningSince is { } since && now > since ? now - since : TimeSpan.Zero);
}

/// <summary>The rollback phase: why it began, the rollbacks in the order they ran, and the steps whose rollback did not run.</summary>
public sealed record RollbackPhase(string? Reason, DateTime StartedAt, IReadOnlyList<RollbackEntry> Entries, IReadOnlyList<string> NotRolledBack);

public sealed record ExecutionTimeline(IReadOnlyList<StepEntry> Steps, RollbackPhase? Rollback, bool Ended)
{
    /// <summary>Statuses in which nothing more happens until a person acts (resume, roll back) — or ever.</summary>
    public static bool IsEnded(ExecutionStatus s) =>
        s is ExecutionStatus.Succeeded or ExecutionStatus.Failed or ExecutionStatus.Cancelled or ExecutionStatus.Rejected or ExecutionStatus.Expired or ExecutionStatus.Interrupted;

    /// <summary>
    /// The timeline of <paramref name="view"/> (the execution's rows: the status of each step) read together with its
    /// events (any order of kinds; output events are ignored), in seq order.
    /// </summary>
    public static ExecutionTimeline From(ExecutionView view, IEnumerable<EventView> events)
    {
        var ended = IsEnded(view.Status);
        var steps = view.Steps.Select(s => new StepState()).ToArray();
        var index = view.Steps.Select((s, i) => (s.Id, i)).ToDictionary(x => x.Id, x => x.i, StringComparer.Ordinal);
        var rollbacks = new List<RollbackState>();
        string? rollbackReason = null;
        DateTime? rollbackStarted = null;

        StepState? StepOf(string? id) => id is not null && index.TryGetValue(id, out var i) ? steps[i] : null;
        RollbackState? RollbackOf(string? id) => id is null ? null : rollbacks.LastOrDefault(r => r.StepId == id);

        foreach (var e in events)
        {
            switch (e.Kind)
            {
                case EventKinds.StepStarted when StepOf(e.StepId) is { } s:
                    s.Close(e.At);
                    s.Attempts++;
                    s.StartedAt ??= e.At;
                    s.OpenSince = e.At;
                    s.Retry = null;
                    break;
                case EventKinds.StepSucceeded or EventKinds.StepFailed or EventKinds.StepCancelled or EventKinds.StepSkipped when StepOf(e.StepId) is { } s:
                    s.Close(e.At);
                    s.Retry = null;
                    break;
                case EventKinds.StepRetrying:
                    var retry = new RetryDue(e.At.AddMilliseconds(Number(e, "delayMs") ?? 0), (int)(Number(e, "nextAttempt") ?? 0), Text(e, "reason"));
                    if (StepOf(e.StepId) is { } retried)
                    {
                        retried.Close(e.At);
                        retried.Retry = retry;
                    }
                    else if (e.StepId is { } rid && rid.EndsWith(".rollback", StringComparison.Ordinal) && RollbackOf(rid[..^".rollback".Length]) is { } rb)
                    {
                        rb.Attempts++;
                        rb.Retry = retry;
                    }
                    break;
                case EventKinds.StepInputReceived when StepOf(e.StepId) is { } s:
                    s.Decisions.Add(Decision(e));
                    break;
                case EventKinds.ExecutionResumed when e.StepId is { } from && index.TryGetValue(from, out var fromIndex):
                    for (var i = fromIndex; i < steps.Length; i++)
                        steps[i].AttemptsBeforeResume = steps[i].Attempts;
                    break;
                case EventKinds.RollbackStarted:
                    rollbackReason = Text(e, "reason");
                    rollbackStarted ??= e.At;
                    break;
                case EventKinds.RollbackStepStarted when e.StepId is { } undone:
                    rollbackStarted ??= e.At;
                    rollbacks.Add(new RollbackState(undone, e.At));
                    break;
                case EventKinds.RollbackStepSucceeded or EventKinds.RollbackStepFailed when RollbackOf(e.StepId) is { OpenSince: not null } rb:
                    rb.Close(e.At);
                    rb.Retry = null;
                    rb.Outcome = e.Kind == EventKinds.RollbackStepSucceeded ? "RolledBack" : "RollbackFailed";
                    rb.Reason = Text(e, "reason");
                    break;
                // The run stopped (ended, was interrupted, was cancelled while it waited): nothing runs on from here.
                case EventKinds.ExecutionFinished or EventKinds.ExecutionInterrupted or EventKinds.ExecutionCancelled:
                    foreach (var s in steps)
                    {
                        s.Close(e.At);
                        s.Retry = null;
                    }
                    foreach (var rb in rollbacks.Where(r => r.OpenSince is not null))
                    {
                        rb.Close(e.At);
                        rb.Retry = null;
                        rb.Outcome = "Stopped";
                    }
                    break;
            }
        }

        var entries = view.Steps.Select((row, i) =>
        {
            var s = steps[i];
            var running = row.Status is StepStatus.Running or StepStatus.Retrying && !ended;
            return new StepEntry(i + 1, row.Id, string.IsNullOrEmpty(row.Name) ? row.Id : row.Name, row.Action, row.Status,
                NotRun: ended && row.Status == StepStatus.Pending,
                IsFailedStep: view.FailedStepId == row.Id && view.Status is not ExecutionStatus.Succeeded,
                IsCurrent: view.CurrentStepId == row.Id && !ended,
                Attempts: s.Attempts, AttemptsBeforeResume: s.AttemptsBeforeResume, StartedAt: s.StartedAt, RunningTime: s.Total,
                RunningSince: running ? s.OpenSince : null, Retry: row.Status == StepStatus.Retrying && !ended ? s.Retry : null,
                Error: row.Error, Decisions: s.Decisions);
        }).ToList();

        RollbackPhase? phase = null;
        if (rollbackStarted is { } began)
        {
            var names = view.Steps.ToDictionary(s => s.Id, s => string.IsNullOrEmpty(s.Name) ? s.Id : s.Name, StringComparer.Ordinal);
            var ran = rollbacks.Select(r => new RollbackEntry(r.StepId, names.GetValueOrDefault(r.StepId, r.StepId), r.Outcome, r.StartedAt, r.Total,
                r.OpenSince is not null && !ended ? r.OpenSince : null, r.Attempts, r.OpenSince is not null && !ended ? r.Retry : null, r.Reason)).ToList();
            // Once the run ended: succeeded steps with a rollback that did not run (the rollback was stopped, or failed before them).
            var notRun = ended
                ? view.Steps.Where(s => s.HasRollback && s.Status == StepStatus.Succeeded && rollbacks.All(r => r.StepId != s.Id)).Select(s => s.Id).ToList()
                : [];
            phase = new RollbackPhase(rollbackReason, began, ran, notRun);
        }
        return new ExecutionTimeline(entries, phase, ended);
    }

    private static string Decision(EventView e) => Text(e, "decision") switch
    {
        "continue" => $"continued by {Text(e, "by")}{Said(e)}",
        "abort" => $"aborted by {Text(e, "by")}{Said(e)}",
        "timedout" => "timed out: no one decided in time",
        var other => $"{other} by {Text(e, "by")}{Said(e)}",
    };

    private static string Said(EventView e) => Text(e, "comment") is { Length: > 0 } c ? $": {c}" : "";

    internal static string? Text(EventView e, string name) =>
        e.Data.ValueKind == JsonValueKind.Object && e.Data.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null
            ? v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText()
            : null;

    private static long? Number(EventView e, string name) =>
        e.Data.ValueKind == JsonValueKind.Object && e.Data.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var n) ? n : null;

    private class Interval
    {
        public DateTime? OpenSince;
        public TimeSpan Total;

        public void Close(DateTime at)
        {
            if (OpenSince is { } since && at > since)
                Total += at - since;
            OpenSince = null;
        }
    }

    private sealed class StepState : Interval
    {
        public int Attempts;
        public int AttemptsBeforeResume;
        public DateTime? StartedAt;
        public RetryDue? Retry;
        public readonly List<string> Decisions = [];
    }

    private sealed class RollbackState : Interval
    {
        public RollbackState(string stepId, DateTime at)
        {
            StepId = stepId;
            StartedAt = at;
            OpenSince = at;
        }

        public string StepId { get; }
        public DateTime StartedAt { get; }
        public int Attempts = 1;
        public RetryDue? Retry;
        public string Outcome = "Running";
        public string? Reason;
    }
}
