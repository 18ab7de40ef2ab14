using Microsoft.Extensions.Time.Testing;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Execution.Steps;

namespace RunbookPortal.Engine.Tests.Execution;

/// <summary>
/// How a shell step ends, with real bash: its streams read apart, output of what escaped it never another step's,
/// SIGTERM then SIGKILL on timeout, cancel and shutdown, a rollback a second cancel stops, the default timeout.
/// </summary>
public sealed class ShellStepLifecycleTests : ScratchFolder
{
    private static ShellOptions Quick(string folder, TimeSpan? grace = null) =>
        new() { WorkingDirectory = folder, KillGrace = grace ?? TimeSpan.FromSeconds(10) };

    private async Task<(ExecutionOutcome Outcome, EventLog Log)> RunAsync(string steps)
    {
        var log = new EventLog();
        using var control = new ExecutionControl();
        var outcome = await Engine.Runner(Folder).RunAsync(Engine.Plan(Engine.Runbook(steps)), log, control, CancellationToken.None).WaitAsync(EventLog.Patience);
        return (outcome, log);
    }

    [Fact]
    public async Task ValidateAndOutputs_ReadStdout_SoAWarningOnStderrBreaksNoJsonPath()
    {
        var (outcome, log) = await RunAsync("""
            - id: report
              action: shell
              run: |
                echo "warning: the cache is cold" >&2
                echo '{"version": "1.4.2", "healthy": true}'
              validate:
                json: { path: $.healthy, equals: true }
              outputs:
                version: '"version": "([^"]+)"'
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal("1.4.2", Assert.Single(log.All<StepSucceeded>()).Outputs["version"]);
        Assert.Equal("warning: the cache is cold", log.Output("report", "stderr")); // still on the timeline, marked
    }

    [Fact]
    public async Task AStepMayReadStderr_OrBothStreams_WithStream()
    {
        var (outcome, log) = await RunAsync("""
            - id: from-stderr
              action: shell
              stream: stderr
              run: |
                echo "stdout: nothing to see"
                echo "Version 7.1" >&2
              outputs:
                version: 'Version (\S+)'
            - id: from-both
              action: shell
              stream: both
              run: |
                echo "ready" >&2
                echo "done"
              validate:
                regex: '(?s)ready.*done|done.*ready'
            - id: stdout-only
              action: shell
              required: false
              run: echo "only on stderr" >&2
              validate:
                output_contains: only on stderr
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal("7.1", log.All<StepSucceeded>().Single(s => s.StepId == "from-stderr").Outputs["version"]);
        Assert.Contains(log.All<StepSucceeded>(), s => s.StepId == "from-both");
        Assert.Equal("stdout-only", Assert.Single(log.All<StepFailed>()).StepId); // stdout is read by default
    }

    [Fact]
    public async Task AProcessThatLeftTheStepsGroup_CannotHoldTheStepOpen_NorWriteIntoTheNextStepOrItsValidation()
    {
        // setsid puts the writer in a session of its own, out of reach of the kill of the step's group; it holds the
        // step's stdout open and writes to it after the step ended.
        var (outcome, log) = await RunAsync("""
            - id: escape
              action: shell
              run: |
                setsid bash -c 'echo "escaped=$$"; sleep 3; for i in $(seq 1 40); do echo "LATE $i"; sleep 0.05; done' &
                sleep 0.2
                echo "step done"
            - id: next
              action: shell
              run: sleep 4; echo next
              validate:
                regex: ^next$
            """);

        try
        {
            Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
            Assert.DoesNotContain("LATE", log.Output("escape"), StringComparison.Ordinal);
            Assert.Equal("next", log.Output("next"));
            Assert.DoesNotContain(log.All<StepOutput>(), o => o.Text.Contains("LATE", StringComparison.Ordinal));
        }
        finally
        {
            // It normally died of SIGPIPE at its first late line (the step's pipes were closed); if not, it goes now.
            var escaped = log.All<StepOutput>().FirstOrDefault(o => o.Text.StartsWith("escaped=", StringComparison.Ordinal));
            if (escaped is not null)
                _ = Kill(int.Parse(escaped.Text["escaped=".Length..], System.Globalization.CultureInfo.InvariantCulture), 9);
        }
    }

    private const string TrapsTerm = """
        trap 'echo "cleaning up" >&2; echo cleaned > "$MARKER"; exit 5' TERM
        echo "ready"
        sleep 300 & wait
        """;

    [Fact]
    public async Task OnTimeout_AStepThatTrapsSigterm_GetsIt_AndWritesItsCleanupMarker()
    {
        var time = new FakeTimeProvider();
        var marker = Marker("cleanup");
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook($$"""
            - id: migrate
              action: shell
              timeout: 5s
              env: { MARKER: "{{marker}}" }
              run: |
            {{Indented(TrapsTerm, 4)}}
            """);

        var running = Engine.Runner(Folder, time, shell: Quick(Folder)).RunAsync(Engine.Plan(runbook), log, control, CancellationToken.None);
        await log.WaitFor<StepOutput>(o => o.Text == "ready");
        time.Advance(TimeSpan.FromSeconds(5));
        var outcome = await running.WaitAsync(EventLog.Patience);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        var failed = Assert.Single(log.All<StepFailed>());
        Assert.True(failed.TimedOut);
        Assert.Equal("timed out after 5s; stopped with SIGTERM", failed.Reason);
        Assert.Equal(5, failed.ExitCode);
        Assert.Equal("cleaned", File.ReadAllText(marker).Trim());
        Assert.Equal("cleaning up", log.Output("migrate", "stderr"));
        File.Delete(marker);
    }

    [Fact]
    public async Task OnCancel_AStepThatTrapsSigterm_GetsIt_EndsCancelled_AndItsLogSaysWhoWithoutThePortalsPlumbing()
    {
        var marker = Marker("cleanup");
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook($$"""
            - id: migrate
              action: shell
              env: { MARKER: "{{marker}}" }
              run: |
            {{Indented(TrapsTerm, 4)}}
            """);

        var running = Engine.Runner(Folder, shell: Quick(Folder)).RunAsync(Engine.Plan(runbook), log, control, CancellationToken.None);
        await log.WaitFor<StepOutput>(o => o.Text == "ready");
        control.Cancel("dana@example.com", rollback: false);
        var outcome = await running.WaitAsync(EventLog.Patience);

        Assert.Equal(ExecutionStatus.Cancelled, outcome.Status);
        var cancelled = Assert.Single(log.All<StepCancelled>());
        Assert.Equal("cancelled by dana@example.com; stopped with SIGTERM", cancelled.Reason);
        Assert.Empty(log.All<StepFailed>());
        Assert.Equal("cleaned", File.ReadAllText(marker).Trim());
        // Only what the step itself wrote: no "Killed", no command line of the portal's.
        Assert.Equal(["ready", "cleaning up"], log.All<StepOutput>().Select(o => o.Text));
        File.Delete(marker);
    }

    [Fact]
    public async Task AStepThatIgnoresSigterm_IsKilledWithSigkill_AfterTheGrace_AndTheReasonSaysSo()
    {
        var time = new FakeTimeProvider();
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook("""
            - id: stubborn
              action: shell
              timeout: 5s
              run: |
                trap '' TERM
                echo "child=$(sh -c 'trap "" TERM; sleep 300 >/dev/null 2>&1 & echo $!')"
                echo ready
                while true; do sleep 0.05; done
            """);

        // The grace runs on the real clock: 200 ms here.
        var running = Engine.Runner(Folder, time, shell: Quick(Folder, TimeSpan.FromMilliseconds(200))).RunAsync(Engine.Plan(runbook), log, control, CancellationToken.None);
        var child = int.Parse((await log.WaitFor<StepOutput>(o => o.Text.StartsWith("child=", StringComparison.Ordinal))).Text["child=".Length..], System.Globalization.CultureInfo.InvariantCulture);
        await log.WaitFor<StepOutput>(o => o.Text == "ready");
        time.Advance(TimeSpan.FromSeconds(5));
        var outcome = await running.WaitAsync(EventLog.Patience);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        var failed = Assert.Single(log.All<StepFailed>());
        Assert.Equal("timed out after 5s; it did not stop within 200ms of SIGTERM and was killed with SIGKILL", failed.Reason);
        Assert.Equal(137, failed.ExitCode);
        Assert.True(await Processes.WaitGoneAsync(child), $"{child}, which ignored SIGTERM too, survived the SIGKILL of its group");
    }

    [Fact]
    public async Task OnShutdown_TheRunningStepGetsSigterm_AndTheRunIsInterruptedAtIt()
    {
        var marker = Marker("cleanup");
        var log = new EventLog();
        using var control = new ExecutionControl();
        using var shutdown = new CancellationTokenSource();
        var runbook = Engine.Runbook($$"""
            - id: migrate
              action: shell
              env: { MARKER: "{{marker}}" }
              run: |
            {{Indented(TrapsTerm, 4)}}
            """);

        var running = Engine.Runner(Folder, shell: Quick(Folder)).RunAsync(Engine.Plan(runbook), log, control, shutdown.Token);
        await log.WaitFor<StepOutput>(o => o.Text == "ready");
        await shutdown.CancelAsync();
        var outcome = await running.WaitAsync(EventLog.Patience);

        Assert.Equal(ExecutionStatus.Interrupted, outcome.Status);
        Assert.Equal("migrate", outcome.FailedStepId);
        Assert.Equal("the node shut down while the step was running; stopped with SIGTERM", Assert.Single(log.All<StepFailed>()).Reason);
        Assert.Equal("cleaned", File.ReadAllText(marker).Trim());
        File.Delete(marker);
    }

    [Fact]
    public async Task EveryStepWithoutATimeout_GetsTheDefaultOne_RollbacksToo()
    {
        var time = new FakeTimeProvider();
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook("""
            - id: first
              action: shell
              run: echo first
              rollback:
                action: shell
                run: echo "undo started"; sleep 300
            - id: hang
              action: shell
              run: echo "hang started"; sleep 300
            """);

        var running = Engine.Runner(Folder, time, new ExecutionOptions { DefaultStepTimeout = TimeSpan.FromMinutes(30) })
            .RunAsync(Engine.Plan(runbook), log, control, CancellationToken.None);
        await log.WaitFor<StepOutput>(o => o.Text == "hang started");
        time.Advance(TimeSpan.FromMinutes(30));
        await log.WaitFor<StepOutput>(o => o.Text == "undo started");
        time.Advance(TimeSpan.FromMinutes(30));
        var outcome = await running.WaitAsync(EventLog.Patience);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Equal("timed out after 30m; stopped with SIGTERM", Assert.Single(log.All<StepFailed>()).Reason);
        Assert.Equal("timed out after 30m; stopped with SIGTERM", Assert.Single(log.All<RollbackStepFailed>()).Reason);
    }

    [Fact]
    public async Task AHungRollback_IsStoppedByASecondCancel_TheRestIsNotRun_AndTheRunEndsFailedWithTheRollbackMarkedFailed()
    {
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook("""
            - id: first
              action: shell
              run: echo first
              rollback: { action: shell, run: echo "undo first" }
            - id: second
              action: shell
              run: echo second
              rollback:
                action: shell
                run: echo "undo second hangs"; sleep 300
            - id: hang
              action: shell
              run: echo "hang started"; sleep 300
            """);

        var running = Engine.Runner(Folder, shell: Quick(Folder)).RunAsync(Engine.Plan(runbook), log, control, CancellationToken.None);
        await log.WaitFor<StepOutput>(o => o.Text == "hang started");
        control.Cancel("erin", rollback: true);
        await log.WaitFor<StepOutput>(o => o.Text == "undo second hangs");
        control.StopRollback("frank");
        var outcome = await running.WaitAsync(EventLog.Patience);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Equal("cancelled by erin; the rollback of 'second' failed; the rollback was cancelled by frank, so 'first' was not rolled back", outcome.Reason);
        var rollbackFailed = Assert.Single(log.All<RollbackStepFailed>());
        Assert.Equal("second", rollbackFailed.StepId);
        Assert.Equal("the rollback was cancelled by frank; stopped with SIGTERM", rollbackFailed.Reason);
        Assert.Empty(log.All<RollbackStepSucceeded>());
        Assert.Empty(log.Output("first.rollback"));
    }

    [Fact]
    public async Task AnOperatorsRollback_CanBeStoppedToo()
    {
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook("""
            - id: first
              action: shell
              run: echo first
              rollback:
                action: shell
                run: echo "undo first hangs"; sleep 300
            """);

        var rolling = Engine.Runner(Folder, shell: Quick(Folder)).RollbackAsync(Engine.Plan(runbook), ["first"], log, CancellationToken.None, control);
        await log.WaitFor<StepOutput>(o => o.Text == "undo first hangs");
        control.StopRollback("gina");
        var outcome = await rolling.WaitAsync(EventLog.Patience);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Equal("the rollback was cancelled by gina; stopped with SIGTERM", Assert.Single(log.All<RollbackStepFailed>()).Reason);
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);

    private static string Indented(string text, int spaces) =>
        string.Join("\n", text.TrimEnd('\n').Split('\n').Select(line => new string(' ', spaces) + line));
}
