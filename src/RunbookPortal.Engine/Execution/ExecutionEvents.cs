using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace RunbookPortal.Engine.Execution;

// The events the runner records, in the past tense. Kind is the stable name stored and served by the API,
// Data() the event's own fields in camelCase (the step id travels beside them, in ExecutionEvent.StepId).
// Every text in them is masked already: the runner builds them from masked values only.
//
// Step ids: step events carry the step's id. A rollback is recorded as RollbackStep* events under the id of the
// step it undoes; the rollback's own output and retries (StepOutput, StepOutputTruncated, StepRetrying) carry
// the rollback's id, "<stepId>.rollback".

/// <summary>The run began (or resumed) at step index <paramref name="StartAt"/>.</summary>
public sealed record ExecutionStarted(int StartAt, bool DryRun) : ExecutionEvent(EventKinds.ExecutionStarted, null)
{
    public override JsonElement Data() => EventJson.Of(new { startAt = StartAt, dryRun = DryRun });
}

/// <summary>An attempt of a step began (attempts count from 1).</summary>
public sealed record StepStarted(string StepId, int Attempt) : ExecutionEvent(EventKinds.StepStarted, StepId)
{
    public override JsonElement Data() => EventJson.Of(new { attempt = Attempt });
}

/// <summary>One line a step wrote; <paramref name="Stream"/> is <c>stdout</c> or <c>stderr</c>.</summary>
public sealed record StepOutput(string StepId, string Stream, string Text) : ExecutionEvent(EventKinds.StepOutput, StepId)
{
    public override JsonElement Data() => EventJson.Of(new { stream = Stream, text = Text });
}

/// <summary>An attempt failed and the step will be tried again after <paramref name="Delay"/>.</summary>
public sealed record StepRetrying(string StepId, int Attempt, int NextAttempt, TimeSpan Delay, string Reason) : ExecutionEvent(EventKinds.StepRetrying, StepId)
{
    public override JsonElement Data() => EventJson.Of(new
    {
        attempt = Attempt,
        nextAttempt = NextAttempt,
        delayMs = (long)Math.Round(Delay.TotalMilliseconds),
        reason = Reason,
    });
}

/// <summary>
/// The run stopped at the <c>manual</c> step <paramref name="StepId"/> until a person holding <paramref name="Role"/>
/// continues or aborts it; after <paramref name="TimeoutMs"/> (when given) without a decision it is aborted as timed out.
/// <paramref name="Instructions"/> are rendered with the run's values and masked. The run's outcome is
/// <see cref="ExecutionStatus.WaitingForInput"/> and no <see cref="ExecutionFinished"/> follows: the host runs the plan
/// again from this step with the decision (<see cref="ExecutionPlan.Input"/>).
/// </summary>
public sealed record StepWaitingForInput(string StepId, string Instructions, string Role, long? TimeoutMs) : ExecutionEvent(EventKinds.StepWaitingForInput, StepId)
{
    public override JsonElement Data() => EventJson.Of(new { instructions = Instructions, role = Role, timeoutMs = TimeoutMs });
}

/// <summary>The step succeeded on <paramref name="Attempt"/> with these captured outputs.</summary>
public sealed record StepSucceeded(string StepId, int Attempt, IReadOnlyDictionary<string, string> Outputs, long DurationMs) : ExecutionEvent(EventKinds.StepSucceeded, StepId)
{
    /// <summary>
    /// The outputs as the step produced them, secrets unmasked: never part of <see cref="Data"/> or of the text of the
    /// event. The host stores them encrypted, so a resumed run feeds later steps the real values.
    /// </summary>
    public IReadOnlyDictionary<string, string>? RawOutputs { get; init; }

    protected override bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append($"StepId = {StepId}, Attempt = {Attempt}, Outputs = {Outputs.Count}, DurationMs = {DurationMs}");
        return true;
    }

    public override JsonElement Data() => EventJson.Of(new { attempt = Attempt, outputs = Outputs, durationMs = DurationMs });
}

/// <summary>The step failed for good (its last attempt, or it was stopped).</summary>
public sealed record StepFailed(string StepId, int Attempt, string Reason, bool TimedOut, int? ExitCode) : ExecutionEvent(EventKinds.StepFailed, StepId)
{
    /// <summary>The HTTP status of an <c>http</c> step's answer, when there was one.</summary>
    public int? HttpStatus { get; init; }

    public override JsonElement Data() => EventJson.Of(new { attempt = Attempt, reason = Reason, timedOut = TimedOut, exitCode = ExitCode, httpStatus = HttpStatus });
}

/// <summary>An operator's cancel stopped the step (<paramref name="Reason"/> says who, and how the process was stopped).</summary>
public sealed record StepCancelled(string StepId, int Attempt, string Reason, int? ExitCode) : ExecutionEvent(EventKinds.StepCancelled, StepId)
{
    public override JsonElement Data() => EventJson.Of(new { attempt = Attempt, reason = Reason, exitCode = ExitCode });
}

/// <summary>The step did not run (a dry run says what it would have run).</summary>
public sealed record StepSkipped(string StepId, string Reason) : ExecutionEvent(EventKinds.StepSkipped, StepId)
{
    public override JsonElement Data() => EventJson.Of(new { reason = Reason });
}

/// <summary>The step wrote more than <paramref name="LimitBytes"/>; the rest of this attempt's output is not recorded.</summary>
public sealed record StepOutputTruncated(string StepId, int LimitBytes) : ExecutionEvent(EventKinds.StepOutputTruncated, StepId)
{
    public override JsonElement Data() => EventJson.Of(new { limitBytes = LimitBytes });
}

/// <summary>The rollback of the succeeded steps began.</summary>
public sealed record RollbackStarted(string Reason) : ExecutionEvent(EventKinds.RollbackStarted, null)
{
    public override JsonElement Data() => EventJson.Of(new { reason = Reason });
}

/// <summary>The rollback of step <paramref name="StepId"/> began.</summary>
public sealed record RollbackStepStarted(string StepId) : ExecutionEvent(EventKinds.RollbackStepStarted, StepId)
{
    public override JsonElement Data() => EventJson.Of(new { rollbackStepId = StepId + ".rollback" });
}

/// <summary>Step <paramref name="StepId"/> was rolled back.</summary>
public sealed record RollbackStepSucceeded(string StepId) : ExecutionEvent(EventKinds.RollbackStepSucceeded, StepId)
{
    public override JsonElement Data() => EventJson.Of(new { rollbackStepId = StepId + ".rollback" });
}

/// <summary>The rollback of step <paramref name="StepId"/> failed (the step is RollbackFailed).</summary>
public sealed record RollbackStepFailed(string StepId, string Reason) : ExecutionEvent(EventKinds.RollbackStepFailed, StepId)
{
    public override JsonElement Data() => EventJson.Of(new { rollbackStepId = StepId + ".rollback", reason = Reason });
}

/// <summary>
/// The run ended. <paramref name="FailedStepId"/> is the step that failed, was cancelled, or — when
/// <see cref="ExecutionStatus.Interrupted"/> — the step to resume from.
/// </summary>
public sealed record ExecutionFinished(ExecutionStatus Status, string? FailedStepId, string? Reason, bool RolledBack) : ExecutionEvent(EventKinds.ExecutionFinished, null)
{
    public override JsonElement Data() => EventJson.Of(new { status = Status, failedStepId = FailedStepId, reason = Reason, rolledBack = RolledBack });
}

internal static class EventJson
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter() },
        // Stored and served as JSON (never pasted into HTML unencoded): keep quotes and non-ASCII text readable.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static JsonElement Of<T>(T data) => JsonSerializer.SerializeToElement(data, Options);
}
