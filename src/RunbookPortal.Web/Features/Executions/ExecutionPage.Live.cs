using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Data;

namespace RunbookPortal.Web.Features.Executions;

// ============================================================================================================
// Live events of the execution page: the ONE place that follows an execution — the notifier subscription, the
// catch-up from the database after a gap, and the batching of output renders (at most every RenderEvery).
// It talks to the rest of the page through three members only:
//   LastSeq            the last seq the page has (0: none),
//   Received(events)   hands over new events, in seq order, each once,
//   ResetEvents()      forgets them (another execution is shown),
// plus LoadViewAsync() after a state change (statuses and times come from the execution's row).
// Replacing the notifier plumbing means replacing this file; the timeline and the log do not change.
// ============================================================================================================
public sealed partial class ExecutionPage
{
    private IDisposable? _subscription;
    private readonly SemaphoreSlim _catchUp = new(1, 1);
    private bool _renderDue;

    /// <summary>At most this often does new output re-render the page (a step may print thousands of lines a second).</summary>
    private static readonly TimeSpan RenderEvery = TimeSpan.FromMilliseconds(100);

    protected override async Task OnParametersSetAsync()
    {
        await _catchUp.WaitAsync();
        try
        {
            _subscription?.Dispose();
            ResetEvents();
            ForgetOtherExecution();
        }
        finally
        {
            _catchUp.Release();
        }
        await LoadViewAsync();
        var id = Id;
        _subscription = Notifier.Subscribe(id, record => InvokeAsync(() => OnEventAsync(id, record)));
        await CatchUpAsync(id);
    }

    /// <summary>
    /// A published event: the next one in order is shown as it is, with no query; after a gap (this page subscribed
    /// while events were being written) the page reads what it missed.
    /// </summary>
    private async Task OnEventAsync(Guid id, ExecutionEventRecord record)
    {
        if (id != Id)
            return;
        await _catchUp.WaitAsync();
        var gap = false;
        try
        {
            var last = LastSeq;
            if (record.Seq <= last)
                return;
            gap = record.Seq != last + 1;
            if (!gap)
                Received([ExecutionService.ToView(record)]);
        }
        finally
        {
            _catchUp.Release();
        }
        if (gap)
        {
            await CatchUpAsync(id);
        }
        else if (record.Kind == EventKinds.StepOutput)
        {
            Changed(now: false);
        }
        else
        {
            await LoadViewAsync(); // statuses, steps and times come from the execution's row
            Changed(now: true);
        }
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

    /// <summary>Reads every event after the last one shown: nothing is missed, nothing shown twice.</summary>
    private async Task CatchUpAsync(Guid id)
    {
        await _catchUp.WaitAsync();
        try
        {
            const int page = 2000;
            var fresh = new List<EventView>();
            while (true)
            {
                var after = fresh.Count > 0 ? fresh[^1].Seq : LastSeq;
                var next = await Scopes.InScopeAsync<ExecutionService, List<EventView>>(s => s.EventsAsync(id, after, page));
                fresh.AddRange(next);
                if (next.Count < page)
                    break;
            }
            if (fresh.Count == 0 || id != Id)
                return; // nothing new, or the page moved on to another execution meanwhile
            Received(fresh);
            if (fresh.Any(e => e.Kind != EventKinds.StepOutput))
                await LoadViewAsync();
            Changed(now: true);
        }
        finally
        {
            _catchUp.Release();
        }
    }
}
