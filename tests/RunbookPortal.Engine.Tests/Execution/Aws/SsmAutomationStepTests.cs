using RunbookPortal.Engine.Execution;

namespace RunbookPortal.Engine.Tests.Execution.Aws;

/// <summary><c>ssm_automation</c> steps against the local SSM endpoint.</summary>
public sealed class SsmAutomationStepTests : ScratchFolder
{
    private Task<(ExecutionOutcome Outcome, EventLog Log)> RunAsync(FakeSsm ssm, string steps, ExecutionControl? control = null, EventLog? log = null) =>
        AwsEngine.RunAsync(AwsEngine.Runner(AwsEngine.Settings(ssm: ssm.Endpoint.Url), Folder), steps, control: control, log: log);

    [Fact]
    public async Task Automation_StartsWithItsParameters_LogsEachStepsStatusAsItChanges_AndItsOutputsAreTheStepsOutput()
    {
        await using var ssm = new FakeSsm
        {
            Automations = _ => new FakeSsm.AutomationPlan(
                [("stopInstance", "aws:changeInstanceState", "Success", null), ("startInstance", "aws:changeInstanceState", "Success", null)],
                Outputs: new() { ["startInstance.InstanceStates"] = ["running"] }),
        };

        var (outcome, log) = await RunAsync(ssm, """
            - id: restart
              action: ssm_automation
              document: AWS-RestartEC2Instance
              parameters: { InstanceId: [i-0abc] }
              validate:
                json: { path: "$.startInstance.InstanceStates[0]", equals: running }
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Empty(ssm.ProtocolProblems);
        var start = Assert.Single(ssm.CallsOf("StartAutomationExecution")).Body;
        Assert.Equal("AWS-RestartEC2Instance", (string?)start["DocumentName"]);
        Assert.Equal("""{"InstanceId":["i-0abc"]}""", start["Parameters"]!.ToJsonString());
        var lines = log.All<StepOutput>().Where(o => o.StepId == "restart").Select(o => o.Text).ToList();
        Assert.Equal(1, lines.Count(l => l == "step stopInstance (aws:changeInstanceState): InProgress")); // once, though polled again
        Assert.Contains("step stopInstance (aws:changeInstanceState): Success", lines);
        Assert.Contains("step startInstance (aws:changeInstanceState): Success", lines);
        Assert.True(lines.IndexOf("step stopInstance (aws:changeInstanceState): Success") < lines.IndexOf("step startInstance (aws:changeInstanceState): Success"));
    }

    [Fact]
    public async Task FailedAutomation_FailsTheStep_WithTheFailingStepAndTheAutomationsMessage()
    {
        await using var ssm = new FakeSsm
        {
            Automations = _ => new FakeSsm.AutomationPlan(
                [("snapshot", "aws:createImage", "Failed", "The volume vol-0 is in use")], Status: "Failed",
                Failure: "Step fails when it is Executing. Fail message: The volume vol-0 is in use"),
        };

        var (outcome, log) = await RunAsync(ssm, """
            - id: image
              action: ssm_automation
              document: AWS-CreateImage
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Contains("ended Failed: Step fails when it is Executing. Fail message: The volume vol-0 is in use", log.All<StepFailed>().Single().Reason, StringComparison.Ordinal);
        Assert.Contains("step snapshot (aws:createImage): Failed: The volume vol-0 is in use", log.Output("image", "stderr"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownDocument_FailsWithAPlainMessage()
    {
        await using var ssm = new FakeSsm
        {
            Intercept = c => c.Operation == "StartAutomationExecution"
                ? FakeSsm.Error("AutomationDefinitionNotFoundException", "Automation definition no-such-doc not found.")
                : null,
        };

        var (outcome, log) = await RunAsync(ssm, """
            - id: go
              action: ssm_automation
              document: no-such-doc
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Contains("SSM does not know the Automation document of StartAutomationExecution of 'no-such-doc'", log.All<StepFailed>().Single().Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cancel_SendsStopAutomationExecution_AndWaitsForCancelled()
    {
        await using var ssm = new FakeSsm { Automations = _ => new FakeSsm.AutomationPlan([("wait", "aws:sleep", "Success", null)], Hangs: true) };
        using var control = new ExecutionControl();
        var running = new EventLog();
        var run = RunAsync(ssm, """
            - id: long
              action: ssm_automation
              document: Long-Automation
            """, control, running);

        await running.WaitFor<StepOutput>(o => o.Text == "step wait (aws:sleep): Success");
        control.Cancel("ops@example.com", rollback: false);
        var (outcome, log) = await run;

        Assert.Equal(ExecutionStatus.Cancelled, outcome.Status);
        var stop = ssm.CallsOf("StopAutomationExecution");
        Assert.NotEmpty(stop);
        Assert.Equal("Cancel", (string?)stop[0].Body["Type"]);
        Assert.Contains("StopAutomationExecution sent to SSM; the automation ended Cancelled", log.All<StepCancelled>().Single().Reason, StringComparison.Ordinal);
        Assert.Empty(ssm.ProtocolProblems);
    }
}
