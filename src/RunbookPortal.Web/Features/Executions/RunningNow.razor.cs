using Microsoft.AspNetCore.Components;
using RunbookPortal.Engine.Execution;

namespace RunbookPortal.Web.Features.Executions;

/// <summary>
/// The runs in progress and the recent failures, live. A state change of any execution (from this node or, with
/// PostgreSQL, another) reloads the lists, at most every <see cref="MinReloadInterval"/>; output lines do not. The
/// elapsed times tick every second without a query, and every <see cref="SafetyReload"/> the lists reload anyway, should
/// a change have been missed. Timers start once the component is interactive and stop when it is disposed.
/// </summary>
public sealed partial class RunningNow
{
    /// <summary>The level of the two section headings (2 on a page of its own, 3 under the dashboard's heading).</summary>
    [Parameter] public int HeadingLevel { get; set; } = 2;

    /// <summary>The heading of the runs in progress.</summary>
    [Parameter] public string ActiveHeading { get; set; } = "In progress";

    public static readonly TimeSpan MinReloadInterval = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan TickInterval = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan SafetyReload = TimeSpan.FromSeconds(10);

    private readonly string _id = "rn-" + Guid.NewGuid().ToString("N")[..8];
    private readonly CancellationTokenSource _stop = new();
    private RunningNowView? _view;
    private DateTime _now;
    private IDisposable? _subscription;
    private PeriodicTimer? _ticker;
    private int _loads;
    private int _reloadPending;
    private long _lastLoad;
    private bool _disposed;

    private string HeadingTag => $"h{Math.Clamp(HeadingLevel, 1, 6)}";

    protected override async Task OnInitializedAsync()
    {
        _now = Time.GetUtcNow().UtcDateTime;
        await LoadAsync();
    }

    protected override async Task OnAfterRenderAsync(bool firstRender)
    {
        if (!firstRender || _disposed)
            return;
        // Interactive from here (a prerender never gets here): follow changes, then read once more for any between the first read and now.
        _subscription = Notifier.SubscribeAll(e => e.Kind is EventKinds.StepOutput or EventKinds.StepOutputTruncated ? Task.CompletedTask : ChangedAsync());
        _ticker = new PeriodicTimer(TickInterval, Time);
        _ = TickAsync(_ticker);
        await ChangedAsync();
    }

    private async Task LoadAsync()
    {
        var load = Interlocked.Increment(ref _loads);
        Volatile.Write(ref _lastLoad, Time.GetTimestamp());
        var view = await Scopes.InScopeAsync<RunningNowQuery, RunningNowView>(q => q.GetAsync(_stop.Token));
        if (load != Volatile.Read(ref _loads))
            return; // a later read answers instead
        _view = view;
        _now = view.At;
    }

    /// <summary>A state change: reload now, or once <see cref="MinReloadInterval"/> has passed since the last read; changes meanwhile share that reload.</summary>
    private async Task ChangedAsync()
    {
        if (Interlocked.Exchange(ref _reloadPending, 1) == 1)
            return;
        try
        {
            var wait = MinReloadInterval - Time.GetElapsedTime(Volatile.Read(ref _lastLoad));
            if (wait > TimeSpan.Zero)
                await Task.Delay(wait, Time, _stop.Token);
        }
        catch (OperationCanceledException)
        {
            return; // disposed meanwhile
        }
        finally
        {
            Volatile.Write(ref _reloadPending, 0); // a change from here on asks for another read
        }
        try
        {
            await InvokeAsync(async () =>
            {
                if (_disposed)
                    return;
                await LoadAsync();
                StateHasChanged();
            });
        }
        catch (Exception) when (!_disposed)
        {
            // The store did not answer this time: the board keeps what it showed, and the next change or the safety reload reads again.
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
            // Disposed meanwhile.
        }
    }

    private async Task TickAsync(PeriodicTimer ticker)
    {
        var ticks = 0;
        var every = (int)(SafetyReload / TickInterval);
        try
        {
            while (await ticker.WaitForNextTickAsync(_stop.Token))
            {
                if (++ticks % every == 0)
                {
                    await ChangedAsync();
                    continue;
                }
                if (_view is not { Active.Count: > 0 })
                    continue; // nothing ticks
                await InvokeAsync(() =>
                {
                    if (_disposed)
                        return;
                    _now = Time.GetUtcNow().UtcDateTime;
                    StateHasChanged();
                });
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
            // Disposed.
        }
    }

    private static string StepText(RunningExecution r) => r.Status switch
    {
        ExecutionStatus.AwaitingApproval => "Waiting for approval",
        ExecutionStatus.Queued when r.CurrentStepName is null => "Waiting for a node",
        ExecutionStatus.WaitingForInput => $"{r.CurrentStepName ?? "A manual step"} (waiting for a person)",
        ExecutionStatus.RollingBack when r.CurrentStepName is not null => $"Rolling back {r.CurrentStepName}",
        _ => r.CurrentStepName ?? "Starting",
    };

    private static string SinceLabel(ExecutionStatus s) => s switch
    {
        ExecutionStatus.AwaitingApproval => "requested at",
        ExecutionStatus.Queued => "queued at",
        _ => "started at",
    };

    public void Dispose()
    {
        _disposed = true;
        _subscription?.Dispose();
        _stop.Cancel();
        _ticker?.Dispose();
    }
}
