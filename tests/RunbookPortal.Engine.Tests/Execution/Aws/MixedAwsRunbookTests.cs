using RunbookPortal.Engine.Execution;

namespace RunbookPortal.Engine.Tests.Execution.Aws;

/// <summary>A runbook of shell, ssm and lambda steps, end to end against the local SSM and Lambda endpoints.</summary>
public sealed class MixedAwsRunbookTests : ScratchFolder
{
    private const string Deploy = """
        - id: build
          action: shell
          run: echo "artifact=web-{{ version }}.tar.gz"
          outputs: { artifact: 'artifact=(\S+)' }
        - id: backup
          action: ssm
          document: backup-application
          targets: { "tag:App": web }
          parameters: { artifact: ["{{ steps.build.outputs.artifact }}"] }
          rollback:
            action: ssm
            document: restore-application
            targets: { "tag:App": web }
            parameters: { artifact: ["{{ steps.build.outputs.artifact }}"] }
        - id: verify
          action: lambda
          function: verify-deployment
          payload: { artifact: "{{ steps.build.outputs.artifact }}", version: "{{ version }}" }
          validate: { json: { path: "$.healthy", equals: "true" } }
        """;

    [Fact]
    public async Task AFailingLambdaStep_RollsBackTheSsmStep_WithARestoreCommand()
    {
        await using var ssm = new FakeSsm { Instances = _ => [new("i-0web1", 1, Stdout: "done\n"), new("i-0web2", 2, Stdout: "done\n")] };
        await using var lambda = new AwsTestEndpoint("lambda", AwsEngine.Region, (_, _) => Task.FromResult(new AwsTestEndpoint.Response(200,
            """{"errorType":"HealthCheckFailed","errorMessage":"5xx rate 12% on web-2.0.1"}""",
            new Dictionary<string, string> { ["X-Amz-Function-Error"] = "Handled" })));
        var runner = AwsEngine.Runner(AwsEngine.Settings(lambda: lambda.Url, ssm: ssm.Endpoint.Url), Folder);

        var (outcome, log) = await AwsEngine.RunAsync(runner, Deploy, "version: { type: string }", new Dictionary<string, string> { ["version"] = "2.0.1" });

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Equal("verify", outcome.FailedStepId);
        Assert.True(outcome.RolledBack);
        Assert.Contains("the function 'verify-deployment' failed (Handled): HealthCheckFailed: 5xx rate 12% on web-2.0.1", outcome.Reason, StringComparison.Ordinal);

        var commands = ssm.CallsOf("SendCommand").Select(c => c.Body).ToList();
        Assert.Equal(["backup-application", "restore-application"], commands.Select(c => (string?)c["DocumentName"]));
        Assert.All(commands, c => Assert.Equal("web-2.0.1.tar.gz", (string?)c["Parameters"]!["artifact"]![0]));
        Assert.EndsWith("step backup.rollback", (string?)commands[1]["Comment"], StringComparison.Ordinal);
        Assert.Equal("""{"artifact":"web-2.0.1.tar.gz","version":"2.0.1"}""", Assert.Single(lambda.Requests).BodyText);
        Assert.Single(log.All<RollbackStepSucceeded>(), r => r.StepId == "backup");
        Assert.Empty(ssm.ProtocolProblems);
        Assert.Empty(lambda.SignatureProblems);
    }

    [Fact]
    public void DryRun_SaysWhatEachAwsStepWouldCall()
    {
        var runner = AwsEngine.Runner(AwsEngine.Settings(), Folder);
        var plan = Engine.Plan(Engine.Runbook(Deploy + "\n" + """
            - id: restart
              action: ssm_automation
              document: AWS-RestartEC2Instance
            """, "version: { type: string }"), new Dictionary<string, string> { ["version"] = "2.0.3" }, dryRun: true);

        var preview = runner.Preview(plan).Skip(1).Select(p => p.Text).ToList(); // after the shell step

        Assert.Equal(
            [
                "send the SSM command backup-application to tag:App=web",
                "invoke the Lambda function verify-deployment",
                "start the SSM automation AWS-RestartEC2Instance",
            ],
            preview);
    }

    [Fact]
    public async Task WhenEveryStepSucceeds_NothingIsRolledBack()
    {
        await using var ssm = new FakeSsm { Instances = _ => [new("i-0web1", 1, Stdout: "done\n")] };
        await using var lambda = new AwsTestEndpoint("lambda", AwsEngine.Region,
            (_, _) => Task.FromResult(new AwsTestEndpoint.Response(200, """{"healthy":true}""")));
        var runner = AwsEngine.Runner(AwsEngine.Settings(lambda: lambda.Url, ssm: ssm.Endpoint.Url), Folder);

        var (outcome, log) = await AwsEngine.RunAsync(runner, Deploy, "version: { type: string }", new Dictionary<string, string> { ["version"] = "2.0.2" });

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal(["backup-application"], ssm.CallsOf("SendCommand").Select(c => (string?)c.Body["DocumentName"]));
        Assert.Equal(["build", "backup", "verify"], log.All<StepSucceeded>().Select(s => s.StepId));
    }
}
