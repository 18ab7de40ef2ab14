using Microsoft.Extensions.Time.Testing;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Execution.Steps;

namespace RunbookPortal.Engine.Tests.Execution;

/// <summary>Shell steps with real bash processes: output, quoting, environment, caps, and killing process trees.</summary>
public sealed class ShellStepTests : ScratchFolder
{
    private async Task<(ExecutionOutcome Outcome, EventLog Log)> RunAsync(
        string steps, string parameters = "", IReadOnlyDictionary<string, string>? values = null, ExecutionOptions? options = null)
    {
        var log = new EventLog();
        using var control = new ExecutionControl();
        var outcome = await Engine.Runner(Folder, options: options)
            .RunAsync(Engine.Plan(Engine.Runbook(steps, parameters), values), log, control, CancellationToken.None)
            .WaitAsync(EventLog.Patience);
        return (outcome, log);
    }

    [Fact]
    public async Task AnExecutionsOwnFolder_GoesWhenItSucceeds_AndStaysForAResumeWhenItFails()
    {
        var runner = Engine.Runner(""); // no folder configured: each execution gets one of its own
        using var control = new ExecutionControl();

        var succeeding = Engine.Plan(Engine.Runbook("""
            - id: work
              action: shell
              run: touch made-here; pwd
            """));
        var log = new EventLog();
        var outcome = await runner.RunAsync(succeeding, log, control, CancellationToken.None).WaitAsync(EventLog.Patience);
        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        var folder = log.Output("work");
        Assert.Equal(Path.Combine(Engine.RunsFolder, succeeding.ExecutionId.ToString("N")), folder);
        Assert.False(Directory.Exists(folder), "the folder of a succeeded execution is still there");

        var failing = Engine.Plan(Engine.Runbook("""
            - id: work
              action: shell
              run: touch made-here; pwd; exit 3
            """));
        log = new EventLog();
        outcome = await runner.RunAsync(failing, log, control, CancellationToken.None).WaitAsync(EventLog.Patience);
        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        folder = log.Output("work");
        try
        {
            Assert.True(File.Exists(Path.Combine(folder, "made-here")), "a failed execution may be resumed: its folder stays");
            if (!OperatingSystem.IsWindows())
            {
                const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
                Assert.Equal(Private, File.GetUnixFileMode(folder)); // no one else may look into a run's files …
                Assert.Equal(Private, File.GetUnixFileMode(Engine.RunsFolder)); // … nor list the runs
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task Output_IsStreamedLineByLine_InOrderPerStream()
    {
        var (outcome, log) = await RunAsync("""
            - id: talk
              action: shell
              run: |
                for i in $(seq 1 300); do echo "out $i"; echo "err $i" >&2; done
                printf 'no newline at the end'
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        var expectedOut = string.Join("\n", Enumerable.Range(1, 300).Select(i => $"out {i}")) + "\nno newline at the end";
        Assert.Equal(expectedOut, log.Output("talk", "stdout"));
        Assert.Equal(string.Join("\n", Enumerable.Range(1, 300).Select(i => $"err {i}")), log.Output("talk", "stderr"));
        Assert.Equal(["execution_started", "step_started"], log.Kinds.Take(2));
        Assert.Equal(["step_succeeded", "execution_finished"], log.Kinds.TakeLast(2));
    }

    public static TheoryData<string> HostileValues =>
    [
        "x; touch MARKER",
        "$(touch MARKER)",
        "`touch MARKER`",
        "a\ntouch MARKER",
        "--flag",
        "'; touch MARKER; '",
        "\"; touch MARKER; \"",
        "EOF\ntouch MARKER\ncat <<EOF",
        "a b  * ?",
        "\\$(touch MARKER)\\",
        "${IFS}touch${IFS}MARKER",
        "}; touch MARKER; {",
        ") ; touch MARKER ; (",
    ];

    [Theory]
    [MemberData(nameof(HostileValues))]
    public async Task ParameterValues_AreInertText_InOneArgument_InEveryQuotingContext(string hostile)
    {
        var marker = Marker();
        var value = hostile.Replace("MARKER", marker, StringComparison.Ordinal);

        var (outcome, log) = await RunAsync("""
            - id: probe
              action: shell
              run: |
                printf '<%s>\n' {{ value }}
                printf '<%s>\n' "double: {{ value }}"
                printf '<%s>\n' 'single: {{ value }}'
                set -- {{ value }}; echo "argc=$#"
                # a comment: {{ value }}
                cat <<EOF
                heredoc: {{ value }}
                EOF
                printf '<%s>\n' "$(printf '%s' {{ value }})"
                printf '<%s>\n' "$RBP_PARAM_VALUE"
            - id: direct
              action: shell
              run: /bin/echo value={{ value }}
            """, "value: { type: string }", new Dictionary<string, string> { ["value"] = value });

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.False(File.Exists(marker), "a parameter value ran as a command");
        Assert.Equal(
            $"<{value}>\n<double: {value}>\n<single: {value}>\nargc=1\nheredoc: {value}\n<{value}>\n<{value}>",
            log.Output("probe"));
        Assert.Equal("value=" + value, log.Output("direct")); // one external command, run without a subshell
    }

    [Fact]
    public async Task HostileStepOutputs_AreInertText_InLaterSteps()
    {
        var marker = Marker();
        var (outcome, log) = await RunAsync("""
            - id: produce
              action: shell
              run: |
                echo 'value=$(touch MARKER); `touch MARKER`'
              outputs: { value: 'value=(.*)' }
            - id: consume
              action: shell
              run: printf '<%s>\n' {{ steps.produce.outputs.value }} "$RBP_STEP_PRODUCE_VALUE"
            """.Replace("MARKER", marker, StringComparison.Ordinal));

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.False(File.Exists(marker));
        var expected = $"$(touch {marker}); `touch {marker}`";
        Assert.Equal($"<{expected}>\n<{expected}>", log.Output("consume"));
    }

    [Fact]
    public async Task Environment_HoldsParametersOutputsAndStepEnv_ButNotThePortalsOwnVariables()
    {
        var marker = Marker();
        var portalSecret = "RBP_TEST_PORTAL_ONLY_" + Guid.NewGuid().ToString("N");
        Environment.SetEnvironmentVariable(portalSecret, "connection-string");
        try
        {
            var (outcome, log) = await RunAsync("""
                - id: first
                  action: shell
                  run: echo "id=abc-123"
                  outputs: { id: 'id=(\S+)' }
                - id: second
                  action: shell
                  env: { GREETING: "hello {{ name }} from {{ steps.first.outputs.id }}" }
                  run: |
                    printf '%s\n' "$GREETING"
                    printf '%s\n' "$RBP_PARAM_NAME" "$RBP_PARAM_COUNT" "$RBP_STEP_FIRST_ID"
                    printf 'portal=%s\n' "${PORTALVAR:-unset}"
                    test -n "$PATH"
                """.Replace("PORTALVAR", portalSecret, StringComparison.Ordinal), "name: { type: string }\ncount: { type: int }",
                new Dictionary<string, string> { ["name"] = $"$(touch {marker})", ["count"] = "3" });

            Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
            Assert.False(File.Exists(marker));
            Assert.Equal($"hello $(touch {marker}) from abc-123\n$(touch {marker})\n3\nabc-123\nportal=unset", log.Output("second"));
        }
        finally
        {
            Environment.SetEnvironmentVariable(portalSecret, null);
        }
    }

    [Fact]
    public async Task NonZeroExit_FailsTheStep_WithTheExitCode_AndErrexitStopsTheScript()
    {
        var (outcome, log) = await RunAsync("""
            - id: broken
              action: shell
              run: |
                echo before
                false | cat
                echo after
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Equal("broken", outcome.FailedStepId);
        var failed = Assert.Single(log.All<StepFailed>());
        Assert.Equal(1, failed.ExitCode);
        Assert.Equal("exited with code 1", failed.Reason);
        Assert.Equal("before", log.Output("broken")); // -e and pipefail: the pipeline's failure stopped the script
    }

    [Fact]
    public async Task Output_IsCappedWithAVisibleMarker_WhileThePipesAreStillDrained()
    {
        var options = new ExecutionOptions { MaxOutputBytesPerStep = 4096 };
        var (outcome, log) = await RunAsync("""
            - id: loud
              action: shell
              run: |
                seq 1 200000
                seq 1 200000 >&2
                echo finished > finished.txt
            """, options: options);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status); // it could write all ~2.6 MB: nobody stopped reading
        Assert.True(File.Exists(Path.Combine(Folder, "finished.txt")));
        var truncated = Assert.Single(log.All<StepOutputTruncated>());
        Assert.Equal(4096, truncated.LimitBytes);
        var lines = log.All<StepOutput>();
        Assert.StartsWith("[output truncated:", lines[^1].Text, StringComparison.Ordinal);
        Assert.True(lines.SkipLast(1).Sum(l => l.Text.Length + 1) <= 4096);
        Assert.Equal(["1", "2", "3"], lines.Take(3).Select(l => l.Text));
    }

    [Fact]
    public async Task WorkingDirectory_IsTheConfiguredOne_AndAStepMayNameASubfolder()
    {
        Directory.CreateDirectory(Path.Combine(Folder, "sub dir"));
        var (outcome, log) = await RunAsync("""
            - id: here
              action: shell
              run: pwd
            - id: there
              action: shell
              working_directory: sub dir
              run: pwd
            - id: missing
              action: shell
              working_directory: nowhere
              run: pwd
            """);

        Assert.Equal(Folder, log.Output("here"));
        Assert.Equal(Path.Combine(Folder, "sub dir"), log.Output("there"));
        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Contains("does not exist", Assert.Single(log.All<StepFailed>()).Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Timeout_KillsTheWholeProcessTree_GrandchildrenIncluded()
    {
        var time = new FakeTimeProvider();
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook("""
            - id: hang
              action: shell
              timeout: 5s
              run: |
                sleep 300 &
                echo "child=$! shell=$BASHPID"
                wait
            """);

        var running = Engine.Runner(Folder, time).RunAsync(Engine.Plan(runbook), log, control, CancellationToken.None);
        var (child, shell) = Pids(await log.WaitFor<StepOutput>(o => o.Text.StartsWith("child=", StringComparison.Ordinal)));
        Assert.False(Processes.IsGone(child));

        time.Advance(TimeSpan.FromSeconds(5));
        var outcome = await running.WaitAsync(EventLog.Patience);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        var failed = Assert.Single(log.All<StepFailed>());
        Assert.True(failed.TimedOut);
        Assert.Equal("timed out after 5s; stopped with SIGTERM", failed.Reason);
        Assert.True(await Processes.WaitGoneAsync(child), $"grandchild {child} survived the timeout");
        Assert.True(await Processes.WaitGoneAsync(shell), $"shell {shell} survived the timeout");
    }

    [Fact]
    public async Task Cancel_KillsTheGrandchild_ThenRollsBackTheSucceededSteps_WhenAsked()
    {
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook("""
            - id: prepare
              action: shell
              run: echo prepared
              rollback: { action: shell, run: echo "undo prepare" }
            - id: hang
              action: shell
              run: |
                sleep 300 &
                echo "child=$! shell=$BASHPID"
                wait
              rollback: { action: shell, run: echo "undo hang" }
            """);

        var running = Engine.Runner(Folder).RunAsync(Engine.Plan(runbook), log, control, CancellationToken.None);
        var (child, _) = Pids(await log.WaitFor<StepOutput>(o => o.Text.StartsWith("child=", StringComparison.Ordinal)));
        control.Cancel("alice@example.com", rollback: true);
        var outcome = await running.WaitAsync(EventLog.Patience);

        Assert.True(await Processes.WaitGoneAsync(child), $"grandchild {child} survived the cancel");
        Assert.Equal(new ExecutionOutcome(ExecutionStatus.Cancelled, "hang", "cancelled by alice@example.com", true), outcome);
        var cancelled = Assert.Single(log.All<StepCancelled>());
        Assert.Equal("cancelled by alice@example.com; stopped with SIGTERM", cancelled.Reason);
        Assert.Empty(log.All<StepFailed>());
        Assert.Equal(["prepare"], log.All<RollbackStepSucceeded>().Select(e => e.StepId));
        Assert.Equal("undo prepare", log.Output("prepare.rollback"));
        Assert.Empty(log.Output("hang.rollback"));
    }

    [Fact]
    public async Task Cancel_WithoutRollback_KillsTheGrandchild_AndRollsNothingBack()
    {
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook("""
            - id: prepare
              action: shell
              run: echo prepared
              rollback: { action: shell, run: echo "undo prepare" }
            - id: hang
              action: shell
              run: |
                sleep 300 &
                echo "child=$! shell=$BASHPID"
                wait
            """);

        var running = Engine.Runner(Folder).RunAsync(Engine.Plan(runbook), log, control, CancellationToken.None);
        var (child, _) = Pids(await log.WaitFor<StepOutput>(o => o.Text.StartsWith("child=", StringComparison.Ordinal)));
        control.Cancel("bob", rollback: false);
        var outcome = await running.WaitAsync(EventLog.Patience);

        Assert.True(await Processes.WaitGoneAsync(child));
        Assert.Equal(new ExecutionOutcome(ExecutionStatus.Cancelled, "hang", "cancelled by bob", false), outcome);
        Assert.Empty(log.All<RollbackStarted>());
    }

    [Fact]
    public async Task Shutdown_KillsTheRunningStep_AndInterruptsTheRunWithoutRollback()
    {
        var log = new EventLog();
        using var control = new ExecutionControl();
        using var grace = new CancellationTokenSource();
        var runbook = Engine.Runbook("""
            - id: prepare
              action: shell
              run: echo prepared
              rollback: { action: shell, run: echo "undo prepare" }
            - id: hang
              action: shell
              run: |
                sleep 300 &
                echo "child=$! shell=$BASHPID"
                wait
            """);

        var running = Engine.Runner(Folder).RunAsync(Engine.Plan(runbook), log, control, grace.Token);
        var (child, _) = Pids(await log.WaitFor<StepOutput>(o => o.Text.StartsWith("child=", StringComparison.Ordinal)));
        await grace.CancelAsync();
        var outcome = await running.WaitAsync(EventLog.Patience);

        Assert.True(await Processes.WaitGoneAsync(child));
        Assert.Equal(ExecutionStatus.Interrupted, outcome.Status);
        Assert.Equal("hang", outcome.FailedStepId);
        Assert.False(outcome.RolledBack);
        Assert.Empty(log.All<RollbackStarted>());
    }

    [Fact]
    public async Task BackgroundProcesses_DoNotOutliveTheirStep()
    {
        var (outcome, log) = await RunAsync("""
            - id: leave
              action: shell
              run: |
                sleep 300 &
                echo "child=$! shell=$BASHPID"
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        var (child, _) = Pids(Assert.Single(log.All<StepOutput>()));
        Assert.True(await Processes.WaitGoneAsync(child));
    }

    [Fact]
    public async Task StdinIsClosed_SoAStepThatReadsInputDoesNotHang()
    {
        var (outcome, log) = await RunAsync("""
            - id: read
              action: shell
              run: |
                cat
                echo "read to the end"
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal("read to the end", log.Output("read"));
    }

    [Fact]
    public async Task EachStep_StartsFromACleanShell_WhateverTheStepBeforeItChanged()
    {
        Directory.CreateDirectory(Path.Combine(Folder, "elsewhere"));
        var (outcome, log) = await RunAsync("""
            - id: meddle
              action: shell
              env: { ONLY_HERE: "meddle's own" }
              run: |
                export LEAKED=exported; PLAIN=assigned
                cd elsewhere
                umask 077
                set +e +o pipefail -u
                shopt -s nullglob
                alias ll='ls -l'
                helper() { echo "helper from meddle"; }
                trap 'echo "exit trap of meddle"' EXIT
                echo "meddle ran as $(basename "${0%.*}") in $(basename "$PWD")"
            - id: look
              action: shell
              run: |
                echo "$(basename "${0%.*}"): [${LEAKED-}] [${PLAIN-}] [${ONLY_HERE-}] $(basename "$PWD") $(umask) $- $(shopt -p nullglob)"
                type helper >/dev/null 2>&1 && echo "helper leaked" || echo "no helper"
                env | grep -c '^__rbp' || true
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal("meddle ran as rbp-meddle in elsewhere\nexit trap of meddle", log.Output("meddle"));
        var folder = Path.GetFileName(Folder);
        var look = log.Output("look").Split('\n');
        Assert.Equal($"rbp-look: [] [] [] {folder} 0022 ehB shopt -u nullglob", look[0]);
        Assert.Equal(["no helper", "0"], look[1..]);
    }

    [Fact]
    public async Task AStepThatKillsItsOwnShell_FailsWithTheSignalsExitCode_AndWhatItLeftGoesWithIt()
    {
        var (outcome, log) = await RunAsync("""
            - id: kill-the-shell
              action: shell
              required: false
              run: |
                echo "shell=$$"
                sleep 300 &
                echo "left=$!"
                kill -9 $$
            - id: after
              action: shell
              run: echo "shell=$$"
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        var failed = Assert.Single(log.All<StepFailed>());
        Assert.Equal("kill-the-shell", failed.StepId);
        Assert.Equal(137, failed.ExitCode);
        var lines = log.Output("kill-the-shell").Split('\n');
        Assert.NotEqual(lines[0], log.Output("after"));
        var left = int.Parse(lines[1]["left=".Length..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(await Processes.WaitGoneAsync(left), $"process {left}, started by the step, still runs after its shell died");
    }

    [Theory]
    [InlineData("INT", 130)]
    [InlineData("TERM", 143)]
    [InlineData("HUP", 129)]
    public async Task ASignalThatEndsAStep_FailsThatStepOnly_WithItsExitCode_AndTheNextStepRuns(string signal, int exitCode)
    {
        var (outcome, log) = await RunAsync($"""
            - id: signalled
              action: shell
              required: false
              run: |
                echo before
                kill -{signal} $$
                echo "never printed"
            - id: after
              action: shell
              run: echo after
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal(exitCode, Assert.Single(log.All<StepFailed>()).ExitCode);
        Assert.Equal("before", log.Output("signalled", "stdout"));
        Assert.Equal("after", log.Output("after"));
    }

    [Fact]
    public async Task SigtstpCannotStopAStep_ItGoesOn_AndTheRunEnds()
    {
        // A step leads a process group of its own with no terminal: the kernel discards the stop signals sent to it.
        var (outcome, log) = await RunAsync("""
            - id: stop-yourself
              action: shell
              run: |
                kill -TSTP $$
                sh -c 'kill -TSTP $$; echo "child went on"'
                echo "went on"
            - id: after
              action: shell
              run: echo after
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal("child went on\nwent on", log.Output("stop-yourself"));
        Assert.Equal("after", log.Output("after"));
    }

    [Fact]
    public async Task ASyntaxError_FailsTheStepWithBashsMessage_AndTheNextStepStillRuns()
    {
        var (outcome, log) = await RunAsync("""
            - id: unbalanced
              action: shell
              required: false
              run: |
                echo "never printed"
                if true; then echo x
            - id: fine
              action: shell
              run: echo fine
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        var failed = Assert.Single(log.All<StepFailed>());
        Assert.Equal(2, failed.ExitCode);
        Assert.Contains("syntax error", log.Output("unbalanced", "stderr"), StringComparison.Ordinal);
        Assert.Equal("never printed", log.Output("unbalanced", "stdout")); // bash runs a script as it reads it, as CI runners' bash does
        Assert.Equal("fine", log.Output("fine"));
    }

    [Fact]
    public async Task EachStep_IsAFreshBash_LeadingASessionAndProcessGroupOfItsOwn_InConcurrentExecutionsToo()
    {
        var runner = Engine.Runner(Folder);
        const string Look = """read -r -a stat < /proc/$$/stat; echo "pid=$$ group=${stat[4]} session=${stat[5]} parent=$PPID" """;
        var runbook = Engine.Runbook($"""
            - id: one
              action: shell
              run: '{Look}'
            - id: two
              action: shell
              run: '{Look}'
            """);
        var logs = Enumerable.Range(0, 4).Select(_ => new EventLog()).ToArray();
        var outcomes = await Task.WhenAll(logs.Select(async log =>
        {
            using var control = new ExecutionControl();
            return await runner.RunAsync(Engine.Plan(runbook), log, control, CancellationToken.None).WaitAsync(EventLog.Patience);
        }));

        Assert.All(outcomes, o => Assert.Equal(ExecutionStatus.Succeeded, o.Status));
        var pids = new List<int>();
        foreach (var log in logs)
        {
            foreach (var step in new[] { "one", "two" })
            {
                var fields = log.Output(step).Split(' ').Select(p => int.Parse(p.Split('=')[1], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
                Assert.Equal(fields[0], fields[1]); // the leader of its group …
                Assert.Equal(fields[0], fields[2]); // … and of its session
                Assert.Equal(Environment.ProcessId, fields[3]); // started by the portal itself, no shell in between
                pids.Add(fields[0]);
            }
        }
        Assert.Equal(8, pids.Distinct().Count());
    }

    [Fact]
    public async Task AShellThatCannotBeStarted_FailsTheStepWithTheReason()
    {
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runner = Engine.Runner(Folder, shell: new ShellOptions { WorkingDirectory = Folder, Shell = "/nonexistent/bash" });
        var outcome = await runner.RunAsync(Engine.Plan(Engine.Runbook("""
            - id: first
              action: shell
              run: echo never
            """)), log, control, CancellationToken.None).WaitAsync(EventLog.Patience);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Equal("could not start /nonexistent/bash: No such file or directory", Assert.Single(log.All<StepFailed>()).Reason);
    }

    [Fact]
    public async Task AStep_StartsWithNoSignalIgnoredOrBlocked_SoAPipeEndsAsInATerminal()
    {
        // The portal's runtime ignores SIGPIPE and blocks signals in its threads; a step must inherit none of that (bash
        // cannot undo a signal ignored at its start, and hands it on to every command): the step's commands (grep reads
        // its own status) see no signal ignored or blocked, and `yes | head -n 1` ends with yes killed by SIGPIPE (141),
        // as in a terminal.
        var (outcome, log) = await RunAsync("""
            - id: signals
              action: shell
              run: |
                grep -E '^Sig(Ign|Blk):' /proc/self/status
                trap -p
                set +o pipefail
                yes | head -n 1
                echo "pipe=${PIPESTATUS[*]}"
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        var lines = log.Output("signals").Split('\n');
        Assert.Equal(["SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000", "y", "pipe=141 0"], lines);
    }

    [Fact]
    public async Task ANulCharacter_NeverReachesTheShell_InOutputItBecomesAReplacementCharacter()
    {
        var (outcome, log) = await RunAsync("""
            - id: print-nul
              action: shell
              run: printf 'id=a\0b\n'
              outputs: { id: 'id=(\S+)' }
            - id: use-it
              action: shell
              run: echo "got {{ steps.print-nul.outputs.id }}"
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal("id=a\uFFFDb", log.Output("print-nul"));
        Assert.Equal("got a\uFFFDb", log.Output("use-it"));
    }

    [Fact]
    public async Task ANulCharacterInAValue_FailsTheStepWithAClearReason_WithoutRunningIt()
    {
        var marker = Marker();
        var (outcome, log) = await RunAsync($"""
            - id: nul-value
              action: shell
              run: touch {marker}
            """, "name: { type: string }", new Dictionary<string, string> { ["name"] = "a\0b" });

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Contains("NUL character", Assert.Single(log.All<StepFailed>()).Reason, StringComparison.Ordinal);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public async Task ManySteps_InOneShell_EachGetExactlyTheirOwnOutput_NoLineLostOrMisplaced()
    {
        const int steps = 20;
        var yaml = string.Concat(Enumerable.Range(0, steps).Select(i => $"""
            - id: talk-{i:D2}
              action: shell
              run: |
                for n in $(seq 1 200); do echo "{i} out $n"; echo "{i} err $n" >&2; done
                printf '{i} out tail'; printf '{i} err tail' >&2

            """));
        var (outcome, log) = await RunAsync(yaml);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        for (var i = 0; i < steps; i++)
        {
            var id = $"talk-{i:D2}";
            Assert.Equal(string.Join("\n", Enumerable.Range(1, 200).Select(n => $"{i} out {n}").Append($"{i} out tail")), log.Output(id, "stdout"));
            Assert.Equal(string.Join("\n", Enumerable.Range(1, 200).Select(n => $"{i} err {n}").Append($"{i} err tail")), log.Output(id, "stderr"));
        }
    }

    [Fact]
    public async Task AStepEnvNamingAVariableBashSetsItself_FailsWithAClearReason_BeforeItsScriptRuns()
    {
        var marker = Marker();
        var (outcome, log) = await RunAsync($"""
            - id: readonly
              action: shell
              env:
                UID: "0"
              run: touch {marker}
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Contains("`env` names UID, which bash sets itself", Assert.Single(log.All<StepFailed>()).Reason, StringComparison.Ordinal);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public async Task TheScript_IsReadFromAPrivateFileOfItsOwn_NotTheCommandLine_AndTheFileGoesWithTheStep()
    {
        // Any user of the machine can read a process's command line; the step's script is in a file only the portal
        // can read, gone when the step ends. A script far beyond the 128 KiB one argument may hold runs too.
        var padding = string.Concat(Enumerable.Repeat("# " + new string('x', 100) + "\n", 1500)); // ~150 KiB of comments
        var (outcome, log) = await RunAsync($$"""
            - id: look
              action: shell
              run: |
                {{padding.Replace("\n", "\n    ", StringComparison.Ordinal)}}echo "unique-script-text-7f3a"
                tr '\0' ' ' < /proc/$$/cmdline > cmdline
                echo "file=$0"
                stat -c '%a' "$0"; stat -c '%a' "$(dirname "$0")"
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        var lines = log.Output("look", "stdout").Split('\n');
        Assert.Equal("unique-script-text-7f3a", lines[0]);
        Assert.DoesNotContain("unique-script-text", File.ReadAllText(Path.Combine(Folder, "cmdline")), StringComparison.Ordinal);
        var file = lines[1]["file=".Length..];
        Assert.StartsWith("rbp-look.", Path.GetFileName(file), StringComparison.Ordinal);
        Assert.Equal(["600", "700"], lines[2..4]);
        Assert.False(File.Exists(file), "the step's script outlived it");
    }

    [Fact]
    public async Task ErrorMessages_NameTheStep_AndTheLineOfItsOwnScript()
    {
        var (outcome, log) = await RunAsync("""
            - id: third-line
              action: shell
              run: |
                echo "first"
                echo "line $LINENO"
                no-such-command-here
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Equal("first\nline 2", log.Output("third-line", "stdout"));
        Assert.Equal("rbp-third-line: line 3: no-such-command-here: command not found", log.Output("third-line", "stderr"));
    }

    [Fact]
    public async Task ALongLastLineWithoutNewline_EndsTheStep_WhereverTheLineIsCut()
    {
        // 32,758 characters: the line is cut every 16,384, and the end of the step must not fall into a cut.
        var (outcome, log) = await RunAsync("""
            - id: long
              action: shell
              timeout: 30s
              run: head -c 32758 /dev/zero | tr '\0' x
            - id: empty
              action: shell
              run: "true"
            - id: blank-lines
              action: shell
              run: printf 'a\n\n'
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal([16384, 16374], log.All<StepOutput>().Where(o => o.StepId == "long").Select(o => o.Text.Length));
        Assert.True(log.Output("long").All(c => c is 'x' or '\n'));
        Assert.DoesNotContain(log.All<StepOutput>(), o => o.StepId == "empty");
        Assert.Equal(["a", ""], log.All<StepOutput>().Where(o => o.StepId == "blank-lines").Select(o => o.Text));
    }

    [Fact]
    public async Task Scripts_ReachTheShellExactly_WhateverTheirCharacters()
    {
        // An ASCII script is sent by its length, any other ends with a NUL: both, in turn, in one shell.
        var (outcome, log) = await RunAsync("""
            - id: controls
              action: shell
              run: "v='\x01\x7f\\'; echo \"${#v} [$v]\" | od -An -c | tr -s ' '"
            - id: unicode
              action: shell
              run: |
                echo "grüße — ✓"

                printf '%s|\n' '  trailing  '
            - id: plain
              action: shell
              run: "echo 'plain'  "
            - id: unicode-again
              action: shell
              run: printf 'ü\n'
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal(" 3 [ 001 177 \\ ] \\n", log.Output("controls"));
        Assert.Equal("grüße — ✓\n  trailing  |", log.Output("unicode"));
        Assert.Equal("plain", log.Output("plain"));
        Assert.Equal("ü", log.Output("unicode-again"));
    }

    [Fact]
    public async Task AStepThatLeavesAProcessWritingToStderr_StillEnds_AndThatProcessGoes()
    {
        // What the step wrote is taken in at its end; a process it left behind that never stops writing is not
        // waited for, but killed with the step's group.
        var (outcome, log) = await RunAsync("""
            - id: noisy
              action: shell
              timeout: 20s
              run: |
                yes spam >&2 &
                echo "left=$!"
                sleep 0.2
            - id: after
              action: shell
              run: echo after
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        var left = int.Parse(log.Output("noisy", "stdout")["left=".Length..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(await Processes.WaitGoneAsync(left), $"process {left}, left by the step, still runs");
        Assert.Contains("spam", log.Output("noisy", "stderr"), StringComparison.Ordinal);
        Assert.Equal(["after"], log.All<StepOutput>().Where(o => o.StepId == "after").Select(o => o.Text)); // nothing of the noise
    }

    [Fact]
    public async Task AStep_HasNoRequestPipeToWriteCommandsInto_NorAMarkerToForge()
    {
        // The long-lived shell of old read requests on fd 4 and ended steps at a marker on stdout: a step could write
        // the next step's commands, or print the marker and "succeed". A fresh bash per step has neither.
        // The fds are listed by a simple command writing to a file: in a pipeline the step's bash itself briefly holds
        // the pipeline's pipes, which would be counted as given by the portal.
        var marker = Marker();
        var (outcome, log) = await RunAsync($$"""
            - id: inject
              action: shell
              required: false
              run: |
                ls -1 /proc/$$/fd > fds; tr '\n' ' ' < fds; echo
                printf 'touch {{marker}}\n' > /proc/$$/fd/4 || echo "no fd 4"
                echo "__rbp_end 0"
                exit 3
            - id: next
              action: shell
              run: echo next
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        var lines = log.Output("inject", "stdout").Split('\n');
        Assert.DoesNotContain("4", lines[0].Split(' ')); // the portal gave the step its stdin, stdout and stderr, nothing else
        Assert.Contains("no fd 4", lines);
        Assert.Equal(3, Assert.Single(log.All<StepFailed>()).ExitCode);
        Assert.Equal("next", log.Output("next"));
        Assert.False(File.Exists(marker), "a step wrote a command that something ran");
    }

    [Fact]
    public async Task Stderr_KeepsItsLastLines_BlankOrWithoutANewline()
    {
        var (outcome, log) = await RunAsync("""
            - id: blank
              action: shell
              run: printf 'a\n\n' >&2
            - id: unfinished
              action: shell
              run: printf 'b\nc' >&2
            - id: progress
              action: shell
              run: printf 'd\r' >&2
            - id: half-a-character
              action: shell
              run: printf 'e\303' >&2
            - id: quiet
              action: shell
              run: "true"
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal(["a", ""], log.All<StepOutput>().Where(o => o.StepId == "blank").Select(o => o.Text));
        Assert.Equal(["b", "c"], log.All<StepOutput>().Where(o => o.StepId == "unfinished").Select(o => o.Text));
        Assert.Equal(["d"], log.All<StepOutput>().Where(o => o.StepId == "progress").Select(o => o.Text));
        Assert.Equal(["e\uFFFD"], log.All<StepOutput>().Where(o => o.StepId == "half-a-character").Select(o => o.Text));
        Assert.All(log.All<StepOutput>(), o => Assert.Equal("stderr", o.Stream));
        Assert.DoesNotContain(log.All<StepOutput>(), o => o.StepId == "quiet");
    }

    [Fact]
    public async Task AFunctionFromTheEnvironment_NamedLikeACommand_ChangesNothingForTheNextStep()
    {
        // bash defines functions from BASH_FUNC_<name>%% variables: "deploy" is then a function of the step's own bash.
        var runner = new ExecutionRunner(
            [new ShellStepExecutor(new ShellOptions
            {
                WorkingDirectory = Folder,
                Environment = new Dictionary<string, string> { ["BASH_FUNC_deploy%%"] = "() { cd /; echo deployed; }" },
            })],
            TimeProvider.System, new ExecutionOptions());
        var log = new EventLog();
        using var control = new ExecutionControl();
        var outcome = await runner.RunAsync(Engine.Plan(Engine.Runbook("""
            - id: deploy
              action: shell
              run: deploy
            - id: where
              action: shell
              run: pwd
            """)), log, control, CancellationToken.None).WaitAsync(EventLog.Patience);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal("deployed", log.Output("deploy"));
        Assert.Equal(Folder, log.Output("where"));
    }

    private static (int Child, int Shell) Pids(StepOutput line)
    {
        var parts = line.Text.Split(' ').Select(p => int.Parse(p.Split('=')[1], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        return (parts[0], parts[1]);
    }
}

/// <summary>Counts this process's open files, so it runs alone: no other test's steps may open pipes meanwhile.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AloneCollection
{
    public const string Name = "alone: counts the process's open files";
}

[Collection(AloneCollection.Name)]
public sealed class StepPipeTests : ScratchFolder
{
    [Fact]
    public async Task AStepsPipes_AreClosedWhenItEnds_NotLeftToTheGarbageCollector()
    {
        // The pipes Process hands out are not closed by Process.Dispose: left alone, every step kept two open until a
        // garbage collection finalized them.
        var steps = string.Concat(Enumerable.Range(1, 40).Select(i => $"- id: s{i}\n  action: shell\n  run: echo {i}\n"));
        var before = Directory.GetFiles("/proc/self/fd").Length;
        var log = new EventLog();
        using var control = new ExecutionControl();
        var outcome = await Engine.Runner(Folder).RunAsync(Engine.Plan(Engine.Runbook(steps, ""), null), log, control, CancellationToken.None)
            .WaitAsync(EventLog.Patience);
        var after = Directory.GetFiles("/proc/self/fd").Length;

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.True(after - before < 20, $"{after - before} more file descriptors open after 40 steps");
    }
}
