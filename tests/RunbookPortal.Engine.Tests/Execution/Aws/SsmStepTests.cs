using System.Text.Json.Nodes;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Execution.Steps.Aws;

namespace RunbookPortal.Engine.Tests.Execution.Aws;

/// <summary><c>ssm</c> steps against a local endpoint speaking SSM's JSON 1.1 and checking every SigV4 signature, through the SDK's client.</summary>
public sealed class SsmStepTests : ScratchFolder
{
    private static FakeSsm.Plan Ok(string id, int polls = 1, string stdout = "") => new(id, polls, Stdout: stdout);

    private Task<(ExecutionOutcome Outcome, EventLog Log)> RunAsync(FakeSsm ssm, string steps, string parameters = "",
        IReadOnlyDictionary<string, string>? values = null, ExecutionControl? control = null, EventLog? log = null) =>
        AwsEngine.RunAsync(AwsEngine.Runner(AwsEngine.Settings(ssm: ssm.Endpoint.Url), Folder), steps, parameters, values, control, log);

    [Fact]
    public async Task SendCommand_CarriesTheStepsFields_AndEveryTargetsOutputGoesIntoTheLogUnderItsId()
    {
        await using var ssm = new FakeSsm
        {
            Instances = _ =>
            [
                Ok("i-0aaa", polls: 1, stdout: "backup of web done\nversion=1.4.2\n"),
                Ok("i-0bbb", polls: 3, stdout: "backup of web done\n"),
                Ok("i-0ccc", polls: 2, stdout: "backup of web done\n"),
            ],
        };

        var (outcome, log) = await RunAsync(ssm, """
            - id: backup
              action: ssm
              document: backup-application
              targets: { "tag:App": "{{ app }}" }
              parameters: { env: ["{{ env }}"], commands: ["echo 'it''s {{ env }}'"] }
              max_concurrency: 50%
              max_errors: 0
              timeout: 10m
              outputs: { version: 'version=(\S+)' }
            """, """
            app: { type: string }
            env: { type: string }
            """, new Dictionary<string, string> { ["app"] = "web", ["env"] = "staging \"blue\"" });

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Empty(ssm.ProtocolProblems);
        var sent = Assert.Single(ssm.CallsOf("SendCommand")).Body;
        Assert.Equal("backup-application", (string?)sent["DocumentName"]);
        Assert.Equal("""[{"Key":"tag:App","Values":["web"]}]""", sent["Targets"]!.ToJsonString());
        Assert.Equal("staging \"blue\"", (string?)sent["Parameters"]!["env"]![0]);
        Assert.Equal("echo 'it''s staging \"blue\"'", (string?)sent["Parameters"]!["commands"]![0]);
        Assert.Equal("50%", (string?)sent["MaxConcurrency"]);
        Assert.Equal("0", (string?)sent["MaxErrors"]);
        Assert.Equal(600, (int?)sent["TimeoutSeconds"]);
        var started = log.All<ExecutionStarted>().Single();
        Assert.StartsWith("RunbookPortal execution ", (string?)sent["Comment"], StringComparison.Ordinal);
        Assert.EndsWith(" step backup", (string?)sent["Comment"], StringComparison.Ordinal);

        var output = log.Output("backup", "stdout");
        Assert.Contains("[i-0aaa] version=1.4.2", output, StringComparison.Ordinal);
        Assert.Contains("[i-0bbb] backup of web done", output, StringComparison.Ordinal);
        Assert.Contains("[i-0ccc] Success", output, StringComparison.Ordinal);
        Assert.Contains("[i-0bbb] InProgress", output, StringComparison.Ordinal);
        Assert.Equal("1.4.2", log.All<StepSucceeded>().Single().Outputs["version"]);
        // Three targets, two to a page: every poll read both pages; each target's output was fetched once, when it ended.
        Assert.Equal(3, ssm.CallsOf("GetCommandInvocation").Count);
        Assert.Contains(ssm.CallsOf("ListCommandInvocations"), c => c.Body["NextToken"] is not null);
        Assert.NotNull(started);
    }

    [Fact]
    public async Task FailingTargets_FailTheStep_EachNamedWithHowItEnded()
    {
        await using var ssm = new FakeSsm
        {
            Instances = _ =>
            [
                Ok("i-0ok", stdout: "fine\n"),
                new("i-0bad", 1, "Failed", ExitCode: 3, Stdout: "restoring\n", Stderr: "disk full\n"),
                new("i-0slow", 2, "TimedOut", "DeliveryTimedOut", Delivered: false),
                new("i-0gone", 1, "Failed", "Undeliverable", Delivered: false),
            ],
        };

        var (outcome, log) = await RunAsync(ssm, """
            - id: restart
              action: ssm
              document: AWS-RunShellScript
              targets: { InstanceIds: [i-0ok, i-0bad, i-0slow, i-0gone] }
              parameters: { commands: ["systemctl restart web"] }
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Empty(ssm.ProtocolProblems);
        var reason = log.All<StepFailed>().Single().Reason;
        Assert.Contains("failed on 3 of 4 targets: ", reason, StringComparison.Ordinal);
        Assert.Contains("i-0bad (Failed, exit code 3)", reason, StringComparison.Ordinal);
        Assert.Contains("i-0slow (DeliveryTimedOut)", reason, StringComparison.Ordinal);
        Assert.Contains("i-0gone (Undeliverable)", reason, StringComparison.Ordinal);
        Assert.DoesNotContain("i-0ok", reason, StringComparison.Ordinal);
        Assert.Contains("[i-0bad] disk full", log.Output("restart", "stderr"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task OneTarget_ItsExitCode_IsTheStepsForValidate()
    {
        await using var ssm = new FakeSsm { Instances = _ => [new("i-0one", 1, "Failed", ExitCode: 2, Stdout: "nothing to do\n")] };

        var (outcome, log) = await RunAsync(ssm, """
            - id: probe
              action: ssm
              document: AWS-RunShellScript
              targets: { InstanceIds: [i-0one] }
              validate: { exit_code: 2 }
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status); // a failed command is a failed step, whatever exit_code expects
        Assert.Equal(2, log.All<StepFailed>().Single().ExitCode);
    }

    [Fact]
    public async Task MissingCredentials_FailTheStep_SayingHowToProvideThem()
    {
        await using var ssm = new FakeSsm();
        var settings = AwsEngine.Settings(ssm: ssm.Endpoint.Url, credentials: new UnavailableCredentials());

        var (outcome, log) = await AwsEngine.RunAsync(AwsEngine.Runner(settings, Folder), """
            - id: run
              action: ssm
              document: AWS-RunShellScript
              targets: { InstanceIds: [i-0one] }
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.StartsWith("no AWS credentials were found for the portal", log.All<StepFailed>().Single().Reason, StringComparison.Ordinal);
        Assert.Empty(ssm.Calls);
    }

    [Fact]
    public async Task OutputKeptForValidate_IsCappedAtTheStepsLimit()
    {
        var big = string.Concat(Enumerable.Range(0, 400).Select(i => $"line {i:000} of a long report ü\n"));
        await using var ssm = new FakeSsm { Instances = _ => [Ok("i-0one", stdout: big)] };
        var settings = AwsEngine.Settings(ssm: ssm.Endpoint.Url);
        var runner = new ExecutionRunner([new SsmStepExecutor(SsmClient.Create(settings), settings)], TimeProvider.System,
            new ExecutionOptions { MaxOutputBytesPerStep = 2048 }, 7);

        var (outcome, log) = await AwsEngine.RunAsync(runner, """
            - id: head
              action: ssm
              document: AWS-RunShellScript
              targets: { InstanceIds: [i-0one] }
              outputs: { first: 'line (000)' }
            - id: tail
              action: ssm
              document: AWS-RunShellScript
              targets: { InstanceIds: [i-0one] }
              validate: { regex: 'line 399' }
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Equal("000", log.All<StepSucceeded>().Single(s => s.StepId == "head").Outputs["first"]);
        Assert.Equal("the output does not match the regular expression line 399", log.All<StepFailed>().Single(s => s.StepId == "tail").Reason);
        Assert.Contains(log.All<StepOutputTruncated>(), t => t.StepId == "head");
    }

    /// <summary>What the SDK's providers raise when a source has no credentials.</summary>
    private sealed class UnavailableCredentials : Amazon.Runtime.AWSCredentials
    {
        public override Amazon.Runtime.ImmutableCredentials GetCredentials() =>
            throw new Amazon.Runtime.AmazonClientException("Failed to resolve AWS credentials. The credential providers used to search for credentials returned no credentials.");
    }

    [Fact]
    public async Task NoInstanceMatchingTheTargets_FailsTheStep()
    {
        await using var ssm = new FakeSsm();

        var (outcome, log) = await RunAsync(ssm, """
            - id: restart
              action: ssm
              document: AWS-RunShellScript
              targets: { "tag:App": nothing-has-this }
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Contains("no instance matched the targets", log.All<StepFailed>().Single().Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownDocument_FailsWithSsmsMessage()
    {
        await using var ssm = new FakeSsm
        {
            Intercept = c => c.Operation == "SendCommand" ? FakeSsm.Error("InvalidDocument", "Document with name no-such-doc does not exist.") : null,
        };

        var (outcome, log) = await RunAsync(ssm, """
            - id: run
              action: ssm
              document: no-such-doc
              targets: { InstanceIds: [i-0one] }
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Contains("SSM does not know the document of SendCommand of 'no-such-doc'", log.All<StepFailed>().Single().Reason, StringComparison.Ordinal);
        Assert.Contains("Document with name no-such-doc does not exist.", log.All<StepFailed>().Single().Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Throttling_IsRetriedWithBackoff_AndTheCommandStillRuns()
    {
        var throttled = 0;
        await using var ssm = new FakeSsm { Instances = _ => [Ok("i-0one", stdout: "ok\n")] };
        ssm.Intercept = c => (c.Operation is "SendCommand" or "ListCommandInvocations") && Interlocked.Increment(ref throttled) <= 3
            ? FakeSsm.Error("ThrottlingException", "Rate exceeded")
            : null;

        var (outcome, log) = await RunAsync(ssm, """
            - id: run
              action: ssm
              document: AWS-RunShellScript
              targets: { InstanceIds: [i-0one] }
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.True(ssm.CallsOf("SendCommand").Count >= 2, "the throttled SendCommand was sent again");
        Assert.Single(log.All<StepStarted>());
        Assert.Contains("[i-0one] ok", log.Output("run"), StringComparison.Ordinal);
        Assert.Empty(ssm.ProtocolProblems);
    }

    [Fact]
    public async Task PollsThrottledPastTheSdksRetries_AreTriedAgainLater_AndTheStepGoesOn()
    {
        var throttled = 0;
        await using var ssm = new FakeSsm { Instances = _ => [Ok("i-0one", polls: 2, stdout: "ok\n")] };
        // More than the SDK's 2 attempts of one call (SdkRetries 1): the executor itself waits and polls again.
        ssm.Intercept = c => c.Operation == "ListCommands" && Interlocked.Increment(ref throttled) <= 2
            ? FakeSsm.Error("ThrottlingException", "Rate exceeded")
            : null;
        var settings = new RunbookPortal.Engine.Execution.Steps.Aws.AwsStepSettings
        {
            Region = AwsEngine.Region, Credentials = AwsEngine.Settings().Credentials, SsmServiceUrl = ssm.Endpoint.Url, SdkRetries = 1,
            PollInterval = TimeSpan.FromMilliseconds(20), PollMaxInterval = TimeSpan.FromMilliseconds(100),
        };

        var (outcome, log) = await AwsEngine.RunAsync(AwsEngine.Runner(settings, Folder), """
            - id: run
              action: ssm
              document: AWS-RunShellScript
              targets: { InstanceIds: [i-0one] }
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Contains(log.All<StepOutput>(), o => o.Stream == "stderr" && o.Text.StartsWith("SSM did not answer the poll of ", StringComparison.Ordinal));
        Assert.Contains("[i-0one] ok", log.Output("run"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cancel_SendsCancelCommand_AndTheStepEndsWhenSsmSaysItIsCancelled()
    {
        await using var ssm = new FakeSsm { Instances = _ => [new("i-0long", int.MaxValue - 1)] };
        using var control = new ExecutionControl();
        var running = new EventLog();
        var run = RunAsync(ssm, """
            - id: long
              action: ssm
              document: AWS-RunShellScript
              targets: { InstanceIds: [i-0long] }
            """, control: control, log: running);

        await running.WaitFor<StepOutput>(o => o.Text == "[i-0long] InProgress");
        control.Cancel("ops@example.com", rollback: false);
        var (outcome, log) = await run;

        Assert.Equal(ExecutionStatus.Cancelled, outcome.Status);
        // The SDK may send it again (its own retry after the cancelled poll's connection broke); every one names the command.
        Assert.NotEmpty(ssm.CallsOf("CancelCommand"));
        Assert.Single(ssm.CallsOf("CancelCommand").Select(c => (string?)c.Body["CommandId"]).Distinct());

        Assert.Equal("AWS-RunShellScript", (string?)ssm.CallsOf("SendCommand")[0].Body["DocumentName"]);
        var cancelled = log.All<StepCancelled>().Single();
        Assert.Contains("cancelled by ops@example.com; CancelCommand sent to SSM; the command ended Cancelled", cancelled.Reason, StringComparison.Ordinal);
        Assert.Empty(ssm.ProtocolProblems);
    }

    [Fact]
    public async Task Timeout_SendsCancelCommand_AndFailsTimedOut()
    {
        await using var ssm = new FakeSsm { Instances = _ => [new("i-0long", int.MaxValue - 1)] };

        var (outcome, log) = await RunAsync(ssm, """
            - id: long
              action: ssm
              document: AWS-RunShellScript
              targets: { InstanceIds: [i-0long] }
              timeout: 1s
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.NotEmpty(ssm.CallsOf("CancelCommand"));
        Assert.Equal(30, (int?)ssm.CallsOf("SendCommand")[0].Body["TimeoutSeconds"]); // SSM's least delivery timeout
        var failed = log.All<StepFailed>().Single();
        Assert.True(failed.TimedOut);
        Assert.Contains("timed out after 1s; CancelCommand sent to SSM; the command ended Cancelled", failed.Reason, StringComparison.Ordinal);
    }
}
