using System.Globalization;
using System.Text;
using Amazon.SimpleSystemsManagement;
using Amazon.SimpleSystemsManagement.Model;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Execution.Steps.Aws;

/// <summary>
/// Runs an <c>ssm</c> step: SendCommand (targets, parameters, max_concurrency, max_errors, a comment naming the execution and
/// step, the step's timeout as the delivery timeout), then polls ListCommandInvocations — the first pause
/// <see cref="AwsStepSettings.PollInterval"/>, each next half again as long up to <see cref="AwsStepSettings.PollMaxInterval"/> —
/// until the command and every target have ended.
/// <list type="bullet">
/// <item>A target's status changes go into the log; when it ends, its output (GetCommandInvocation) goes in under its id,
/// <c>[i-0abc] line</c>, stdout and stderr apart. The step's output (for <c>validate</c> and <c>outputs</c>) is the targets'
/// standard output, one after the other, without the prefix.</item>
/// <item>The step succeeds when the command ended Success on every target; otherwise it fails naming each failing target and
/// how it ended (Failed with its exit code, TimedOut, Cancelled, Delivery Timed Out, Undeliverable, …). No matching target fails it too.
/// With one target its exit code is the step's (<c>validate: exit_code</c>).</item>
/// <item>Cancel and timeout send CancelCommand and wait (at most <see cref="AwsStepSettings.StopWait"/>) for SSM to say it stopped.</item>
/// </list>
/// </summary>
public sealed class SsmStepExecutor(IAmazonSimpleSystemsManagement ssm, AwsStepSettings settings, TimeProvider? time = null) : IStepExecutor
{
    /// <summary>SendCommand's delivery timeout range.</summary>
    private static readonly (int Min, int Max) TimeoutSeconds = (30, 2_592_000);

    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public string Action => StepActions.Ssm;

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var action = context.Step.Ssm ?? throw new ArgumentException($"step '{context.Step.Id}' is not an ssm step", nameof(context));
        var values = context.Values;
        var document = values.Render(action.Document).Trim();
        var request = new SendCommandRequest
        {
            DocumentName = document,
            Targets = [.. action.Targets.Select(t => new Target { Key = values.Render(t.Key), Values = [.. t.Value.Select(values.Render)] })],
            Parameters = action.Parameters.ToDictionary(p => p.Key, p => p.Value.Select(values.Render).ToList(), StringComparer.Ordinal),
            Comment = Comment(action.Comment is { } comment ? values.Render(comment) : $"RunbookPortal execution {context.ExecutionId} step {context.Step.Id}"),
        };
        if (action.MaxConcurrency is { } concurrency)
            request.MaxConcurrency = concurrency;
        if (action.MaxErrors is { } errors)
            request.MaxErrors = errors;
        if (context.Step.Timeout is { } timeout)
            request.TimeoutSeconds = (int)Math.Clamp(Math.Ceiling(timeout.TotalSeconds), TimeoutSeconds.Min, TimeoutSeconds.Max);

        string commandId;
        try
        {
            var sent = await ssm.SendCommandAsync(request, cancellationToken).ConfigureAwait(false);
            commandId = sent.Command.CommandId;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return new StepResult(false, "", Error: SsmClient.Describe(ex, $"SendCommand of '{document}'"));
        }
        await context.WriteOutputAsync("stdout", $"SSM command {commandId} sent: {document} to {DescribeTargets(request.Targets)}").ConfigureAwait(false);

        var run = new CommandRun(commandId, context);
        try
        {
            return await PollAsync(run, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return await CancelAsync(run).ConfigureAwait(false);
        }
    }

    private static string Comment(string text) => text.Length <= SsmAction.MaxCommentLength ? text : text[..SsmAction.MaxCommentLength];

    private static string DescribeTargets(List<Target> targets) =>
        targets.Count == 0 ? "no targets" : string.Join(", ", targets.Select(t => $"{t.Key}={string.Join(",", t.Values ?? [])}"));

    private async Task<StepResult> PollAsync(CommandRun run, CancellationToken cancellationToken)
    {
        var delay = settings.PollInterval;
        var finalPolls = 0;
        while (true)
        {
            await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
            delay = TimeSpan.FromTicks(Math.Min(settings.PollMaxInterval.Ticks, (long)(delay.Ticks * 1.5)));
            Command? command;
            try
            {
                await run.UpdateAsync(ssm, cancellationToken).ConfigureAwait(false);
                command = (await ssm.ListCommandsAsync(new ListCommandsRequest { CommandId = run.CommandId }, cancellationToken).ConfigureAwait(false))
                    .Commands?.FirstOrDefault();
            }
            catch (Exception ex) when (ex is not OperationCanceledException && SsmClient.IsTransient(ex))
            {
                await run.Context.WriteOutputAsync("stderr", $"SSM did not answer the poll of {run.CommandId} ({ex.Message}); polling again").ConfigureAwait(false);
                delay = settings.PollMaxInterval;
                continue;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                var error = SsmClient.Describe(ex, $"the poll of command {run.CommandId}");
                var stop = await CancelAsync(run).ConfigureAwait(false);
                return new StepResult(false, run.Output, Error: error) { StopSignal = stop.StopSignal };
            }

            if (command is null || !IsFinal(command.Status))
                continue;
            // A target SSM has not reported ended a few polls after the command did is taken as it was last seen.
            if (!run.AllEnded && ++finalPolls < 3)
                continue;
            // The command ended: one more look, so a target that ended with it is read too.
            await run.UpdateAsync(ssm, cancellationToken).ConfigureAwait(false);
            return run.Result(command);
        }
    }

    private static bool IsFinal(CommandStatus? status) =>
        status == CommandStatus.Success || status == CommandStatus.Failed || status == CommandStatus.TimedOut || status == CommandStatus.Cancelled;

    /// <summary>Sends CancelCommand (with a token of its own: the step's is cancelled) and waits a little for SSM to report the command stopped.</summary>
    private async Task<StepResult> CancelAsync(CommandRun run)
    {
        using var wait = new CancellationTokenSource(settings.StopWait, _time);
        string how;
        try
        {
            await ssm.CancelCommandAsync(new CancelCommandRequest { CommandId = run.CommandId }, wait.Token).ConfigureAwait(false);
            how = "CancelCommand sent to SSM";
            var delay = settings.PollInterval;
            while (true)
            {
                var command = (await ssm.ListCommandsAsync(new ListCommandsRequest { CommandId = run.CommandId }, wait.Token).ConfigureAwait(false)).Commands?.FirstOrDefault();
                if (command is not null && IsFinal(command.Status))
                {
                    await run.UpdateAsync(ssm, wait.Token).ConfigureAwait(false);
                    how += $"; the command ended {command.Status}";
                    break;
                }
                await Task.Delay(delay, _time, wait.Token).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(settings.PollMaxInterval.Ticks, (long)(delay.Ticks * 1.5)));
            }
        }
        catch (OperationCanceledException)
        {
            how = $"CancelCommand sent to SSM; the command had not stopped {DurationParser.Format(settings.StopWait)} later";
        }
        catch (Exception ex)
        {
            how = $"CancelCommand for {run.CommandId} failed: {SsmClient.Describe(ex, "CancelCommand")}";
        }
        await run.Context.WriteOutputAsync("stderr", how).ConfigureAwait(false);
        return new StepResult(false, run.Output, Error: "stopped") { StopSignal = how };
    }

    /// <summary>What is known of one command's targets, and what of it has been written to the log.</summary>
    private sealed class CommandRun(string commandId, StepContext context)
    {
        private readonly Dictionary<string, string> _statuses = new(StringComparer.Ordinal);
        private readonly Dictionary<string, TargetResult> _ended = new(StringComparer.Ordinal);
        private readonly List<string> _order = [];
        private readonly StringBuilder _output = new();
        private int _keptBytes;

        public string CommandId { get; } = commandId;

        public StepContext Context { get; } = context;

        public string Output => _output.ToString();

        public bool AllEnded => _order.All(_ended.ContainsKey);

        public async Task UpdateAsync(IAmazonSimpleSystemsManagement ssm, CancellationToken cancellationToken)
        {
            string? next = null;
            do
            {
                var page = await ssm.ListCommandInvocationsAsync(new ListCommandInvocationsRequest { CommandId = CommandId, NextToken = next }, cancellationToken)
                    .ConfigureAwait(false);
                foreach (var invocation in page.CommandInvocations ?? [])
                    await SeeAsync(ssm, invocation, cancellationToken).ConfigureAwait(false);
                next = page.NextToken;
            }
            while (!string.IsNullOrEmpty(next));
        }

        private async Task SeeAsync(IAmazonSimpleSystemsManagement ssm, CommandInvocation invocation, CancellationToken cancellationToken)
        {
            var id = invocation.InstanceId;
            if (_ended.ContainsKey(id))
                return;
            if (!_statuses.ContainsKey(id))
                _order.Add(id);
            var status = invocation.StatusDetails ?? invocation.Status?.Value ?? "Pending";
            if (!_statuses.TryGetValue(id, out var before) || before != status)
            {
                _statuses[id] = status;
                await Context.WriteOutputAsync("stdout", $"[{id}] {status}").ConfigureAwait(false);
            }
            if (!IsEnded(invocation.Status))
                return;

            int? exitCode = null;
            try
            {
                var result = await ssm.GetCommandInvocationAsync(new GetCommandInvocationRequest { CommandId = CommandId, InstanceId = id }, cancellationToken)
                    .ConfigureAwait(false);
                exitCode = result.ResponseCode is { } code && code >= 0 ? code : null;
                foreach (var line in Lines(result.StandardOutputContent))
                    await Context.WriteOutputAsync("stdout", $"[{id}] {line}").ConfigureAwait(false);
                foreach (var line in Lines(result.StandardErrorContent))
                    await Context.WriteOutputAsync("stderr", $"[{id}] {line}").ConfigureAwait(false);
                if (!string.IsNullOrEmpty(result.StandardOutputContent))
                    Keep(result.StandardOutputContent.EndsWith('\n') ? result.StandardOutputContent : result.StandardOutputContent + "\n");
            }
            catch (AmazonSimpleSystemsManagementException ex) when (ex.ErrorCode is "InvocationDoesNotExist" or "InvocationDoesNotExistException")
            {
                // Never delivered (Undeliverable, Delivery Timed Out): there is no output to read.
            }
            _ended[id] = new TargetResult(id, invocation.Status == CommandInvocationStatus.Success, status, exitCode);
        }

        /// <summary>Keeps what fits of <see cref="StepContext.MaxOutputBytes"/> (UTF-8) for validate and outputs; the log has it all.</summary>
        private void Keep(string text)
        {
            var room = Context.MaxOutputBytes - _keptBytes;
            if (room <= 0)
                return;
            var bytes = Encoding.UTF8.GetByteCount(text);
            if (bytes > room)
            {
                var length = Math.Min(text.Length, room);
                while (length > 0 && Encoding.UTF8.GetByteCount(text.AsSpan(0, length)) > room)
                    length--;
                if (length > 0 && char.IsHighSurrogate(text[length - 1]))
                    length--;
                text = text[..length];
                bytes = Encoding.UTF8.GetByteCount(text);
            }
            _output.Append(text);
            _keptBytes += bytes;
        }

        private static bool IsEnded(CommandInvocationStatus? status) => status == CommandInvocationStatus.Success || status == CommandInvocationStatus.Failed
            || status == CommandInvocationStatus.TimedOut || status == CommandInvocationStatus.Cancelled;

        public StepResult Result(Command command)
        {
            var output = Output;
            if (_order.Count == 0)
                return new StepResult(false, output, Error: $"SSM command {CommandId} ended {command.Status} without running on any instance: no instance matched the targets");
            var targets = _order.Select(id => _ended.TryGetValue(id, out var ended) ? ended : new TargetResult(id, false, _statuses[id], null)).ToList();
            var single = targets.Count == 1 ? targets[0].ExitCode : null;
            var failing = targets.Where(t => !t.Succeeded).ToList();
            if (failing.Count == 0 && command.Status == CommandStatus.Success)
                return new StepResult(true, output, ExitCode: single);
            var named = string.Join(", ", failing.Select(t => t.ExitCode is { } code && code != 0
                ? $"{t.InstanceId} ({t.Status}, exit code {code.ToString(CultureInfo.InvariantCulture)})"
                : $"{t.InstanceId} ({t.Status})"));
            var error = failing.Count == 0
                ? $"SSM command {CommandId} ended {command.Status} ({command.StatusDetails})"
                : $"SSM command {CommandId} failed on {failing.Count} of {_order.Count} targets: {named}";
            return new StepResult(false, output, ExitCode: single, Error: error);
        }

        private static IEnumerable<string> Lines(string? text)
        {
            if (string.IsNullOrEmpty(text))
                yield break;
            var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
            var count = lines[^1].Length == 0 ? lines.Length - 1 : lines.Length;
            for (var i = 0; i < count; i++)
                yield return lines[i];
        }
    }

    private sealed record TargetResult(string InstanceId, bool Succeeded, string Status, int? ExitCode);
}
