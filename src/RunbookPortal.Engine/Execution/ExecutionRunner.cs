using System.ComponentModel.DataAnnotations;
using System.Runtime.ExceptionServices;
using System.Text;
using RunbookPortal.Engine.Runbooks;
using RunbookPortal.Engine.Execution.Steps;

namespace RunbookPortal.Engine.Execution;

/// <summary>
/// Runs an execution plan step by step and records every transition in the journal, in order.
/// <list type="bullet">
/// <item>Steps run in order from <see cref="ExecutionPlan.StartAt"/>; each attempt gets the step's <c>timeout</c>;
/// a failed attempt is tried again after <c>backoff × 2^(attempt-1)</c> plus jitter, while <c>retry.attempts</c>
/// allows; an attempt succeeds when it ran well and every <c>validate</c> check holds and every <c>outputs</c>
/// pattern matches.</item>
/// <item>A step with <c>required: false</c> may fail: the run goes on (and says so when it ends). When a required
/// step fails, the rollbacks of the succeeded steps run, the last succeeded first; the run ends Failed.</item>
/// <item>Cancel (<see cref="ExecutionControl.Cancel"/>) kills the running step, rolls back when asked, and ends
/// Cancelled. <see cref="ExecutionControl.RequestStop"/> lets the running step finish and starts no other;
/// the shutdown token kills the running step. Both end the run Interrupted, without rollback, at the step to resume.</item>
/// <item>A <c>manual</c> step suspends the run: the runner records that it waits for input and returns
/// <see cref="ExecutionStatus.WaitingForInput"/> (no thread waits, no shell is held). The host runs the plan again from
/// that step with the decision (<see cref="ExecutionPlan.Input"/>): continue makes it a succeeded step, abort and
/// time-out a failed one, with the consequences any step's end has.</item>
/// <item>A dry run records what each step would do (<see cref="Preview"/>) and runs nothing.</item>
/// <item>Every secret parameter value is masked in everything recorded.</item>
/// </list>
/// One runner serves many executions at once; the state of a run lives in the run, not here.
/// </summary>
public sealed class ExecutionRunner
{
    private readonly Dictionary<string, IStepExecutor> _executors;
    private readonly TimeProvider _time;
    private readonly ExecutionOptions _options;
    private readonly Random? _seeded;
    private readonly Lock _randomLock = new();

    /// <param name="options">Checked against their ranges (<see cref="ExecutionOptions"/>); out of range, an <see cref="ArgumentException"/>.</param>
    /// <param name="jitterSeed">Seeds the retry jitter (tests); by default it is random.</param>
    public ExecutionRunner(IEnumerable<IStepExecutor> executors, TimeProvider time, ExecutionOptions options, int? jitterSeed = null)
    {
        ArgumentNullException.ThrowIfNull(executors);
        _executors = new Dictionary<string, IStepExecutor>(StringComparer.Ordinal);
        foreach (var executor in executors)
        {
            if (executor.Action == StepActions.Manual)
                throw new ArgumentException("the runner handles manual steps itself; do not register a step executor for the action 'manual'", nameof(executors));
            if (!_executors.TryAdd(executor.Action, executor))
                throw new ArgumentException($"two step executors are registered for the action '{executor.Action}'", nameof(executors));
        }
        _time = time ?? throw new ArgumentNullException(nameof(time));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        var problems = new List<ValidationResult>();
        if (!Validator.TryValidateObject(options, new ValidationContext(options), problems, validateAllProperties: true))
            throw new ArgumentException($"the execution options are out of range: {string.Join(" ", problems.Select(p => p.ErrorMessage))}", nameof(options));
        _seeded = jitterSeed is { } seed ? new Random(seed) : null;
    }

    public async Task<ExecutionOutcome> RunAsync(ExecutionPlan plan, IExecutionJournal journal, ExecutionControl control, CancellationToken shutdown)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(journal);
        ArgumentNullException.ThrowIfNull(control);
        ExecutionOutcome? outcome = null;
        try
        {
            outcome = await RunStepsAsync(plan, journal, control, shutdown).ConfigureAwait(false);
            return outcome;
        }
        finally
        {
            // Over for good when it succeeded or was rolled back; a failed, cancelled or interrupted run may be resumed,
            // and one waiting for input at a manual step will be: its shell goes now, its working folder stays.
            await ReleaseAsync(plan.ExecutionId, outcome is { Status: ExecutionStatus.Succeeded } or { RolledBack: true }).ConfigureAwait(false);
        }
    }

    private async Task<ExecutionOutcome> RunStepsAsync(ExecutionPlan plan, IExecutionJournal journal, ExecutionControl control, CancellationToken shutdown)
    {
        var run = new Run(plan, journal);
        await run.RecordAsync(new ExecutionStarted(plan.StartAt, plan.DryRun), withNext: true).ConfigureAwait(false);
        if (plan.DryRun)
            return await DryRunAsync(run).ConfigureAwait(false);

        var optionalFailures = new List<string>();
        var steps = plan.Runbook.Steps;
        for (var index = Math.Max(0, plan.StartAt); index < steps.Count; index++)
        {
            var step = steps[index];
            if (control.CancelToken.IsCancellationRequested)
                return await CancelledAsync(run, control, null, shutdown).ConfigureAwait(false);
            if (control.StopToken.IsCancellationRequested || shutdown.IsCancellationRequested)
                return await run.FinishAsync(ExecutionStatus.Interrupted, step.Id, $"the node stopped before step '{step.Id}' started", false).ConfigureAwait(false);

            StepRun result;
            if (step.Action == StepActions.Manual)
            {
                // Suspended: the run ends here for now, without ExecutionFinished; the host resumes it with the decision.
                if (await ManualStepAsync(run, step).ConfigureAwait(false) is not { } decided)
                    return new ExecutionOutcome(ExecutionStatus.WaitingForInput, null, null, false);
                result = decided;
            }
            else
            {
                result = await RunStepAsync(run, step, rollback: false, new Stopper(control.CancelToken, () => CancelReason(control)), control.StopToken, shutdown).ConfigureAwait(false);
            }
            switch (result.Ending)
            {
                case Ending.Succeeded:
                    run.Succeeded(step.Id, result.Outputs!);
                    break;
                case Ending.Failed when !step.Required:
                    optionalFailures.Add($"the optional step '{step.Id}' failed ({result.Reason}); the run went on");
                    break;
                case Ending.Failed:
                    return await FailedAsync(run, step, result.Reason, control, shutdown).ConfigureAwait(false);
                case Ending.Cancelled:
                    return await CancelledAsync(run, control, step.Id, shutdown).ConfigureAwait(false);
                default:
                    return await run.FinishAsync(ExecutionStatus.Interrupted, step.Id, result.Reason, false).ConfigureAwait(false);
            }
        }
        return await run.FinishAsync(ExecutionStatus.Succeeded, null, optionalFailures.Count == 0 ? null : string.Join("; ", optionalFailures), false)
            .ConfigureAwait(false);
    }

    /// <summary>
    /// The operator's roll back of an interrupted or failed run: the rollbacks of <paramref name="succeededStepIds"/>
    /// (in the order they succeeded) run last first. Ends Cancelled — the run was abandoned and undone — or Failed when
    /// a rollback failed, or Interrupted when <paramref name="cancellationToken"/> stops it.
    /// </summary>
    /// <remarks><paramref name="control"/>'s <see cref="ExecutionControl.StopRollback"/> stops it (the run ends Failed).</remarks>
    public async Task<ExecutionOutcome> RollbackAsync(ExecutionPlan plan, IReadOnlyList<string> succeededStepIds, IExecutionJournal journal, CancellationToken cancellationToken,
        ExecutionControl? control = null)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(succeededStepIds);
        ArgumentNullException.ThrowIfNull(journal);
        ExecutionOutcome? outcome = null;
        try
        {
            outcome = await RollbackStepsAsync(plan, succeededStepIds, journal, control, cancellationToken).ConfigureAwait(false);
            return outcome;
        }
        finally
        {
            await ReleaseAsync(plan.ExecutionId, outcome is { RolledBack: true }).ConfigureAwait(false);
        }
    }

    private async Task<ExecutionOutcome> RollbackStepsAsync(ExecutionPlan plan, IReadOnlyList<string> succeededStepIds, IExecutionJournal journal, ExecutionControl? control,
        CancellationToken cancellationToken)
    {
        var run = new Run(plan with { PriorSucceeded = succeededStepIds }, journal);
        var rollback = await RollBackAsync(run, "the operator asked to roll back the run", control, cancellationToken).ConfigureAwait(false);
        if (rollback.Interrupted)
            return await run.FinishAsync(ExecutionStatus.Interrupted, null, "the node stopped during the rollback", rollback.Performed).ConfigureAwait(false);
        var status = rollback.Failed.Count > 0 ? ExecutionStatus.Failed : ExecutionStatus.Cancelled;
        var reason = rollback.Performed ? "rolled back at the operator's request" : "rolled back at the operator's request: no succeeded step has a rollback";
        return await run.FinishAsync(status, null, reason + rollback.Describe(), rollback.Performed).ConfigureAwait(false);
    }

    /// <summary>Lets every executor free what it kept for the run.</summary>
    private async Task ReleaseAsync(Guid executionId, bool final)
    {
        foreach (var executor in _executors.Values)
            await executor.ReleaseAsync(executionId, final).ConfigureAwait(false);
    }

    private async Task<ExecutionOutcome> DryRunAsync(Run run)
    {
        foreach (var preview in Preview(run.Plan))
            await run.RecordAsync(new StepSkipped(preview.StepId, run.Mask("dry run: would " + preview.Text))).ConfigureAwait(false);
        return await run.FinishAsync(ExecutionStatus.Succeeded, null, "dry run: nothing was run", false).ConfigureAwait(false);
    }

    /// <summary>
    /// What each step of <paramref name="plan"/> (from <see cref="ExecutionPlan.StartAt"/>) would do — the dry run's words,
    /// rendered with the plan's values (an output no step has produced yet shows as <c>&lt;steps.…&gt;</c>) and masked.
    /// Runs nothing and records nothing.
    /// </summary>
    public IReadOnlyList<StepPreview> Preview(ExecutionPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var masker = SecretMasker.For(plan);
        var values = new StepTemplateValues(plan.Parameters, plan.PriorOutputs ?? new Dictionary<string, IReadOnlyDictionary<string, string>>());
        var steps = plan.Runbook.Steps;
        var previews = new List<StepPreview>(steps.Count);
        for (var index = Math.Max(0, plan.StartAt); index < steps.Count; index++)
        {
            var step = steps[index];
            previews.Add(new StepPreview(step.Id, step.Name, step.Action, masker.Apply(Describe(step, values))));
        }
        return previews.AsReadOnly();
    }

    /// <summary>What a step would do, in words (unmasked: the caller masks).</summary>
    private string Describe(StepDefinition step, StepTemplateValues values)
    {
        var what = step.Details switch
        {
            ShellAction shell => "run " + ShellQuoting.RenderForDisplay(shell.Run, reference => ValueForPeople(reference, values)),
            HttpAction http => $"send {http.Method} {RenderForPeople(http.Url, values)}",
            WaitAction wait => $"wait {DurationParser.Format(wait.Duration)}",
            ManualAction manual => $"wait for {manual.Role} to continue: {RenderForPeople(manual.Instructions, values)}",
            LambdaAction lambda => $"invoke the Lambda function {RenderForPeople(lambda.Function, values)}"
                + (lambda.Qualifier is { } qualifier ? $":{RenderForPeople(qualifier, values)}" : ""),
            SsmAction ssm => $"send the SSM command {RenderForPeople(ssm.Document, values)} to "
                + (ssm.Targets.Count == 0 ? "no targets" : string.Join(", ", ssm.Targets.Select(t => $"{RenderForPeople(t.Key, values)}={string.Join(",", t.Value.Select(v => RenderForPeople(v, values)))}"))),
            SsmAutomationAction automation => $"start the SSM automation {RenderForPeople(automation.Document, values)}",
            _ => $"run the {step.Action} action",
        };
        return step.Details is ManualAction || _executors.ContainsKey(step.Action) ? what : $"{what} ({NoExecutor(step.Action)})";
    }

    /// <summary>A template's value in a text shown to people; an output of a step that has not run shows as <c>&lt;expression&gt;</c>.</summary>
    private static string ValueForPeople(TemplateReference reference, StepTemplateValues values)
    {
        try
        {
            return values.Resolve(reference);
        }
        catch (StepTemplateException)
        {
            return $"<{reference.Expression}>";
        }
    }

    /// <summary>Renders a text shown to people (never run): templates as raw text, see <see cref="ValueForPeople"/>. Unmasked.</summary>
    private static string RenderForPeople(string text, StepTemplateValues values) =>
        TemplateReferences.Replace(text, reference => ValueForPeople(reference, values));

    /// <summary>
    /// A manual step of the run. With the decision on it in the plan it records the step's end — StepSucceeded on
    /// continue, StepFailed on abort or time-out — and answers how it ended, for the caller to go on as after any step.
    /// Without one it records StepStarted and StepWaitingForInput and answers <c>null</c>: the run is suspended.
    /// </summary>
    private static async Task<StepRun?> ManualStepAsync(Run run, StepDefinition step)
    {
        var manual = step.Manual ?? throw new InvalidOperationException($"the manual step '{step.Id}' has no {nameof(ManualAction)} details");
        if (run.Plan.Input is not { } input || input.StepId != step.Id)
        {
            await run.RecordAsync(new StepStarted(step.Id, 1)).ConfigureAwait(false);
            var timeoutMs = step.Timeout is { } timeout ? (long)Math.Round(timeout.TotalMilliseconds) : (long?)null;
            var instructions = run.Mask(RenderForPeople(manual.Instructions, run.Values));
            await run.RecordAsync(new StepWaitingForInput(step.Id, instructions, manual.Role, timeoutMs)).ConfigureAwait(false);
            return null;
        }

        if (input.Decision == ManualDecision.Continue)
        {
            var none = new Dictionary<string, string>(StringComparer.Ordinal).AsReadOnly();
            await run.RecordAsync(new StepSucceeded(step.Id, 1, none, DurationMs: 0)).ConfigureAwait(false);
            return new StepRun(Ending.Succeeded, "", none);
        }

        var (reason, timedOut) = input.Decision switch
        {
            ManualDecision.Abort => ($"aborted by {input.By}" + (string.IsNullOrWhiteSpace(input.Comment) ? "" : $": {input.Comment}"), false),
            ManualDecision.TimedOut => (step.Timeout is { } limit ? $"no one continued it within {DurationParser.Format(limit)}" : "no one continued it in time", true),
            _ => throw new InvalidOperationException($"the plan's input for step '{step.Id}' holds {input.Decision}, which is not a decision on a manual step"),
        };
        var masked = run.Mask(reason);
        await run.RecordAsync(new StepFailed(step.Id, 1, masked, timedOut, ExitCode: null)).ConfigureAwait(false);
        return new StepRun(Ending.Failed, masked) { TimedOut = timedOut };
    }

    private static string NoExecutor(string action) => $"no executor for action '{action}' is configured on this node";

    private async Task<ExecutionOutcome> FailedAsync(Run run, StepDefinition step, string reason, ExecutionControl control, CancellationToken shutdown)
    {
        var failure = $"step '{step.Id}' failed: {reason}";
        var rollback = await RollBackAsync(run, failure, control, shutdown).ConfigureAwait(false);
        if (rollback.Interrupted)
            return await run.FinishAsync(ExecutionStatus.Interrupted, step.Id, failure + "; the node stopped during the rollback", rollback.Performed).ConfigureAwait(false);
        return await run.FinishAsync(ExecutionStatus.Failed, step.Id, failure + rollback.Describe(), rollback.Performed).ConfigureAwait(false);
    }

    private async Task<ExecutionOutcome> CancelledAsync(Run run, ExecutionControl control, string? stepId, CancellationToken shutdown)
    {
        var reason = CancelReason(control);
        if (!control.RollbackOnCancel)
            return await run.FinishAsync(ExecutionStatus.Cancelled, stepId, reason, false).ConfigureAwait(false);
        var rollback = await RollBackAsync(run, reason, control, shutdown).ConfigureAwait(false);
        if (rollback.Interrupted)
            return await run.FinishAsync(ExecutionStatus.Interrupted, stepId, reason + "; the node stopped during the rollback", rollback.Performed).ConfigureAwait(false);
        // A rollback stopped half-way leaves the system neither as it was nor as the run would have left it: that is a failure.
        var status = rollback.StoppedBy is null ? ExecutionStatus.Cancelled : ExecutionStatus.Failed;
        return await run.FinishAsync(status, stepId, reason + rollback.Describe(), rollback.Performed).ConfigureAwait(false);
    }

    private static string CancelReason(ExecutionControl control) => $"cancelled by {control.CancelledBy ?? "an operator"}";

    private sealed record RollbackResult(bool Performed, List<string> Failed, bool Interrupted)
    {
        /// <summary>Who stopped the rollback (a second cancel), when someone did.</summary>
        public string? StoppedBy { get; init; }

        /// <summary>The steps whose rollback did not run because the rollback was stopped.</summary>
        public IReadOnlyList<string> NotRun { get; init; } = [];

        public string Describe()
        {
            var text = Failed.Count == 0 ? "" : $"; the rollback of {Names(Failed)} failed";
            if (StoppedBy is not null)
                text += $"; the rollback was cancelled by {StoppedBy}" + (NotRun.Count == 0 ? "" : $", so {Names(NotRun)} {(NotRun.Count == 1 ? "was" : "were")} not rolled back");
            return text;
        }

        private static string Names(IEnumerable<string> ids) => string.Join(", ", ids.Select(id => $"'{id}'"));
    }

    /// <summary>
    /// Runs the rollbacks of the succeeded steps, the last succeeded first; a failed rollback does not stop the others,
    /// <paramref name="control"/>'s <see cref="ExecutionControl.StopRollback"/> does.
    /// </summary>
    private async Task<RollbackResult> RollBackAsync(Run run, string reason, ExecutionControl? control, CancellationToken shutdown)
    {
        var steps = run.SucceededSteps
            .Reverse()
            .Select(run.Plan.Runbook.FindStep)
            .Where(step => step?.Rollback is not null)
            .Select(step => step!)
            .ToList();
        var failed = new List<string>();
        if (steps.Count == 0)
            return new RollbackResult(false, failed, false);

        await run.RecordAsync(new RollbackStarted(run.Mask(reason))).ConfigureAwait(false);
        var stopper = control is null ? Stopper.None : new Stopper(control.RollbackStopToken, () => $"the rollback was cancelled by {control.RollbackStoppedBy ?? "an operator"}");
        for (var index = 0; index < steps.Count; index++)
        {
            var step = steps[index];
            if (shutdown.IsCancellationRequested)
                return new RollbackResult(true, failed, true);
            if (control?.RollbackStopToken.IsCancellationRequested == true)
                return new RollbackResult(true, failed, false) { StoppedBy = control.RollbackStoppedBy, NotRun = [.. steps.Skip(index).Select(s => s.Id)] };
            await run.RecordAsync(new RollbackStepStarted(step.Id)).ConfigureAwait(false);
            var result = await RunStepAsync(run, step.Rollback!, rollback: true, stopper, control?.StopToken ?? CancellationToken.None, shutdown).ConfigureAwait(false);
            if (result.Ending == Ending.Succeeded)
            {
                await run.RecordAsync(new RollbackStepSucceeded(step.Id)).ConfigureAwait(false);
                continue;
            }
            await run.RecordAsync(new RollbackStepFailed(step.Id, run.Mask(result.Reason))).ConfigureAwait(false);
            if (result.Ending == Ending.Interrupted)
                return new RollbackResult(true, failed, true);
            failed.Add(step.Id);
            if (result.Ending == Ending.Cancelled)
                return new RollbackResult(true, failed, false) { StoppedBy = control!.RollbackStoppedBy, NotRun = [.. steps.Skip(index + 1).Select(s => s.Id)] };
        }
        return new RollbackResult(true, failed, false);
    }

    private const string Stopped = "stopped";

    /// <summary>What stops a running step at an operator's request, and the words for it.</summary>
    private sealed record Stopper(CancellationToken Token, Func<string> Reason)
    {
        public static Stopper None { get; } = new(CancellationToken.None, () => "stopped");
    }

    private enum Ending
    {
        Succeeded,
        Failed,
        Cancelled,
        Interrupted,
    }

    private sealed record StepRun(Ending Ending, string Reason, IReadOnlyDictionary<string, string>? Outputs = null)
    {
        public bool TimedOut { get; init; }
        public int? ExitCode { get; init; }
        public int? HttpStatus { get; init; }

        /// <summary>Trying again cannot help (no executor, a template without a value).</summary>
        public bool Final { get; init; }
    }

    /// <summary>
    /// Runs a step with its retries. A step of the run records StepStarted, StepRetrying and its end (StepSucceeded or
    /// StepFailed); a rollback (<paramref name="rollback"/>) records only its output and retries, under its own id —
    /// RollBackAsync records its start and end.
    /// </summary>
    private async Task<StepRun> RunStepAsync(Run run, StepDefinition step, bool rollback, Stopper stopper, CancellationToken stop, CancellationToken shutdown)
    {
        var cancel = stopper.Token;
        var attempts = Math.Max(1, step.Retry?.Attempts ?? 1);
        for (var attempt = 1; ; attempt++)
        {
            if (!rollback)
                await run.RecordAsync(new StepStarted(step.Id, attempt)).ConfigureAwait(false);
            var start = _time.GetTimestamp();
            var result = await RunAttemptAsync(run, step, attempt, stopper, shutdown).ConfigureAwait(false);
            if (result.Ending == Ending.Succeeded)
            {
                if (!rollback)
                {
                    var masked = result.Outputs!.ToDictionary(o => o.Key, o => run.Mask(o.Value), StringComparer.Ordinal);
                    var duration = (long)Math.Round(_time.GetElapsedTime(start).TotalMilliseconds);
                    // Durable with what follows (the next step's start or skip, or the run's end): one commit, not two.
                    await run.RecordAsync(new StepSucceeded(step.Id, attempt, masked, duration) { RawOutputs = result.Outputs }, withNext: true).ConfigureAwait(false);
                }
                return result;
            }

            if (result.Ending == Ending.Failed && attempt < attempts && !result.Final)
            {
                var delay = RetryDelay(step.Retry!, attempt);
                using var pause = CancellationTokenSource.CreateLinkedTokenSource(cancel, stop, shutdown);
                // The timer starts before the event is recorded, so whoever sees the event may move a fake clock on.
                var waiting = Task.Delay(delay, _time, pause.Token);
                await run.RecordAsync(new StepRetrying(step.Id, attempt, attempt + 1, delay, run.Mask(result.Reason))).ConfigureAwait(false);
                try
                {
                    await waiting.ConfigureAwait(false);
                    continue;
                }
                catch (OperationCanceledException)
                {
                    result = cancel.IsCancellationRequested
                        ? result with { Ending = Ending.Cancelled, Reason = $"{stopper.Reason()} while it waited to retry" }
                        : result with { Ending = Ending.Interrupted, Reason = "the node stopped while the step was waiting to retry" };
                }
            }

            if (!rollback)
            {
                await run.RecordAsync(result.Ending == Ending.Cancelled
                        ? new StepCancelled(step.Id, attempt, run.Mask(result.Reason), result.ExitCode)
                        : new StepFailed(step.Id, attempt, run.Mask(result.Reason), result.TimedOut, result.ExitCode) { HttpStatus = result.HttpStatus })
                    .ConfigureAwait(false);
            }
            return result;
        }
    }

    private async Task<StepRun> RunAttemptAsync(Run run, StepDefinition step, int attempt, Stopper stopper, CancellationToken shutdown)
    {
        if (step.Action == StepActions.Manual) // only a rollback gets here, and the validator refuses a manual rollback
            return new StepRun(Ending.Failed, "a rollback cannot be a manual step: a rollback runs unattended") { Final = true };
        if (!_executors.TryGetValue(step.Action, out var executor))
            return new StepRun(Ending.Failed, NoExecutor(step.Action)) { Final = true };

        var cancel = stopper.Token;
        // The node stopped (or was fenced off) while the step's start was being recorded: the step must not start now.
        if (shutdown.IsCancellationRequested)
            return new StepRun(Ending.Interrupted, "the node stopped before the step started");
        var limit = step.Timeout ?? (step.Action == StepActions.Wait ? null : _options.DefaultStepTimeout);
        using var timeout = limit is { } span ? new CancellationTokenSource(ExecutionOptions.ClampTimer(span), _time) : null;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancel, shutdown, timeout?.Token ?? CancellationToken.None);
        var sink = new OutputSink(run, step.Id, _options.MaxOutputBytesPerStep);
        var context = new StepContext(run.Plan.ExecutionId, step, attempt, false, run.Values, sink.WriteAsync)
        {
            MaxOutputBytes = _options.MaxOutputBytesPerStep,
        };

        StepResult result;
        try
        {
            result = await executor.ExecuteAsync(context, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (linked.IsCancellationRequested)
        {
            result = new StepResult(false, "", Error: Stopped);
        }
        catch (StepTemplateException ex)
        {
            return new StepRun(Ending.Failed, ex.Message) { Final = true };
        }
        catch (Exception ex) when (sink.JournalFailure is null)
        {
            result = new StepResult(false, "", Error: $"the {step.Action} executor failed: {ex.GetType().Name}: {ex.Message}");
        }
        finally
        {
            sink.Close();
        }
        sink.JournalFailure?.Throw();

        var ran = new StepRun(Ending.Failed, "") { ExitCode = result.ExitCode, HttpStatus = result.HttpStatus };
        if (!result.Succeeded && linked.IsCancellationRequested)
        {
            // How the executor stopped it (shell steps: SIGTERM, or SIGKILL after the grace period).
            var how = result.StopSignal is { } signal ? "; " + signal : "";
            if (cancel.IsCancellationRequested)
                return ran with { Ending = Ending.Cancelled, Reason = stopper.Reason() + how };
            if (shutdown.IsCancellationRequested)
                return ran with { Ending = Ending.Interrupted, Reason = "the node shut down while the step was running" + how };
            return ran with { Reason = $"timed out after {DurationParser.Format(limit!.Value)}" + how, TimedOut = true };
        }

        var (outputs, problem) = StepChecks.Evaluate(step, result, run.Values, _options.RegexTimeout);
        return problem is null
            ? ran with { Ending = Ending.Succeeded, Outputs = outputs }
            : ran with { Reason = problem, TimedOut = result.TimedOut };
    }

    private TimeSpan RetryDelay(RetryPolicy retry, int attempt)
    {
        double random;
        if (_seeded is null)
        {
            random = Random.Shared.NextDouble();
        }
        else
        {
            lock (_randomLock)
                random = _seeded.NextDouble();
        }
        var ticks = retry.Backoff.Ticks * Math.Pow(2, attempt - 1) * (1 + _options.RetryJitterFraction * random);
        return ExecutionOptions.ClampTimer(TimeSpan.FromTicks((long)Math.Min(ticks, _options.MaxRetryDelay.Ticks)));
    }

    /// <summary>The state of one run: its values, outputs, succeeded steps, and the journal it writes to (one event at a time).</summary>
    private sealed class Run
    {
        private readonly IExecutionJournal _journal;
        private readonly SecretMasker _masker;
        private readonly SemaphoreSlim _gate = new(1, 1);
        private readonly Dictionary<string, IReadOnlyDictionary<string, string>> _outputs = new(StringComparer.Ordinal);
        private readonly List<string> _succeeded = [];

        public Run(ExecutionPlan plan, IExecutionJournal journal)
        {
            Plan = plan;
            _journal = journal;
            _masker = SecretMasker.For(plan);
            foreach (var (stepId, outputs) in plan.PriorOutputs ?? new Dictionary<string, IReadOnlyDictionary<string, string>>())
                _outputs[stepId] = outputs;
            _succeeded.AddRange(plan.PriorSucceeded ?? []);
            Values = new StepTemplateValues(plan.Parameters, _outputs)
            {
                NumericParameters = plan.Runbook.Parameters
                    .Where(p => p.Type is ParameterType.Int or ParameterType.Bool)
                    .Select(p => p.Name)
                    .ToHashSet(StringComparer.Ordinal),
            };
        }

        public ExecutionPlan Plan { get; }

        public StepTemplateValues Values { get; }

        public IEnumerable<string> SucceededSteps => _succeeded;

        public string Mask(string text) => _masker.Apply(text);

        public void Succeeded(string stepId, IReadOnlyDictionary<string, string> outputs)
        {
            _outputs[stepId] = outputs;
            _succeeded.Remove(stepId);
            _succeeded.Add(stepId);
        }

        /// <summary>
        /// Records an event; events are recorded one at a time, whatever the thread (stdout and stderr arrive at once).
        /// With <paramref name="withNext"/>, it is made durable with the next event (see <see cref="IExecutionJournal.RecordWithNextAsync"/>):
        /// only for an event after which the runner records another before it starts anything.
        /// </summary>
        public async Task RecordAsync(ExecutionEvent executionEvent, bool withNext = false)
        {
            await _gate.WaitAsync().ConfigureAwait(false);
            try
            {
                // Never cancelled: the record must be complete even when the run is being stopped.
                await (withNext
                    ? _journal.RecordWithNextAsync(executionEvent, CancellationToken.None)
                    : _journal.RecordAsync(executionEvent, CancellationToken.None)).ConfigureAwait(false);
            }
            finally
            {
                _gate.Release();
            }
        }

        public async Task<ExecutionOutcome> FinishAsync(ExecutionStatus status, string? failedStepId, string? reason, bool rolledBack)
        {
            var masked = reason is null ? null : Mask(reason);
            await RecordAsync(new ExecutionFinished(status, failedStepId, masked, rolledBack)).ConfigureAwait(false);
            return new ExecutionOutcome(status, failedStepId, masked, rolledBack);
        }
    }

    /// <summary>One attempt's output on its way to the journal: masked, and capped with a visible marker.</summary>
    private sealed class OutputSink(Run run, string stepId, int limit)
    {
        private readonly Lock _lock = new();
        private long _bytes;
        private bool _truncated;
        private bool _closed;

        public ExceptionDispatchInfo? JournalFailure { get; private set; }

        public void Close()
        {
            lock (_lock)
                _closed = true;
        }

        public async ValueTask WriteAsync(string stream, string line)
        {
            bool marker;
            lock (_lock)
            {
                if (_closed || _truncated)
                    return;
                _bytes += Encoding.UTF8.GetByteCount(line) + 1;
                marker = _truncated = _bytes > limit;
            }
            try
            {
                if (!marker)
                {
                    await run.RecordAsync(new StepOutput(stepId, stream, run.Mask(line))).ConfigureAwait(false);
                    return;
                }
                await run.RecordAsync(new StepOutput(stepId, stream,
                    $"[output truncated: this attempt wrote more than {limit} bytes; the rest is not recorded]")).ConfigureAwait(false);
                await run.RecordAsync(new StepOutputTruncated(stepId, limit)).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                JournalFailure ??= ExceptionDispatchInfo.Capture(ex);
                throw;
            }
        }
    }
}
