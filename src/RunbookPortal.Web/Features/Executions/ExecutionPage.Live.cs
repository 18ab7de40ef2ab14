using Microsoft.AspNetCore.Components;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Data;

namespace RunbookPortal.Web.Features.Executions;

// ============================================================================================================
// Live events of the execution page: the ONE place that follows an execution. The page watches it through this
// node's ExecutionFeed, which hands over every event after the last one shown, in order and exactly once — those
// committed on this node and on any other (PostgreSQL) — and the page re-renders output at most every RenderEvery.
// It talks to the rest of the page through three members only:
//   LastSeq            the last seq the page has (0: none),
//   Received(events)   hands over new events, in seq order, each once,
//   ResetEvents()      forgets them (another execution is shown),
// plus LoadViewAsync() after a state change (statuses and times come from the execution's row).
// A circuit that reconnects keeps its state on the server, where the feed went on delivering; a new circuit reads
// the page afresh.
// ============================================================================================================
public sealed partial class ExecutionPage
{
    [Inject] private ExecutionFeed Feed { get; set; } = default!;

    private IAsyncDisposable? _subscription;
    private bool _renderDue;

    /// <summary>At most this often does new output re-render the page (a step may print thousands of lines a second).</summary>
    private static readonly TimeSpan RenderEvery = TimeSpan.FromMilliseconds(100);

    protected override async Task OnParametersSetAsync()
    {
        if (_subscription is not null)
            await _subscription.DisposeAsync(); // one delivery at a time: none is under way after this
        ResetEvents();
        ForgetOtherExecution();
        await LoadViewAsync();
        var id = Id;
        if (!RendererInfo.IsInteractive)
        {
            // Prerendering: the header, the steps and the log's tail now (the page opens showing the latest lines);
            // all of it once the circuit is up.
            if (!_missing)
                Received(await Scopes.InScopeAsync<ExecutionService, List<ExecutionEventRecord>>(s => s.TailAsync(id, LogView.PrerenderedLines)));
            return;
        }
        await LoadHistoryAsync(id);
        _subscription = Feed.Watch(id, LastSeq, async (batch, _) =>
        {
            await InvokeAsync(() => OnEventsAsync(id, batch));
            return !_disposed;
        });
    }

    /// <summary>
    /// What the run has recorded so far, in one read of the database before the first render (a finished run of 100,000
    /// lines opens at its tail at once); the feed then hands over what comes after it.
    /// </summary>
    private async Task LoadHistoryAsync(Guid id)
    {
        if (_missing)
            return;
        await using var scope = Scopes.CreateAsyncScope();
        var rows = scope.ServiceProvider.GetRequiredService<ExecutionService>().RecordsAsync(id);
        var batch = new List<ExecutionEventRecord>(ExecutionFeed.Page);
        await foreach (var row in rows)
        {
            batch.Add(row);
            if (batch.Count == ExecutionFeed.Page)
            {
                Received(batch);
                batch.Clear();
            }
        }
        Received(batch);
        await LoadViewAsync(); // the row as of the last event read (it was read before them)
    }

    /// <summary>New events, in order, each once: output re-renders soon; a state change reloads the execution's row at once.</summary>
    private async Task OnEventsAsync(Guid id, IReadOnlyList<ExecutionEventRecord> batch)
    {
        if (id != Id || _disposed)
            return;
        Received(batch);
        if (batch.All(e => e.Kind == EventKinds.StepOutput))
        {
            Changed(now: false);
            return;
        }
        await LoadViewAsync(); // statuses, steps and times come from the execution's row
        Changed(now: true);
    }

    /// <summary>New events to show: output re-renders at most every <see cref="RenderEvery"/>; a state change at once.</summary>
    private void Changed(bool now)
    {
        if (now)
        {
            StateHasChanged();
            return;
        }
        if (_renderDue)
            return;
        _renderDue = true;
        _ = RenderSoonAsync();
    }

    private async Task RenderSoonAsync()
    {
        await Task.Delay(RenderEvery);
        if (_disposed)
            return;
        try
        {
            await InvokeAsync(() =>
            {
                _renderDue = false;
                if (!_disposed)
                    StateHasChanged();
            });
        }
        catch (ObjectDisposedException)
        {
            // The circuit went away meanwhile.
        }
    }
}
