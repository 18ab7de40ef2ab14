using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Execution.Steps;

/// <summary>Runs a <c>wait</c> step: a pause on the <see cref="TimeProvider"/>, ended early by timeout or cancel.</summary>
public sealed class WaitStepExecutor(TimeProvider time) : IStepExecutor
{
    public string Action => StepActions.Wait;

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var wait = context.Step.Wait ?? throw new ArgumentException($"step '{context.Step.Id}' is not a wait step", nameof(context));
        // The timer starts before the line is written, so whoever sees the line may move a fake clock on.
        var pause = Task.Delay(ExecutionOptions.ClampTimer(wait.Duration), time, cancellationToken);
        await context.WriteOutputAsync("stdout", $"waiting {DurationParser.Format(wait.Duration)}").ConfigureAwait(false);
        try
        {
            await pause.ConfigureAwait(false);
            return new StepResult(true, "");
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return new StepResult(false, "", Error: "the wait was stopped");
        }
    }
}
