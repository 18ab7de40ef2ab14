using Microsoft.Extensions.Time.Testing;
using RunbookPortal.Engine.Execution;

namespace RunbookPortal.Engine.Tests.Execution;

/// <summary>Run semantics: order, outputs, validation, optional steps, retries, rollback, resume, dry run, stop.</summary>
public sealed class ExecutionRunnerTests : ScratchFolder
{
    private async Task<(ExecutionOutcome Outcome, EventLog Log)> RunAsync(
        string steps, string parameters = "", IReadOnlyDictionary<string, string>? values = null, bool dryRun = false)
    {
        var log = new EventLog();
        using var control = new ExecutionControl();
        var outcome = await Engine.Runner(Folder)
            .RunAsync(Engine.Plan(Engine.Runbook(steps, parameters), values, dryRun), log, control, CancellationToken.None)
            .WaitAsync(EventLog.Patience);
        return (outcome, log);
    }

    [Fact]
    public async Task Outputs_AreCapturedByTheirPattern_AndSubstitutedIntoLaterSteps()
    {
        var (outcome, log) = await RunAsync("""
            - id: build
              action: shell
              run: |
                echo "building"
                echo "version=1.2.3 commit=abc"
              outputs:
                version: 'version=(\S+)'
                whole: 'commit=\w+'
            - id: deploy
              action: shell
              run: echo "deploying {{ steps.build.outputs.version }} ({{ steps.build.outputs.whole }})"
            """);

        Assert.Equal(new ExecutionOutcome(ExecutionStatus.Succeeded, null, null, false), outcome);
        var built = log.All<StepSucceeded>()[0];
        Assert.Equal("build", built.StepId);
        Assert.Equal(new Dictionary<string, string> { ["version"] = "1.2.3", ["whole"] = "commit=abc" }, built.Outputs);
        Assert.Equal("deploying 1.2.3 (commit=abc)", log.Output("deploy"));
    }

    [Fact]
    public async Task AnOutputWhosePatternDoesNotMatch_FailsTheStep()
    {
        var (outcome, log) = await RunAsync("""
            - id: build
              action: shell
              run: echo "no version here"
              outputs: { version: 'version=(\S+)' }
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Contains("the output 'version' was not found", Assert.Single(log.All<StepFailed>()).Reason, StringComparison.Ordinal);
    }

    public static TheoryData<string, string, bool, string?> ValidateCases => new()
    {
        { "echo 'deployment created successfully'", "{ output_contains: created successfully }", true, null },
        { "echo 'deployment failed'", "{ output_contains: created successfully }", false, "the output does not contain \"created successfully\"" },
        { "printf 'a\\nstatus: ok 200\\n'", "{ regex: '^status: ok \\d+$' }", true, null },
        { "echo 'status: degraded'", "{ regex: '^status: ok' }", false, "the output does not match the regular expression ^status: ok" },
        { "exit 3", "{ exit_code: 3 }", true, null },
        { "exit 0", "{ exit_code: 3 }", false, "exited with code 0, and validate expects 3" },
        { "echo done; exit 2", "{ exit_code: 2, output_contains: done }", true, null },
        { "echo nope; exit 2", "{ exit_code: 2, output_contains: done }", false, "the output does not contain \"done\"" },
        { "echo '{\"state\": \"ok\"}'", "{ json: { path: $.state, equals: ok } }", true, null },
    };

    [Theory]
    [MemberData(nameof(ValidateCases))]
    public async Task Validate_DecidesWhetherAStepThatRanSucceeded(string run, string validate, bool succeeds, string? reason)
    {
        var (outcome, log) = await RunAsync($"""
            - id: check
              action: shell
              run: "{run.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal)}"
              validate: {validate}
            """);

        Assert.Equal(succeeds ? ExecutionStatus.Succeeded : ExecutionStatus.Failed, outcome.Status);
        if (reason is not null)
            Assert.Equal(reason, Assert.Single(log.All<StepFailed>()).Reason);
    }

    [Fact]
    public async Task AnOptionalStepsFailure_LetsTheRunGoOn_AndTheEndSaysSo()
    {
        var (outcome, log) = await RunAsync("""
            - id: optional
              action: shell
              run: exit 2
              required: false
            - id: after
              action: shell
              run: echo still running
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal("the optional step 'optional' failed (exited with code 2); the run went on", outcome.Reason);
        Assert.Equal("still running", log.Output("after"));
        Assert.Equal(outcome.Reason, log.All<ExecutionFinished>().Single().Reason);
    }

    [Fact]
    public async Task ARequiredFailure_RollsBackOnlySucceededSteps_InReverseOrder_SkippingStepsWithoutRollback()
    {
        var (outcome, log) = await RunAsync("""
            - id: one
              action: shell
              run: echo one
              rollback: { action: shell, run: echo undo-one >> rollback.log }
            - id: two
              action: shell
              run: echo two
            - id: three
              action: shell
              run: exit 1
              required: false
              rollback: { action: shell, run: echo undo-three >> rollback.log }
            - id: four
              action: shell
              run: echo four
              rollback: { action: shell, run: echo undo-four >> rollback.log }
            - id: five
              action: shell
              run: exit 7
              rollback: { action: shell, run: echo undo-five >> rollback.log }
            - id: six
              action: shell
              run: echo six
              rollback: { action: shell, run: echo undo-six >> rollback.log }
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Equal("five", outcome.FailedStepId);
        Assert.True(outcome.RolledBack);
        Assert.Equal("step 'five' failed: exited with code 7", outcome.Reason);
        Assert.Equal(["four", "one"], log.All<RollbackStepStarted>().Select(e => e.StepId));
        Assert.Equal(["four", "one"], log.All<RollbackStepSucceeded>().Select(e => e.StepId));
        Assert.Equal(["undo-four", "undo-one"], File.ReadAllLines(Path.Combine(Folder, "rollback.log")));
        Assert.DoesNotContain(log.All<StepStarted>(), e => e.StepId == "six");
        Assert.Equal("step 'five' failed: exited with code 7", Assert.Single(log.All<RollbackStarted>()).Reason);

        var kinds = log.Kinds.SkipWhile(k => k != "rollback_started").Where(k => k != "step_output");
        Assert.Equal(["rollback_started", "rollback_step_started", "rollback_step_succeeded", "rollback_step_started", "rollback_step_succeeded", "execution_finished"], kinds);
    }

    [Fact]
    public async Task AFailingRollback_IsReported_TheOthersStillRun_AndTheRunEndsFailedRolledBack()
    {
        var (outcome, log) = await RunAsync("""
            - id: first
              action: shell
              run: echo first
              rollback: { action: shell, run: echo undo-first >> rollback.log }
            - id: second
              action: shell
              run: echo second
              rollback: { action: shell, run: "echo cannot undo; exit 4" }
            - id: third
              action: shell
              run: exit 1
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.True(outcome.RolledBack);
        Assert.Equal("step 'third' failed: exited with code 1; the rollback of 'second' failed", outcome.Reason);
        var failed = Assert.Single(log.All<RollbackStepFailed>());
        Assert.Equal("second", failed.StepId);
        Assert.Equal("exited with code 4", failed.Reason);
        Assert.Equal("cannot undo", log.Output("second.rollback"));
        Assert.Equal(["first"], log.All<RollbackStepSucceeded>().Select(e => e.StepId));
        Assert.Equal(["undo-first"], File.ReadAllLines(Path.Combine(Folder, "rollback.log")));
    }

    [Fact]
    public async Task Retries_HappenTheConfiguredNumberOfTimes_WithDoublingDelays_AndBoundedJitter()
    {
        var time = new FakeTimeProvider();
        var log = new EventLog();
        using var control = new ExecutionControl();
        var options = new ExecutionOptions { RetryJitterFraction = 0.2 };
        var runbook = Engine.Runbook("""
            - id: flaky
              action: shell
              run: echo "try $(date +%N)"; exit 1
              retry: { attempts: 4, backoff: 10s }
            """);

        var running = Engine.Runner(Folder, time, options).RunAsync(Engine.Plan(runbook), log, control, CancellationToken.None);
        var delays = new List<TimeSpan>();
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            var retrying = await log.WaitFor<StepRetrying>(r => r.Attempt == attempt);
            Assert.Equal(attempt + 1, retrying.NextAttempt);
            Assert.Equal("exited with code 1", retrying.Reason);
            var floor = TimeSpan.FromSeconds(10 * Math.Pow(2, attempt - 1));
            Assert.InRange(retrying.Delay, floor, floor * 1.2);
            Assert.Equal(attempt, log.All<StepStarted>().Count); // the next attempt waits for the clock
            delays.Add(retrying.Delay);
            time.Advance(retrying.Delay);
        }
        var outcome = await running.WaitAsync(EventLog.Patience);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Equal([1, 2, 3, 4], log.All<StepStarted>().Select(s => s.Attempt));
        Assert.Equal(4, Assert.Single(log.All<StepFailed>()).Attempt);
        Assert.True(delays[1] > delays[0] && delays[2] > delays[1]);
    }

    [Fact]
    public async Task Retries_WaitNoLongerThanMaxRetryDelay_HoweverLongTheBackoffGrows()
    {
        var time = new FakeTimeProvider();
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook("""
            - id: flaky
              action: shell
              run: exit 1
              retry: { attempts: 4, backoff: 10s }
            """);

        var running = Engine.Runner(Folder, time, new ExecutionOptions { RetryJitterFraction = 0, MaxRetryDelay = TimeSpan.FromSeconds(15) })
            .RunAsync(Engine.Plan(runbook), log, control, CancellationToken.None);
        var delays = new List<TimeSpan>();
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            var retrying = await log.WaitFor<StepRetrying>(r => r.Attempt == attempt);
            delays.Add(retrying.Delay);
            time.Advance(retrying.Delay);
        }
        var outcome = await running.WaitAsync(EventLog.Patience);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Equal([TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(15)], delays); // not 20 s and 40 s
    }

    public static TheoryData<string, ExecutionOptions> OutOfRange => new()
    {
        { "MaxOutputBytesPerStep", new ExecutionOptions { MaxOutputBytesPerStep = 0 } },
        { "MaxOutputBytesPerStep", new ExecutionOptions { MaxOutputBytesPerStep = int.MaxValue } },
        { "RetryJitterFraction", new ExecutionOptions { RetryJitterFraction = -0.1 } },
        { "MaxRetryDelay", new ExecutionOptions { MaxRetryDelay = TimeSpan.Zero } },
        { "DefaultStepTimeout", new ExecutionOptions { DefaultStepTimeout = TimeSpan.FromSeconds(-1) } },
        { "DefaultStepTimeout", new ExecutionOptions { DefaultStepTimeout = TimeSpan.FromDays(365) } },
        { "RegexTimeout", new ExecutionOptions { RegexTimeout = TimeSpan.Zero } },
    };

    [Theory]
    [MemberData(nameof(OutOfRange))]
    public void TheRunner_RefusesOptionsOutOfTheirRange(string setting, ExecutionOptions options)
    {
        var error = Assert.Throws<ArgumentException>(() => new ExecutionRunner([], TimeProvider.System, options));

        Assert.StartsWith("the execution options are out of range:", error.Message, StringComparison.Ordinal);
        Assert.Contains(setting, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Retries_WithoutJitter_WaitExactlyBackoffTimesTwoToTheAttempt_AndStopOnSuccess()
    {
        var time = new FakeTimeProvider();
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook("""
            - id: eventually
              action: shell
              run: |
                n=$(( $(cat count 2>/dev/null || echo 0) + 1 ))
                echo $n > count
                echo "attempt $n"
                [ "$n" -ge 3 ]
              retry: { attempts: 5, backoff: 2s }
            """);

        var running = Engine.Runner(Folder, time, new ExecutionOptions { RetryJitterFraction = 0 })
            .RunAsync(Engine.Plan(runbook), log, control, CancellationToken.None);
        for (var attempt = 1; attempt <= 2; attempt++)
        {
            var retrying = await log.WaitFor<StepRetrying>(r => r.Attempt == attempt);
            Assert.Equal(TimeSpan.FromSeconds(2 * Math.Pow(2, attempt - 1)), retrying.Delay);
            time.Advance(retrying.Delay);
        }
        var outcome = await running.WaitAsync(EventLog.Patience);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal(3, Assert.Single(log.All<StepSucceeded>()).Attempt);
        Assert.Empty(log.All<StepFailed>());
        Assert.Equal("attempt 1\nattempt 2\nattempt 3", log.Output("eventually"));
    }

    [Fact]
    public async Task CancelDuringARetryPause_EndsTheRunCancelled()
    {
        var time = new FakeTimeProvider();
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook("""
            - id: flaky
              action: shell
              run: exit 1
              retry: { attempts: 3, backoff: 1h }
            """);

        var running = Engine.Runner(Folder, time).RunAsync(Engine.Plan(runbook), log, control, CancellationToken.None);
        await log.WaitFor<StepRetrying>();
        control.Cancel("carol", rollback: false);
        var outcome = await running.WaitAsync(EventLog.Patience);

        Assert.Equal(new ExecutionOutcome(ExecutionStatus.Cancelled, "flaky", "cancelled by carol", false), outcome);
        Assert.Equal("cancelled by carol while it waited to retry", Assert.Single(log.All<StepCancelled>()).Reason);
        Assert.Empty(log.All<StepFailed>());
    }

    [Fact]
    public async Task RequestStopDuringARetryPause_InterruptsTheRunAtThatStep()
    {
        var time = new FakeTimeProvider();
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook("""
            - id: flaky
              action: shell
              run: exit 1
              retry: { attempts: 3, backoff: 1h }
            """);

        var running = Engine.Runner(Folder, time).RunAsync(Engine.Plan(runbook), log, control, CancellationToken.None);
        await log.WaitFor<StepRetrying>();
        control.RequestStop();
        var outcome = await running.WaitAsync(EventLog.Patience);

        Assert.Equal(new ExecutionOutcome(ExecutionStatus.Interrupted, "flaky", "the node stopped while the step was waiting to retry", false), outcome);
        Assert.Single(log.All<StepStarted>());
    }

    [Fact]
    public async Task AnActionWithoutExecutor_FailsWithAClearReason_AndIsNotRetried()
    {
        var (outcome, log) = await RunAsync("""
            - id: remote
              action: ssm
              document: AWS-RunShellScript
              targets: { InstanceIds: [i-0abc] }
              retry: { attempts: 3, backoff: 1s }
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Equal("step 'remote' failed: no executor for action 'ssm' is configured on this node", outcome.Reason);
        Assert.Single(log.All<StepStarted>());
        Assert.Empty(log.All<StepRetrying>());
    }

    [Fact]
    public async Task DryRun_RunsNothing_AndSaysWhatEachStepWouldDo()
    {
        var marker = Marker();
        var (outcome, log) = await RunAsync("""
            - id: touch
              action: shell
              run: touch MARKER {{ name }}
              outputs: { out: '(.*)' }
            - id: call
              action: http
              url: "https://example.com/deploy?name={{ name }}"
            - id: pause
              action: wait
              duration: 1m30s
            - id: remote
              action: lambda
              function: health-check
            - id: uses
              action: shell
              run: echo {{ steps.touch.outputs.out }}
            """.Replace("MARKER", marker, StringComparison.Ordinal),
            "name: { type: string }", new Dictionary<string, string> { ["name"] = "it's web" }, dryRun: true);

        Assert.Equal(new ExecutionOutcome(ExecutionStatus.Succeeded, null, "dry run: nothing was run", false), outcome);
        Assert.False(File.Exists(marker));
        Assert.Empty(log.All<StepStarted>());
        Assert.Equal(
            [
                $"dry run: would run touch {marker} 'it'\\''s web'",
                "dry run: would send GET https://example.com/deploy?name=it's web",
                "dry run: would wait 1m30s",
                "dry run: would invoke the Lambda function health-check (no executor for action 'lambda' is configured on this node)",
                "dry run: would run echo '<steps.touch.outputs.out>'",
            ],
            log.All<StepSkipped>().Select(s => s.Reason));
        Assert.True(Assert.Single(log.All<ExecutionStarted>()).DryRun);
    }

    [Fact]
    public async Task Resume_StartsAtTheChosenStep_WithPriorOutputs_AndRollsBackPriorSteps()
    {
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook("""
            - id: build
              action: shell
              run: echo "version=9.9.9"
              outputs: { version: 'version=(\S+)' }
              rollback:
                action: shell
                run: echo "undo build {{ steps.build.outputs.version }}"
            - id: deploy
              action: shell
              run: echo "deploying {{ steps.build.outputs.version }}"
              rollback: { action: shell, run: echo "undo deploy" }
            - id: verify
              action: shell
              run: exit 1
            """);
        var plan = Engine.Plan(runbook) with
        {
            StartAt = 1,
            PriorOutputs = new Dictionary<string, IReadOnlyDictionary<string, string>> { ["build"] = new Dictionary<string, string> { ["version"] = "2.0.0" } },
            PriorSucceeded = ["build"],
        };

        var outcome = await Engine.Runner(Folder).RunAsync(plan, log, control, CancellationToken.None).WaitAsync(EventLog.Patience);

        Assert.Equal(1, Assert.Single(log.All<ExecutionStarted>()).StartAt);
        Assert.DoesNotContain(log.All<StepStarted>(), s => s.StepId == "build");
        Assert.Equal("deploying 2.0.0", log.Output("deploy"));
        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Equal(["deploy", "build"], log.All<RollbackStepSucceeded>().Select(e => e.StepId));
        Assert.Equal("undo build 2.0.0", log.Output("build.rollback"));
    }

    [Fact]
    public async Task OperatorRollback_UndoesTheGivenSucceededSteps_LastFirst()
    {
        var log = new EventLog();
        var runbook = Engine.Runbook("""
            - id: a
              action: shell
              run: echo a
              rollback: { action: shell, run: echo undo-a >> rollback.log }
            - id: b
              action: shell
              run: echo b
            - id: c
              action: shell
              run: echo c
              rollback: { action: shell, run: echo undo-c >> rollback.log }
            """);

        var outcome = await Engine.Runner(Folder).RollbackAsync(Engine.Plan(runbook), ["a", "b", "c"], log, CancellationToken.None).WaitAsync(EventLog.Patience);

        Assert.Equal(new ExecutionOutcome(ExecutionStatus.Cancelled, null, "rolled back at the operator's request", true), outcome);
        Assert.Equal(["undo-c", "undo-a"], File.ReadAllLines(Path.Combine(Folder, "rollback.log")));
        Assert.Equal(["rollback_started", "rollback_step_started", "rollback_step_succeeded", "rollback_step_started", "rollback_step_succeeded", "execution_finished"],
            log.Kinds.Where(k => k != "step_output"));
    }

    [Fact]
    public async Task RequestStop_LetsTheRunningStepFinish_ThenInterruptsAtTheNextStep()
    {
        var time = new FakeTimeProvider();
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook("""
            - id: pause
              action: wait
              duration: 10s
              rollback: { action: shell, run: echo undo }
            - id: next
              action: shell
              run: echo next
            """);

        var running = Engine.Runner(Folder, time).RunAsync(Engine.Plan(runbook), log, control, CancellationToken.None);
        await log.WaitFor<StepOutput>(o => o.Text == "waiting 10s");
        control.RequestStop();
        time.Advance(TimeSpan.FromSeconds(10));
        var outcome = await running.WaitAsync(EventLog.Patience);

        Assert.Equal(new ExecutionOutcome(ExecutionStatus.Interrupted, "next", "the node stopped before step 'next' started", false), outcome);
        Assert.Equal("pause", Assert.Single(log.All<StepSucceeded>()).StepId);
        Assert.DoesNotContain(log.All<StepStarted>(), s => s.StepId == "next");
        Assert.Empty(log.All<RollbackStarted>());
    }

    [Fact]
    public async Task WaitSteps_WaitOnTheTimeProvider_AndATimeoutEndsThem()
    {
        var time = new FakeTimeProvider();
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook("""
            - id: short
              action: wait
              duration: 1m
            - id: too-long
              action: wait
              duration: 1h
              timeout: 5m
            """);

        var running = Engine.Runner(Folder, time).RunAsync(Engine.Plan(runbook), log, control, CancellationToken.None);
        await log.WaitFor<StepOutput>(o => o.Text == "waiting 1m");
        Assert.Empty(log.All<StepSucceeded>());
        time.Advance(TimeSpan.FromMinutes(1));
        await log.WaitFor<StepOutput>(o => o.Text == "waiting 1h");
        Assert.Equal(60_000, Assert.Single(log.All<StepSucceeded>()).DurationMs);
        time.Advance(TimeSpan.FromMinutes(5));
        var outcome = await running.WaitAsync(EventLog.Patience);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        var failed = Assert.Single(log.All<StepFailed>());
        Assert.Equal(("too-long", true, "timed out after 5m"), (failed.StepId, failed.TimedOut, failed.Reason));
    }

    [Fact]
    public async Task ACancelBeforeTheFirstStep_RunsNothing()
    {
        var log = new EventLog();
        using var control = new ExecutionControl();
        control.Cancel("dave", rollback: true);

        var outcome = await Engine.Runner(Folder).RunAsync(Engine.Plan(Engine.Runbook("""
            - id: never
              action: shell
              run: echo never
            """)), log, control, CancellationToken.None);

        Assert.Equal(new ExecutionOutcome(ExecutionStatus.Cancelled, null, "cancelled by dave", false), outcome);
        Assert.Equal(["execution_started", "execution_finished"], log.Kinds);
    }
}
