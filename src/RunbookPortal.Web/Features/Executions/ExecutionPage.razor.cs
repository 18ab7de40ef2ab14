using System.Text.Json;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Authorization;
using Microsoft.JSInterop;
using MudBlazor;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Runbooks;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Account;
using RunbookPortal.Web.Features.Approvals;
using RunbookPortal.Web.Features.Runbooks;
using RunbookPortal.Web.Infrastructure;

namespace RunbookPortal.Web.Features.Executions;

/// <summary>
/// One execution: its header (status, version, requester, elapsed time, controls), its parameters (secrets masked by the
/// service), its steps as a timeline with the rollback phase, the log of the run or of one step, and its events.
/// How events arrive is in ExecutionPage.Live.cs; this part only keeps what it is handed.
/// </summary>
public sealed partial class ExecutionPage
{
    [Parameter] public Guid Id { get; set; }
    [CascadingParameter] private Task<AuthenticationState> AuthState { get; set; } = default!;
    [Inject] private IJSRuntime JS { get; set; } = default!;

    private ExecutionView? _view;
    private bool _missing;
    private List<BreadcrumbItem> _crumbs = [];

    /// <summary>Every event but output, in seq order (the timeline is derived from them).</summary>
    private readonly List<EventView> _history = [];

    /// <summary>The output, in seq order, for the whole run and per step.</summary>
    private readonly ExecutionLog _log = new();

    private long _lastSeq;

    /// <summary>The step (or "&lt;id&gt;.rollback") whose log is shown; null: the whole run's.</summary>
    private string? _logOf;

    /// <summary>The run's approval request (null: it needs none), reloaded with the execution on every event.</summary>
    private ApprovalView? _approval;
    private bool _approvalLooked;
    private Guid? _mayDecideFor;
    private IReadOnlyList<string>? _mayDecide;

    /// <summary>Whether each manual step of the run's version is required, read once when a step waits.</summary>
    private Dictionary<string, bool>? _required;

    private Guid? _loadedId;
    private ITimer? _ticker;
    private bool _disposed;

    private DateTime Now => Time.GetUtcNow().UtcDateTime;

    private long LastSeq => _lastSeq;

    /// <summary>New events, in seq order: output goes to the log, the rest to the history the timeline is read from.</summary>
    private void Received(IEnumerable<ExecutionEventRecord> events)
    {
        foreach (var e in events)
        {
            if (e.Seq <= _lastSeq)
                continue;
            _lastSeq = e.Seq;
            if (LogLine.Of(e) is { } line)
                _log.Add(line);
            else
                _history.Add(ExecutionService.ToView(e));
        }
    }

    private void ResetEvents()
    {
        _history.Clear();
        _log.Clear();
        _lastSeq = 0;
    }

    /// <summary>What belongs to the execution shown before, when another one is asked for.</summary>
    private void ForgetOtherExecution()
    {
        if (_loadedId == Id)
            return;
        _loadedId = Id;
        _approval = null;
        _approvalLooked = false;
        _mayDecide = null;
        _mayDecideFor = null;
        _required = null;
        _logOf = null;
    }

    protected override void OnInitialized()
    {
        // Elapsed times and retry countdowns move on by themselves while the run is going.
        _ticker = Time.CreateTimer(_ => _ = TickAsync(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    private async Task TickAsync()
    {
        if (_disposed || _view is null || ExecutionTimeline.IsEnded(_view.Status))
            return;
        try
        {
            await InvokeAsync(StateHasChanged);
        }
        catch (ObjectDisposedException)
        {
            // The circuit went away meanwhile.
        }
    }

    private async Task LoadViewAsync()
    {
        var id = Id;
        _view = await Scopes.InScopeAsync<ExecutionService, ExecutionView?>(s => s.GetAsync(id));
        _missing = _view is null;
        if (_view is not null)
        {
            _crumbs = [new("Executions", "/executions"), new(_view.Runbook, $"/runbooks/{_view.Runbook}"), new(id.ToString()[..8], null, disabled: true)];
            await LoadApprovalAsync(id);
            if (_view.Status == ExecutionStatus.WaitingForInput && _required is null)
                await LoadRequiredAsync(_view);
        }
    }

    /// <summary>
    /// The approval request, on every load: a run's request is opened with it, so a run that had none at the first
    /// look never gets one. Who may decide is read once per request while it is pending (it needs the role holders).
    /// </summary>
    private async Task LoadApprovalAsync(Guid id)
    {
        if (_approvalLooked && _approval is null)
            return;
        _approvalLooked = true;
        var approval = await Scopes.InScopeAsync<ApprovalService, ApprovalView?>(s => s.ForExecutionAsync(id));
        if (approval is { Status: ApprovalStatus.Pending } && _mayDecideFor != approval.Id)
        {
            _mayDecide = await Scopes.InScopeAsync<ApprovalService, List<string>>(s => s.MayDecideAsync(approval));
            _mayDecideFor = approval.Id;
        }
        if (id == Id)
            _approval = approval;
    }

    /// <summary>Which steps are required, from the version the run pinned (for what an abort will do).</summary>
    private async Task LoadRequiredAsync(ExecutionView view)
    {
        var version = await Scopes.InScopeAsync<RunbookCatalog, VersionDetails?>(c => c.GetVersionAsync(view.Runbook, view.Version));
        var definition = version is null ? null : RunbookValidator.Validate(version.Yaml).Definition;
        _required = definition?.Steps.ToDictionary(s => s.Id, s => s.Required) ?? [];
    }

    /// <summary>The manual step the run waits at, from the latest step_waiting_for_input event of the current step.</summary>
    private sealed record WaitingStep(long Seq, string StepId, string StepName, string? Instructions, string Role, DateTime? Deadline, bool? Required);

    private WaitingStep? Waiting()
    {
        if (_view is not { CurrentStepId: { } stepId })
            return null;
        var e = _history.LastOrDefault(x => x.Kind == EventKinds.StepWaitingForInput && x.StepId == stepId);
        if (e is null)
            return null;
        var name = _view.Steps.FirstOrDefault(s => s.Id == stepId)?.Name;
        DateTime? deadline = long.TryParse(Text(e, "timeoutMs"), out var ms) ? e.At.AddMilliseconds(ms) : null;
        bool? required = _required is not null && _required.TryGetValue(stepId, out var r) ? r : null;
        return new WaitingStep(e.Seq, stepId, string.IsNullOrEmpty(name) ? stepId : name, Text(e, "instructions"), Text(e, "role") ?? Roles.Operator, deadline, required);
    }

    /// <summary>The step the run failed (or was interrupted) at, as the timeline shows it.</summary>
    private static StepEntry? Failed(ExecutionTimeline timeline) => timeline.Steps.FirstOrDefault(s => s.IsFailedStep);

    private async Task DecideAsync(string stepId, ManualDecision decision, string? comment)
    {
        var actor = (await AuthState).User.ActorName();
        var id = Id;
        Report(await Scopes.InScopeAsync<ExecutionService, OperationResult>(s => s.DecideStepAsync(actor, id, stepId, decision, comment)),
            decision == ManualDecision.Continue ? $"Step {stepId} continued." : $"Step {stepId} aborted.");
    }

    private async Task CancelAsync()
    {
        var parameters = new DialogParameters<CancelDialog> { { d => d.Status, _view!.Status }, { d => d.Gated, _approval is not null } };
        var dialog = await Dialogs.ShowAsync<CancelDialog>("Cancel this execution?", parameters, new DialogOptions { MaxWidth = MaxWidth.Small, FullWidth = true });
        var result = await dialog.Result;
        if (result is not { Canceled: false, Data: bool rollback })
            return;
        var actor = (await AuthState).User.ActorName();
        Report(await Scopes.InScopeAsync<ExecutionService, OperationResult>(s => s.CancelAsync(actor, Id, rollback)), "Cancel requested.");
    }

    private async Task StopRollbackAsync()
    {
        var confirmed = await Dialogs.ShowMessageBoxAsync("Stop the rollback?",
            "The rollback step that is running is stopped (SIGTERM, then SIGKILL after the grace period) and the rollbacks not yet run are not run. The execution ends Failed: what was not rolled back stays as it is.",
            yesText: "Stop rollback", cancelText: "Keep rolling back");
        if (confirmed != true)
            return;
        var actor = (await AuthState).User.ActorName();
        Report(await Scopes.InScopeAsync<ExecutionService, OperationResult>(s => s.CancelAsync(actor, Id, rollback: false)), "Stop of the rollback requested.");
    }

    private async Task ResumeAsync()
    {
        // Which steps a resume may start from is the service's rule (a failed optional step does not stop a resume past it).
        var (choices, proposed) = await Scopes.InScopeAsync<ExecutionService, (IReadOnlyList<string> Steps, string? Proposed)>(s => s.ResumeChoicesAsync(Id));
        var steps = _view!.Steps.Where(s => choices.Contains(s.Id)).ToList();
        if (steps.Count == 0)
            return;
        var parameters = new DialogParameters<ResumeDialog> { { d => d.Steps, steps }, { d => d.Selected, proposed ?? steps[^1].Id } };
        var dialog = await Dialogs.ShowAsync<ResumeDialog>("Resume from which step?", parameters, new DialogOptions { MaxWidth = MaxWidth.Small, FullWidth = true });
        var result = await dialog.Result;
        if (result is not { Canceled: false, Data: string step })
            return;
        var actor = (await AuthState).User.ActorName();
        Report(await Scopes.InScopeAsync<ExecutionService, OperationResult>(s => s.ResumeAsync(actor, Id, step)), $"Resuming from {step}.");
    }

    private async Task RollbackAsync()
    {
        var confirmed = await Dialogs.ShowMessageBoxAsync("Roll back?", "The rollback of every succeeded step runs, in reverse order.", yesText: "Roll back", cancelText: "Cancel");
        if (confirmed != true)
            return;
        var actor = (await AuthState).User.ActorName();
        Report(await Scopes.InScopeAsync<ExecutionService, OperationResult>(s => s.RollbackAsync(actor, Id)), "Rollback queued.");
    }

    private void Report(OperationResult result, string ok) =>
        Snackbar.Add(result.Succeeded ? ok : result.Describe(), result.Succeeded ? Severity.Success : Severity.Error);

    /// <summary>The start page of the runbook with this run's values filled in (its secrets are asked again there).</summary>
    public static string RunAgainHref(ExecutionView v) => $"/runbooks/{Uri.EscapeDataString(v.Runbook)}/run?from={v.Id}";

    // ---- The log shown: the whole run's, or one step's (or rollback's).

    private async Task ShowLogAsync(string? stepId)
    {
        _logOf = stepId;
        try
        {
            await JS.InvokeVoidAsync("rbp.scrollToId", "execution-log");
        }
        catch (JSDisconnectedException)
        {
        }
    }

    /// <summary>The steps and rollbacks whose log may be chosen: every step that ran, in order, then the rollbacks that wrote output.</summary>
    private IEnumerable<string> LogChoices(ExecutionView v)
    {
        var written = _log.Steps.ToHashSet(StringComparer.Ordinal);
        var ran = ExecutionTimeline.From(v, _history);
        var choices = ran.Steps.Where(s => s.Attempts > 0 || written.Contains(s.Id)).Select(s => s.Id)
            .Concat((ran.Rollback?.Entries ?? []).Select(r => r.RollbackId))
            .Concat(written)
            .Distinct(StringComparer.Ordinal).ToList();
        if (_logOf is not null && !choices.Contains(_logOf))
            choices.Add(_logOf);
        return choices;
    }

    private static string LogName(ExecutionView v, string id)
    {
        var rollback = id.EndsWith(".rollback", StringComparison.Ordinal);
        var stepId = rollback ? id[..^".rollback".Length] : id;
        var step = v.Steps.FirstOrDefault(s => s.Id == stepId);
        var name = step is null || string.IsNullOrEmpty(step.Name) ? stepId : step.Name;
        return rollback ? $"the rollback of {name}" : $"{name} ({id})";
    }

    public static string LogHref(Guid id, string? stepId) => $"/api/executions/{id}/log" + (stepId is null ? "" : $"?step={Uri.EscapeDataString(stepId)}");

    public static string LogFileName(Guid id, string? stepId) => $"execution-{id.ToString()[..8]}{(stepId is null ? "" : "-" + stepId)}.log";

    // ---- The events list.

    private static string? Text(EventView e, string name) => ExecutionTimeline.Text(e, name);

    private static string Summary(EventView e) => e.Kind switch
    {
        EventKinds.StepInputReceived => Text(e, "decision") switch
        {
            "continue" => $"continued by {Text(e, "by")}{Said(e)}",
            "abort" => $"aborted by {Text(e, "by")}{Said(e)}",
            "timedout" => "timed out: no one decided in time",
            var other => $"{other} by {Text(e, "by")}{Said(e)}",
        },
        EventKinds.StepWaitingForInput => $"waits for a person with the {Text(e, "role") ?? Roles.Operator} role to continue or abort",
        EventKinds.ExecutionAwaitingApproval => $"needs approval: {Text(e, "policy")}",
        EventKinds.ExecutionApprovalRecorded or EventKinds.ExecutionApproved => $"approved by {Text(e, "by")} ({Text(e, "approvals")} of {Text(e, "requiredApprovals")}){Said(e)}",
        _ => Text(e, "reason") ?? Text(e, "status") ?? (Text(e, "attempt") is { } a ? $"attempt {a}" : ""),
    };

    /// <summary>": the comment" when the event carries one.</summary>
    private static string Said(EventView e) => Text(e, "comment") is { Length: > 0 } c ? $": {c}" : "";

    public void Dispose()
    {
        _disposed = true;
        _ = _subscription?.DisposeAsync().AsTask(); // stops the watch; a delivery under way sees _disposed
        _ticker?.Dispose();
    }
}
