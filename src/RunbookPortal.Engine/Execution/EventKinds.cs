namespace RunbookPortal.Engine.Execution;

/// <summary>
/// Every kind of event on an execution's timeline: the stable names stored and served by the API (the <c>kind</c>
/// of <c>/api/executions/{id}/events</c>), written once here for the runner, the host, the pages and the tests.
/// </summary>
public static class EventKinds
{
    // Recorded by the runner (the records in ExecutionEvents.cs).
    public const string ExecutionStarted = "execution_started";
    public const string StepStarted = "step_started";
    public const string StepOutput = "step_output";
    public const string StepOutputTruncated = "step_output_truncated";
    public const string StepRetrying = "step_retrying";
    public const string StepWaitingForInput = "step_waiting_for_input";
    public const string StepSucceeded = "step_succeeded";
    public const string StepFailed = "step_failed";
    public const string StepCancelled = "step_cancelled";
    public const string StepSkipped = "step_skipped";
    public const string RollbackStarted = "rollback_started";
    public const string RollbackStepStarted = "rollback_step_started";
    public const string RollbackStepSucceeded = "rollback_step_succeeded";
    public const string RollbackStepFailed = "rollback_step_failed";
    public const string ExecutionFinished = "execution_finished";

    // Recorded by the host around the runner: queueing, approvals, claims, requests of people, the portal's timers.
    public const string ExecutionAwaitingApproval = "execution_awaiting_approval";
    public const string ExecutionApprovalRecorded = "execution_approval_recorded";
    public const string ExecutionApproved = "execution_approved";
    public const string ExecutionRejected = "execution_rejected";
    public const string ExecutionExpired = "execution_expired";
    public const string ExecutionQueued = "execution_queued";
    public const string ExecutionClaimed = "execution_claimed";
    public const string ExecutionInterrupted = "execution_interrupted";
    public const string ExecutionResumed = "execution_resumed";
    public const string ExecutionCancelRequested = "execution_cancel_requested";
    public const string ExecutionCancelled = "execution_cancelled";
    public const string ExecutionRollbackRequested = "execution_rollback_requested";
    public const string ExecutionRollbackStopRequested = "execution_rollback_stop_requested";
    public const string StepInputReceived = "step_input_received";
}
