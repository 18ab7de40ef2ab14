using System.Globalization;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Tests.Execution;

/// <summary>
/// A manual step is a suspended execution: the run records that it waits and returns; the host runs the plan again
/// from that step with the decision (continue, abort, timed out) and the run goes on from there.
/// </summary>
public sealed class ManualStepTests : ScratchFolder
{
    private const string Secret = "s3cr3t-t0ken";

    private static readonly Dictionary<string, string> Values = new() { ["service"] = "web", ["token"] = Secret };

    private const string Parameters = """
        service: { type: string }
        token: { type: secret }
        """;

    private static async Task<(ExecutionOutcome Outcome, EventLog Log)> RunAsync(ExecutionRunner runner, ExecutionPlan plan, ExecutionControl? control = null)
    {
        var log = new EventLog();
        using var own = new ExecutionControl();
        var outcome = await runner.RunAsync(plan, log, control ?? own, CancellationToken.None).WaitAsync(EventLog.Patience);
        return (outcome, log);
    }

    /// <summary>The plan the host runs once the decision on <paramref name="stepId"/> is in: from that step, with what ran before.</summary>
    private static ExecutionPlan Decided(ExecutionPlan first, EventLog firstLog, string stepId, ManualDecision decision, string by = "alice", string? comment = null)
    {
        var succeeded = firstLog.All<StepSucceeded>();
        return first with
        {
            StartAt = first.Runbook.Steps.ToList().FindIndex(s => s.Id == stepId),
            PriorOutputs = succeeded.ToDictionary(s => s.StepId!, s => s.Outputs),
            PriorSucceeded = [.. succeeded.Select(s => s.StepId!)],
            Input = new ManualInput(stepId, decision, by, comment),
        };
    }

    [Fact]
    public async Task ReachingAManualStep_RecordsThatItWaits_WithRenderedMaskedInstructions_AndRunsNothingAfter()
    {
        var marker = Path.Combine(Folder, "after.marker");
        var runbook = Engine.Runbook("""
            - id: build
              action: shell
              run: echo "shell=$$ version=1.2.3"
              outputs: { version: 'version=(\S+)' }
            - id: verify
              name: Watch dashboards
              action: manual
              instructions: "Check {{ service }} at {{ steps.build.outputs.version }} (token {{ token }}), then continue."
              role: Approver
              timeout: 30m
            - id: after
              action: shell
              run: touch MARKER
            """.Replace("MARKER", marker, StringComparison.Ordinal), Parameters);

        var (outcome, log) = await RunAsync(Engine.Runner(Folder), Engine.Plan(runbook, Values));

        Assert.Equal(new ExecutionOutcome(ExecutionStatus.WaitingForInput, null, null, false), outcome);
        Assert.Equal(["execution_started", "step_started", "step_output", "step_succeeded", "step_started", "step_waiting_for_input"], log.Kinds);
        Assert.Equal(("verify", 1), (log.All<StepStarted>()[^1].StepId, log.All<StepStarted>()[^1].Attempt));
        var waiting = Assert.Single(log.All<StepWaitingForInput>());
        Assert.Equal(new StepWaitingForInput("verify", "Check web at 1.2.3 (token ***), then continue.", "Approver", 1_800_000), waiting);
        Assert.Equal("step_waiting_for_input", waiting.Kind);
        Assert.Equal("""{"instructions":"Check web at 1.2.3 (token ***), then continue.","role":"Approver","timeoutMs":1800000}""", Engine.DataJson(waiting));
        Assert.Empty(log.All<ExecutionFinished>());
        Assert.False(File.Exists(marker));
        Assert.DoesNotContain(log.Events, e => Engine.DataJson(e).Contains(Secret, StringComparison.Ordinal));

        // No shell is held while the run waits: the execution's shell ended with the run.
        var shell = int.Parse(log.Output("build").Split(' ')[0]["shell=".Length..], CultureInfo.InvariantCulture);
        Assert.True(await Processes.WaitGoneAsync(shell), $"the shell {shell} outlived the run that waits for input");
    }

    [Fact]
    public async Task AManualStepWithoutTimeoutOrRole_WaitsForAnOperator_WithoutTimeout()
    {
        var runbook = Engine.Runbook("""
            - id: gate
              action: manual
              instructions: Go?
            """);

        var (outcome, log) = await RunAsync(Engine.Runner(Folder), Engine.Plan(runbook));

        Assert.Equal(ExecutionStatus.WaitingForInput, outcome.Status);
        Assert.Equal(new StepWaitingForInput("gate", "Go?", "Operator", null), Assert.Single(log.All<StepWaitingForInput>()));
        Assert.Equal("""{"instructions":"Go?","role":"Operator","timeoutMs":null}""", Engine.DataJson(log.All<StepWaitingForInput>()[0]));
    }

    [Fact]
    public async Task Continue_RecordsTheStepsSuccess_AndTheRunGoesOnToSucceed()
    {
        var marker = Path.Combine(Folder, "after.marker");
        var runbook = Engine.Runbook("""
            - id: build
              action: shell
              run: echo "version=1.2.3"
              outputs: { version: 'version=(\S+)' }
            - id: verify
              action: manual
              instructions: Look at {{ steps.build.outputs.version }}.
            - id: after
              action: shell
              run: touch MARKER; echo "after {{ steps.build.outputs.version }}"
            """.Replace("MARKER", marker, StringComparison.Ordinal));
        var runner = Engine.Runner(Folder);
        var plan = Engine.Plan(runbook);
        var (_, first) = await RunAsync(runner, plan);

        var (outcome, log) = await RunAsync(runner, Decided(plan, first, "verify", ManualDecision.Continue));

        Assert.Equal(new ExecutionOutcome(ExecutionStatus.Succeeded, null, null, false), outcome);
        Assert.Equal(1, Assert.Single(log.All<ExecutionStarted>()).StartAt);
        Assert.Equal(["execution_started", "step_succeeded", "step_started", "step_output", "step_succeeded", "execution_finished"], log.Kinds);
        var continued = log.All<StepSucceeded>()[0];
        Assert.Equal(("verify", 1, 0L), (continued.StepId, continued.Attempt, continued.DurationMs));
        Assert.Empty(continued.Outputs);
        Assert.Empty(log.All<StepWaitingForInput>());
        Assert.True(File.Exists(marker));
        Assert.Equal("after 1.2.3", log.Output("after"));
    }

    [Fact]
    public async Task AContinuedManualStep_IsRolledBack_WhenALaterRequiredStepFails()
    {
        var runbook = Engine.Runbook("""
            - id: one
              action: shell
              run: echo one
              rollback: { action: shell, run: echo undo-one >> rollback.log }
            - id: gate
              action: manual
              instructions: Open the gate.
              rollback: { action: shell, run: echo undo-gate >> rollback.log }
            - id: broken
              action: shell
              run: exit 4
            """);
        var runner = Engine.Runner(Folder);
        var plan = Engine.Plan(runbook);
        var (_, first) = await RunAsync(runner, plan);

        var (outcome, log) = await RunAsync(runner, Decided(plan, first, "gate", ManualDecision.Continue));

        Assert.Equal(new ExecutionOutcome(ExecutionStatus.Failed, "broken", "step 'broken' failed: exited with code 4", true), outcome);
        Assert.Equal(["gate", "one"], log.All<RollbackStepSucceeded>().Select(e => e.StepId));
        Assert.Equal(["undo-gate", "undo-one"], File.ReadAllLines(Path.Combine(Folder, "rollback.log")));
    }

    [Fact]
    public async Task AbortOfARequiredManualStep_RollsBackTheSucceededSteps_AndTheRunFails_NamingWhoAborted()
    {
        var rolledBack = Path.Combine(Folder, "rolled-back.marker");
        var after = Path.Combine(Folder, "after.marker");
        var runbook = Engine.Runbook("""
            - id: prepare
              action: shell
              run: echo prepared
              rollback: { action: shell, run: touch ROLLED_BACK }
            - id: gate
              action: manual
              instructions: Check, then continue or abort.
            - id: after
              action: shell
              run: touch AFTER
            """.Replace("ROLLED_BACK", rolledBack, StringComparison.Ordinal).Replace("AFTER", after, StringComparison.Ordinal), Parameters);
        var runner = Engine.Runner(Folder);
        var plan = Engine.Plan(runbook, Values);
        var (_, first) = await RunAsync(runner, plan);
        Assert.False(File.Exists(rolledBack));

        var (outcome, log) = await RunAsync(runner, Decided(plan, first, "gate", ManualDecision.Abort, "alice", $"error rate too high, token {Secret}"));

        Assert.Equal(new ExecutionOutcome(ExecutionStatus.Failed, "gate", "step 'gate' failed: aborted by alice: error rate too high, token ***", true), outcome);
        var failed = Assert.Single(log.All<StepFailed>());
        Assert.Equal(new StepFailed("gate", 1, "aborted by alice: error rate too high, token ***", TimedOut: false, ExitCode: null), failed);
        Assert.True(File.Exists(rolledBack), "the rollback of the step that succeeded before the abort did not run");
        Assert.Equal("prepare", Assert.Single(log.All<RollbackStepSucceeded>()).StepId);
        Assert.False(File.Exists(after));
        Assert.DoesNotContain(log.All<StepStarted>(), s => s.StepId == "after");
        Assert.Equal(outcome.Reason, Assert.Single(log.All<ExecutionFinished>()).Reason);
        Assert.DoesNotContain(log.Events, e => Engine.DataJson(e).Contains(Secret, StringComparison.Ordinal));
    }

    [Fact]
    public async Task AbortOfAnOptionalManualStep_LetsTheRunGoOn_AndTheEndSaysSo()
    {
        var after = Path.Combine(Folder, "after.marker");
        var runbook = Engine.Runbook("""
            - id: gate
              action: manual
              instructions: Optional look.
              required: false
            - id: after
              action: shell
              run: touch AFTER
            """.Replace("AFTER", after, StringComparison.Ordinal));
        var runner = Engine.Runner(Folder);
        var plan = Engine.Plan(runbook);
        var (_, first) = await RunAsync(runner, plan);

        var (outcome, log) = await RunAsync(runner, Decided(plan, first, "gate", ManualDecision.Abort, "bob"));

        Assert.Equal(new ExecutionOutcome(ExecutionStatus.Succeeded, null, "the optional step 'gate' failed (aborted by bob); the run went on", false), outcome);
        Assert.Equal(new StepFailed("gate", 1, "aborted by bob", false, null), Assert.Single(log.All<StepFailed>()));
        Assert.True(File.Exists(after));
        Assert.Empty(log.All<RollbackStarted>());
    }

    [Theory]
    [InlineData("timeout: 30m", "no one continued it within 30m")]
    [InlineData("timeout: 1h30m", "no one continued it within 1h30m")]
    [InlineData("", "no one continued it in time")]
    public async Task TimedOut_FailsTheStepAsTimedOut(string timeout, string reason)
    {
        var runbook = Engine.Runbook("""
            - id: gate
              action: manual
              instructions: Decide.
              TIMEOUT
            - id: after
              action: shell
              run: echo after
            """.Replace("TIMEOUT", timeout, StringComparison.Ordinal));
        var runner = Engine.Runner(Folder);
        var plan = Engine.Plan(runbook);
        var (_, first) = await RunAsync(runner, plan);

        var (outcome, log) = await RunAsync(runner, Decided(plan, first, "gate", ManualDecision.TimedOut, "system"));

        Assert.Equal(new ExecutionOutcome(ExecutionStatus.Failed, "gate", $"step 'gate' failed: {reason}", false), outcome);
        Assert.Equal(new StepFailed("gate", 1, reason, TimedOut: true, ExitCode: null), Assert.Single(log.All<StepFailed>()));
        Assert.True(Engine.Data(log.All<StepFailed>()[0]).GetProperty("timedOut").GetBoolean());
        Assert.DoesNotContain(log.All<StepStarted>(), s => s.StepId == "after");
    }

    [Fact]
    public async Task TheDecisionOnOneManualStep_LeavesTheNextManualStepWaiting()
    {
        var runbook = Engine.Runbook("""
            - id: first
              action: manual
              instructions: First look.
            - id: between
              action: shell
              run: echo between
            - id: second
              action: manual
              instructions: Second look.
            """);
        var runner = Engine.Runner(Folder);
        var plan = Engine.Plan(runbook);
        var (_, firstLog) = await RunAsync(runner, plan);

        var (outcome, log) = await RunAsync(runner, Decided(plan, firstLog, "first", ManualDecision.Continue));

        Assert.Equal(new ExecutionOutcome(ExecutionStatus.WaitingForInput, null, null, false), outcome);
        Assert.Equal(["first", "between"], log.All<StepSucceeded>().Select(s => s.StepId));
        Assert.Equal("second", Assert.Single(log.All<StepWaitingForInput>()).StepId);
        Assert.Empty(log.All<ExecutionFinished>());
    }

    [Fact]
    public async Task ACancelOrAStop_BeforeAManualStep_EndsTheRunWithoutWaiting()
    {
        var runbook = Engine.Runbook("""
            - id: gate
              action: manual
              instructions: Decide.
            """);
        var runner = Engine.Runner(Folder);

        using var cancelled = new ExecutionControl();
        cancelled.Cancel("dave", rollback: false);
        var (outcome, log) = await RunAsync(runner, Engine.Plan(runbook), cancelled);
        Assert.Equal(new ExecutionOutcome(ExecutionStatus.Cancelled, null, "cancelled by dave", false), outcome);
        Assert.Equal(["execution_started", "execution_finished"], log.Kinds);

        using var stopped = new ExecutionControl();
        stopped.RequestStop();
        (outcome, log) = await RunAsync(runner, Engine.Plan(runbook), stopped);
        Assert.Equal(new ExecutionOutcome(ExecutionStatus.Interrupted, "gate", "the node stopped before step 'gate' started", false), outcome);
        Assert.Empty(log.All<StepWaitingForInput>());
    }

    [Fact]
    public async Task Preview_SaysWhatEachStepWouldDo_Masked_AndTheDryRunSaysTheSame()
    {
        var runbook = Engine.Runbook("""
            - id: deploy
              name: Deploy
              action: shell
              run: ./deploy.sh {{ service }} --token {{ token }}
              outputs: { version: 'version=(\S+)' }
            - id: call
              action: http
              method: POST
              url: "https://example.com/hooks/{{ service }}?key={{ token }}"
            - id: pause
              action: wait
              duration: 2m
            - id: verify
              name: Watch dashboards
              action: manual
              instructions: "Watch {{ service }} {{ steps.deploy.outputs.version }} (key {{ token }})."
              role: Approver
            - id: remote
              action: lambda
              function: check
            """, Parameters);
        var runner = Engine.Runner(Folder);
        var plan = Engine.Plan(runbook, Values);

        var preview = runner.Preview(plan);

        Assert.Equal(
            [
                new StepPreview("deploy", "Deploy", "shell", "run ./deploy.sh 'web' --token '***'"),
                new StepPreview("call", "call", "http", "send POST https://example.com/hooks/web?key=***"),
                new StepPreview("pause", "pause", "wait", "wait 2m"),
                new StepPreview("verify", "Watch dashboards", "manual", "wait for Approver to continue: Watch web <steps.deploy.outputs.version> (key ***)."),
                new StepPreview("remote", "remote", "lambda", "invoke the Lambda function check (no executor for action 'lambda' is configured on this node)"),
            ],
            preview);

        var (outcome, log) = await RunAsync(runner, plan with { DryRun = true });
        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal(preview.Select(p => "dry run: would " + p.Text), log.All<StepSkipped>().Select(s => s.Reason));
        Assert.Equal(preview.Select(p => p.StepId), log.All<StepSkipped>().Select(s => s.StepId));
        Assert.Empty(log.All<StepWaitingForInput>());
        Assert.DoesNotContain(log.Events, e => Engine.DataJson(e).Contains(Secret, StringComparison.Ordinal));
    }

    [Fact]
    public void Preview_StartsWhereThePlanStarts_AndUsesThePriorOutputs()
    {
        var runbook = Engine.Runbook("""
            - id: build
              action: shell
              run: echo version=1
              outputs: { version: 'version=(\S+)' }
            - id: verify
              action: manual
              instructions: Check {{ steps.build.outputs.version }}.
            """);
        var plan = Engine.Plan(runbook) with
        {
            StartAt = 1,
            PriorOutputs = new Dictionary<string, IReadOnlyDictionary<string, string>> { ["build"] = new Dictionary<string, string> { ["version"] = "7.0" } },
        };

        var preview = Engine.Runner(Folder).Preview(plan);

        Assert.Equal([new StepPreview("verify", "verify", "manual", "wait for Operator to continue: Check 7.0.")], preview);
    }

    [Fact]
    public void TheRunner_RefusesAStepExecutorForManualSteps()
    {
        var error = Assert.Throws<ArgumentException>(() => new ExecutionRunner([new ManualExecutor()], TimeProvider.System, new ExecutionOptions()));

        Assert.StartsWith("the runner handles manual steps itself", error.Message, StringComparison.Ordinal);
    }

    private sealed class ManualExecutor : IStepExecutor
    {
        public string Action => StepActions.Manual;

        public Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken) => Task.FromResult(new StepResult(true, ""));
    }
}
