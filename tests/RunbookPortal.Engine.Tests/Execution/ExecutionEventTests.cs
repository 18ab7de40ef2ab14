using System.Text.Json;
using RunbookPortal.Engine.Execution;

namespace RunbookPortal.Engine.Tests.Execution;

/// <summary>Event kinds and data are part of the API: stable snake_case kinds, camelCase data.</summary>
public sealed class ExecutionEventTests
{
    public static TheoryData<ExecutionEvent, string, string?, string> Events => new()
    {
        { new ExecutionStarted(2, true), "execution_started", null, """{"startAt":2,"dryRun":true}""" },
        { new StepStarted("deploy", 1), "step_started", "deploy", """{"attempt":1}""" },
        { new StepOutput("deploy", "stderr", "warn"), "step_output", "deploy", """{"stream":"stderr","text":"warn"}""" },
        { new StepRetrying("deploy", 1, 2, TimeSpan.FromMilliseconds(10_500), "exited with code 1"), "step_retrying", "deploy", """{"attempt":1,"nextAttempt":2,"delayMs":10500,"reason":"exited with code 1"}""" },
        { new StepSucceeded("build", 2, new Dictionary<string, string> { ["version"] = "1.0" }, 1234), "step_succeeded", "build", """{"attempt":2,"outputs":{"version":"1.0"},"durationMs":1234}""" },
        { new StepFailed("deploy", 3, "timed out after 5m", true, 137), "step_failed", "deploy", """{"attempt":3,"reason":"timed out after 5m","timedOut":true,"exitCode":137,"httpStatus":null}""" },
        { new StepSkipped("deploy", "dry run: would run x"), "step_skipped", "deploy", """{"reason":"dry run: would run x"}""" },
        { new StepOutputTruncated("deploy", 1024), "step_output_truncated", "deploy", """{"limitBytes":1024}""" },
        { new RollbackStarted("step 'x' failed"), "rollback_started", null, """{"reason":"step 'x' failed"}""" },
        { new RollbackStepStarted("backup"), "rollback_step_started", "backup", """{"rollbackStepId":"backup.rollback"}""" },
        { new RollbackStepSucceeded("backup"), "rollback_step_succeeded", "backup", """{"rollbackStepId":"backup.rollback"}""" },
        { new RollbackStepFailed("backup", "exited with code 4"), "rollback_step_failed", "backup", """{"rollbackStepId":"backup.rollback","reason":"exited with code 4"}""" },
        { new ExecutionFinished(ExecutionStatus.Failed, "deploy", "step 'deploy' failed", true), "execution_finished", null, """{"status":"Failed","failedStepId":"deploy","reason":"step 'deploy' failed","rolledBack":true}""" },
    };

    [Theory]
    [MemberData(nameof(Events))]
    public void EachEvent_HasItsKind_StepId_AndData(ExecutionEvent e, string kind, string? stepId, string data)
    {
        Assert.Equal(kind, e.Kind);
        Assert.Equal(stepId, e.StepId);
        Assert.Equal(data, e.Data().GetRawText());
        Assert.Equal(JsonValueKind.Object, e.Data().ValueKind);
    }
}
