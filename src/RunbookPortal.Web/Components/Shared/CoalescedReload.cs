namespace RunbookPortal.Web.Components.Shared;

/// <summary>
/// For live pages: changes can arrive together, so one reload runs at a time, and one more after it when anything
/// changed while it read (it may have read before that change was written). Nothing is lost, nothing piles up.
/// </summary>
public sealed class CoalescedReload(Func<Task> reload)
{
    private int _reloading;
    private int _changedMeanwhile;

    public async Task RequestAsync()
    {
        Interlocked.Exchange(ref _changedMeanwhile, 1);
        if (Interlocked.Exchange(ref _reloading, 1) == 1)
            return;
        try
        {
            while (Interlocked.Exchange(ref _changedMeanwhile, 0) == 1)
                await reload();
        }
        finally
        {
            Interlocked.Exchange(ref _reloading, 0);
        }
        if (Volatile.Read(ref _changedMeanwhile) == 1)
            await RequestAsync(); // a change slipped in between the last read and the release
    }
}
