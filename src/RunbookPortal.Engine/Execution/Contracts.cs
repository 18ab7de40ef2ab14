using System.Text.Json;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Execution;

/// <summary>States of an execution (DESIGN "Lifecycle and states").</summary>
public enum ExecutionStatus
{
    AwaitingApproval,
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Rejected,
    Expired,
    WaitingForInput,
    RollingBack,
    Interrupted,
}

/// <summary>States of one step of an execution.</summary>
public enum StepStatus
{
    Pending,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Skipped,
    Retrying,
    RolledBack,
    RollbackFailed,
    /// <summary>Stopped by an operator's cancel while it ran (or waited to retry).</summary>
    Cancelled,
}

/// <summary>
/// What the engine says happened, in the past tense. The host persists each one as an execution event with
/// the next gap-free seq, in the same transaction as the state change it implies, and fans it out.
/// <see cref="Kind"/> is the stable name stored and served by the API; <see cref="StepId"/> names the step.
/// Text in events is already masked: a secret value never reaches an event.
/// </summary>
public abstract record ExecutionEvent(string Kind, string? StepId)
{
    /// <summary>The event's own fields as JSON (the API's <c>data</c>).</summary>
    public abstract JsonElement Data();
}

/// <summary>Where the engine records events. Implemented by the host (database + notifier).</summary>
public interface IExecutionJournal
{
    /// <summary>Persists the event and the state change it implies; returns once it is durable, with every event before it.</summary>
    Task RecordAsync(ExecutionEvent executionEvent, CancellationToken cancellationToken);

    /// <summary>
    /// Persists the event with the next one the runner records, in one transaction: the runner goes on without waiting,
    /// and records that next event (the next step's start, or the run's end) before anything outside the portal sees it
    /// go on. A step's end and the next step's start then cost one commit instead of two. A journal may simply record it
    /// at once; a journal disposed with such an event waiting records it then.
    /// </summary>
    Task RecordWithNextAsync(ExecutionEvent executionEvent, CancellationToken cancellationToken) => RecordAsync(executionEvent, cancellationToken);
}

/// <summary>
/// One run of a runbook version: what to run, with which values, from which step.
/// <paramref name="StartAt"/> is 0 for a new run; a resume starts at the chosen step and brings the outputs and
/// succeeded steps of the earlier run (<paramref name="PriorOutputs"/>, <paramref name="PriorSucceeded"/>,
/// in the order they succeeded) so templates and rollback still see them.
/// <paramref name="Input"/> is the decision on a <c>manual</c> step the run waited at: the host runs the plan again
/// from that step (<paramref name="StartAt"/> is its index) with the decision, and the runner records the step's end
/// and goes on. A decision applies only to the manual step it names; any other manual step the run reaches waits.
/// </summary>
public sealed record ExecutionPlan(
    Guid ExecutionId,
    RunbookDefinition Runbook,
    IReadOnlyDictionary<string, string> Parameters,
    bool DryRun,
    int StartAt = 0,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>>? PriorOutputs = null,
    IReadOnlyList<string>? PriorSucceeded = null,
    ManualInput? Input = null);

/// <summary>What a person decided at a <c>manual</c> step.</summary>
public enum ManualDecision
{
    /// <summary>The step succeeds and the run goes on.</summary>
    Continue,
    /// <summary>The step fails (the run goes on when the step is not required, else the succeeded steps are rolled back).</summary>
    Abort,
    /// <summary>No one decided within the step's <c>timeout</c>: the step fails as timed out, like an abort.</summary>
    TimedOut,
}

/// <summary>
/// The decision on the manual step <paramref name="StepId"/>, by <paramref name="By"/> (a person, or the host for
/// <see cref="ManualDecision.TimedOut"/>), with an optional <paramref name="Comment"/> (masked before it is recorded).
/// </summary>
public sealed record ManualInput(string StepId, ManualDecision Decision, string By, string? Comment);

/// <summary>
/// What a step of a plan would do, as the dry run says it (<see cref="ExecutionRunner.Preview"/>).
/// <paramref name="Text"/> is rendered with the plan's values and masked, e.g. <c>run ./deploy.sh 'web'</c>,
/// <c>send GET https://…</c>, <c>wait 5m</c>, <c>wait for Operator to continue: …</c>.
/// </summary>
public sealed record StepPreview(string StepId, string Name, string Action, string Text);

/// <summary>
/// How a run ended, as the runner saw it. <see cref="ExecutionStatus.WaitingForInput"/> means it stopped at a manual step
/// (the last event is <see cref="StepWaitingForInput"/>, no <see cref="ExecutionFinished"/> was recorded) until the host
/// runs the plan again with the decision.
/// </summary>
public sealed record ExecutionOutcome(ExecutionStatus Status, string? FailedStepId, string? Reason, bool RolledBack);

/// <summary>
/// Operator control of a running execution: cancel (kills the running step's process tree), optionally
/// followed by the rollback of the succeeded steps.
/// </summary>
public sealed class ExecutionControl : IDisposable
{
    private readonly CancellationTokenSource _cancel = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _stopRollback = new();

    public ExecutionControl()
    {
        // Taken once: a token stays readable after its source is disposed, the source's Token property does not.
        CancelToken = _cancel.Token;
        StopToken = _stop.Token;
        RollbackStopToken = _stopRollback.Token;
    }

    /// <summary>Fires when an operator stops the run's rollback (<see cref="StopRollback"/>).</summary>
    public CancellationToken RollbackStopToken { get; }

    /// <summary>Who stopped the rollback.</summary>
    public string? RollbackStoppedBy { get; private set; }

    /// <summary>
    /// Stops the rollback under way (a second cancel): the running rollback step is stopped as a cancelled step is,
    /// the rollbacks not yet run are not run, and the run ends Failed with the rollback marked failed.
    /// </summary>
    public void StopRollback(string by)
    {
        lock (_lock)
        {
            if (_disposed)
                return;
            RollbackStoppedBy = by;
            _stopRollback.Cancel();
        }
    }

    public CancellationToken CancelToken { get; }
    public bool RollbackOnCancel { get; private set; }
    public string? CancelledBy { get; private set; }

    /// <summary>Fires when the node asks the run to stop between steps (<see cref="RequestStop"/>).</summary>
    public CancellationToken StopToken { get; }

    private readonly Lock _lock = new();
    private bool _disposed;

    /// <summary>Cancels the run; once the run has ended (the control is disposed) there is nothing left to cancel.</summary>
    public void Cancel(string by, bool rollback)
    {
        lock (_lock)
        {
            if (_disposed)
                return;
            CancelledBy = by;
            RollbackOnCancel = rollback;
            _cancel.Cancel();
        }
    }

    /// <summary>
    /// The node is shutting down: the running step may finish (the shutdown token the runner was given kills it
    /// when the grace period ends), no further step starts, a retry pause ends at once, and the run ends
    /// <see cref="ExecutionStatus.Interrupted"/> without rollback at the step to resume from.
    /// </summary>
    /// <remarks>A node that stops while a run ends may still ask it: a run that has ended ignores it.</remarks>
    public void RequestStop()
    {
        lock (_lock)
        {
            if (!_disposed)
                _stop.Cancel();
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
                return;
            _disposed = true;
            _cancel.Dispose();
            _stop.Dispose();
            _stopRollback.Dispose();
        }
    }
}

/// <summary>
/// Runs one kind of step action. New actions (ssm, lambda…) plug in by registering another executor;
/// the runner does not change. <c>manual</c> steps need none: the runner suspends the run at them itself.
/// </summary>
public interface IStepExecutor
{
    /// <summary>The action name it runs, e.g. <c>shell</c>.</summary>
    string Action { get; }

    /// <summary>
    /// Runs the step once (the runner handles retries, timeouts via the token, validation and outputs).
    /// Stream output through <see cref="StepContext.WriteOutputAsync"/>; never throw for an ordinary failure:
    /// answer <see cref="StepResult"/> with Succeeded=false. Cancellation (timeout or operator) must stop all
    /// work the step started, child processes included, before returning.
    /// </summary>
    Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken);

    /// <summary>
    /// The run (or rollback) of <paramref name="executionId"/> has ended: free what the executor keeps for it
    /// between steps (a shell step's long-lived shell). Called once per run, whether or not the executor ran a step.
    /// <paramref name="final"/>: the execution is over for good — it succeeded or was rolled back — so what is kept
    /// for a resume (the execution's working folder) may go too; a failed, cancelled or interrupted run, or one that waits
    /// for input at a manual step, can still be resumed and keeps it.
    /// </summary>
    ValueTask ReleaseAsync(Guid executionId, bool final) => ValueTask.CompletedTask;
}

/// <summary>Everything an executor needs for one attempt of one step.</summary>
public sealed record StepContext(
    Guid ExecutionId,
    StepDefinition Step,
    int Attempt,
    bool DryRun,
    StepTemplateValues Values,
    Func<string, string, ValueTask> Output)
{
    /// <summary>Streams one line of output (<paramref name="stream"/> is "stdout" or "stderr"); the runner masks and caps it.</summary>
    public ValueTask WriteOutputAsync(string stream, string line) => Output(stream, line);

    /// <summary>The most output, in UTF-8 bytes, an executor keeps in <see cref="StepResult.Output"/> (it still reads and streams the rest).</summary>
    public int MaxOutputBytes { get; init; } = ExecutionOptions.DefaultMaxOutputBytesPerStep;
}

/// <summary>The values templates resolve to: parameters and earlier steps' outputs.</summary>
public sealed record StepTemplateValues(
    IReadOnlyDictionary<string, string> Parameters,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> StepOutputs)
{
    /// <summary>
    /// The value a parameter or step-output template stands for. A parameter without a value is empty; an output
    /// the run has not produced is an error (<see cref="StepTemplateException"/>), never a silent empty text.
    /// </summary>
    public string Resolve(TemplateReference reference)
    {
        ArgumentNullException.ThrowIfNull(reference);
        switch (reference.Kind)
        {
            case TemplateReferenceKind.Parameter:
                return Parameters.TryGetValue(reference.ParameterName!, out var value) ? value : "";
            case TemplateReferenceKind.StepOutput:
                if (StepOutputs.TryGetValue(reference.StepId!, out var outputs) && outputs.TryGetValue(reference.OutputName!, out var output))
                    return output;
                throw new StepTemplateException(
                    $"{{{{ {reference.Expression} }}}} has no value: step '{reference.StepId}' has not produced the output '{reference.OutputName}' in this run");
            case TemplateReferenceKind.Literal:
                return reference.LiteralText ?? "";
            default:
                throw new StepTemplateException($"{{{{ {reference.Expression} }}}} is not a template this portal understands");
        }
    }

    /// <summary>
    /// The parameters declared <c>int</c> or <c>bool</c> (their values were checked before the run): only these may stand
    /// where a shell evaluates a value, such as <c>$(( ))</c>. None when not given.
    /// </summary>
    public IReadOnlySet<string> NumericParameters { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>Whether <paramref name="reference"/> is a numeric parameter (<see cref="NumericParameters"/>) whose value is a whole number or true/false.</summary>
    public bool IsNumeric(TemplateReference reference)
    {
        ArgumentNullException.ThrowIfNull(reference);
        return reference.Kind == TemplateReferenceKind.Parameter
            && NumericParameters.Contains(reference.ParameterName!)
            && Parameters.TryGetValue(reference.ParameterName!, out var value)
            && (ParameterDefinition.TryParseInt(value, out _) || ParameterDefinition.TryParseBool(value, out _));
    }

    /// <summary>Renders <paramref name="text"/> with every template replaced by its value as raw text (never for shell commands).</summary>
    public string Render(string text) => TemplateReferences.Replace(text, Resolve);
}

/// <summary>A template of a step could not be rendered; the message names it and says why (never a value).</summary>
public sealed class StepTemplateException(string message) : Exception(message);

/// <summary>One attempt's result. <paramref name="Output"/> is the captured (capped) output used by validate and outputs.</summary>
public sealed record StepResult(bool Succeeded, string Output, int? ExitCode = null, string? Error = null, bool TimedOut = false, int? HttpStatus = null)
{
    /// <summary>How a stopped step's process was stopped, in words (<c>stopped with SIGTERM</c>, or SIGKILL after the grace period).</summary>
    public string? StopSignal { get; init; }
}
