using System.Text.Json.Nodes;
using Amazon.SimpleSystemsManagement;
using Amazon.SimpleSystemsManagement.Model;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Execution.Steps.Aws;

/// <summary>
/// Runs an <c>ssm_automation</c> step: StartAutomationExecution with the document's parameters, then polls
/// GetAutomationExecution (pauses as for <see cref="SsmStepExecutor"/>) until the automation ends.
/// <list type="bullet">
/// <item>Each automation step's status goes into the log when it changes (<c>step restart (aws:executeScript): Success</c>),
/// with its failure message.</item>
/// <item>The step succeeds when the automation ends Success (or CompletedWithSuccess); its outputs, as JSON
/// (<c>{"step":{"output":["value"]}}</c>), are the step's output (so <c>validate: json</c> and <c>outputs</c> read them).</item>
/// <item>Cancel and timeout send StopAutomationExecution (Cancel) and wait a little for it to be Cancelled.</item>
/// </list>
/// </summary>
public sealed class SsmAutomationStepExecutor(IAmazonSimpleSystemsManagement ssm, AwsStepSettings settings, TimeProvider? time = null) : IStepExecutor
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public string Action => StepActions.SsmAutomation;

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var action = context.Step.SsmAutomation ?? throw new ArgumentException($"step '{context.Step.Id}' is not an ssm_automation step", nameof(context));
        var values = context.Values;
        var document = values.Render(action.Document).Trim();
        string id;
        try
        {
            var started = await ssm.StartAutomationExecutionAsync(new StartAutomationExecutionRequest
            {
                DocumentName = document,
                Parameters = action.Parameters.ToDictionary(p => p.Key, p => p.Value.Select(values.Render).ToList(), StringComparer.Ordinal),
            }, cancellationToken).ConfigureAwait(false);
            id = started.AutomationExecutionId;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return new StepResult(false, "", Error: SsmClient.Describe(ex, $"StartAutomationExecution of '{document}'"));
        }
        await context.WriteOutputAsync("stdout", $"SSM automation {id} started: {document}").ConfigureAwait(false);

        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        var delay = settings.PollInterval;
        try
        {
            while (true)
            {
                await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(settings.PollMaxInterval.Ticks, (long)(delay.Ticks * 1.5)));
                AutomationExecution execution;
                try
                {
                    execution = (await ssm.GetAutomationExecutionAsync(new GetAutomationExecutionRequest { AutomationExecutionId = id }, cancellationToken)
                        .ConfigureAwait(false)).AutomationExecution;
                }
                catch (Exception ex) when (ex is not OperationCanceledException && SsmClient.IsTransient(ex))
                {
                    await context.WriteOutputAsync("stderr", $"SSM did not answer the poll of automation {id} ({ex.Message}); polling again").ConfigureAwait(false);
                    delay = settings.PollMaxInterval;
                    continue;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    var error = SsmClient.Describe(ex, $"the poll of automation {id}");
                    var stopped = await StopAsync(context, id, seen).ConfigureAwait(false);
                    return new StepResult(false, "", Error: error) { StopSignal = stopped };
                }

                await ReportStepsAsync(context, execution, seen).ConfigureAwait(false);
                var status = execution.AutomationExecutionStatus;
                if (!IsFinal(status))
                    continue;
                var output = OutputsJson(execution.Outputs);
                foreach (var line in output.Split('\n'))
                    await context.WriteOutputAsync("stdout", line).ConfigureAwait(false);
                if (status == AutomationExecutionStatus.Success || status == AutomationExecutionStatus.CompletedWithSuccess)
                    return new StepResult(true, output);
                var failure = string.IsNullOrWhiteSpace(execution.FailureMessage) ? "" : $": {execution.FailureMessage}";
                return new StepResult(false, output, Error: $"SSM automation {id} ({document}) ended {status}{failure}");
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            var stopped = await StopAsync(context, id, seen).ConfigureAwait(false);
            return new StepResult(false, "", Error: "stopped") { StopSignal = stopped };
        }
    }

    private static bool IsFinal(AutomationExecutionStatus? status) =>
        status == AutomationExecutionStatus.Success || status == AutomationExecutionStatus.Failed || status == AutomationExecutionStatus.TimedOut
        || status == AutomationExecutionStatus.Cancelled || status == AutomationExecutionStatus.Rejected || status == AutomationExecutionStatus.Exited
        || status == AutomationExecutionStatus.CompletedWithSuccess || status == AutomationExecutionStatus.CompletedWithFailure;

    private static async Task ReportStepsAsync(StepContext context, AutomationExecution execution, Dictionary<string, string> seen)
    {
        foreach (var step in execution.StepExecutions ?? [])
        {
            var key = step.StepExecutionId ?? step.StepName;
            var status = step.StepStatus?.Value ?? "Pending";
            if (seen.TryGetValue(key, out var before) && before == status)
                continue;
            seen[key] = status;
            var failure = string.IsNullOrWhiteSpace(step.FailureMessage) ? "" : $": {step.FailureMessage}";
            await context.WriteOutputAsync(string.IsNullOrEmpty(failure) ? "stdout" : "stderr",
                $"step {step.StepName}{(string.IsNullOrEmpty(step.Action) ? "" : $" ({step.Action})")}: {status}{failure}").ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The automation's outputs as JSON: SSM names them <c>step.output</c>, so each is put under its step —
    /// <c>{"startInstance":{"InstanceStates":["running"]}}</c> — where <c>validate: json</c> paths can reach it.
    /// </summary>
    private static string OutputsJson(Dictionary<string, List<string>>? outputs)
    {
        var root = new JsonObject();
        foreach (var (name, list) in (outputs ?? []).OrderBy(o => o.Key, StringComparer.Ordinal))
        {
            var value = new JsonArray([.. (list ?? []).Select(v => (JsonNode?)JsonValue.Create(v))]);
            var dot = name.IndexOf('.', StringComparison.Ordinal);
            if (dot > 0 && dot < name.Length - 1 && (root[name[..dot]] ?? (root[name[..dot]] = new JsonObject())) is JsonObject step && !step.ContainsKey(name[(dot + 1)..]))
                step[name[(dot + 1)..]] = value;
            else if (!root.ContainsKey(name))
                root[name] = value;
        }
        return root.ToJsonString();
    }

    /// <summary>StopAutomationExecution (Cancel), then a short wait for Cancelled; answers what happened, in words.</summary>
    private async Task<string> StopAsync(StepContext context, string id, Dictionary<string, string> seen)
    {
        using var wait = new CancellationTokenSource(settings.StopWait, _time);
        string how;
        try
        {
            await ssm.StopAutomationExecutionAsync(new StopAutomationExecutionRequest { AutomationExecutionId = id, Type = StopType.Cancel }, wait.Token).ConfigureAwait(false);
            how = "StopAutomationExecution sent to SSM";
            while (true)
            {
                var execution = (await ssm.GetAutomationExecutionAsync(new GetAutomationExecutionRequest { AutomationExecutionId = id }, wait.Token)
                    .ConfigureAwait(false)).AutomationExecution;
                await ReportStepsAsync(context, execution, seen).ConfigureAwait(false);
                if (IsFinal(execution.AutomationExecutionStatus))
                {
                    how += $"; the automation ended {execution.AutomationExecutionStatus}";
                    break;
                }
                await Task.Delay(settings.PollInterval, _time, wait.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            how = $"StopAutomationExecution sent to SSM; the automation had not stopped {DurationParser.Format(settings.StopWait)} later";
        }
        catch (Exception ex)
        {
            how = $"StopAutomationExecution of {id} failed: {SsmClient.Describe(ex, "StopAutomationExecution")}";
        }
        await context.WriteOutputAsync("stderr", how).ConfigureAwait(false);
        return how;
    }
}
