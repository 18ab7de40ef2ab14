using Microsoft.AspNetCore.Components;
using Microsoft.JSInterop;

namespace RunbookPortal.Web.Features.Executions;

/// <summary>
/// A log (a step's, or a whole run's): virtualized rows of one fixed height, so 100,000 lines cost what the visible ones
/// cost; it follows the tail until the reader scrolls up, then offers to jump back. Search counts every occurrence
/// (case-insensitive, in the text without escape sequences) and moves between them. ANSI colours become classes;
/// the text itself is only ever rendered as text.
/// </summary>
public sealed partial class LogView
{
    /// <summary>The lines, in order; the list may grow between renders (it is the page's own, appended to).</summary>
    [Parameter, EditorRequired] public List<LogLine> Lines { get; set; } = [];

    /// <summary>What the log is, for people and screen readers ("Log of the whole run").</summary>
    [Parameter] public string Label { get; set; } = "Log";

    /// <summary>Show each line's step (the whole run's log).</summary>
    [Parameter] public bool ShowStep { get; set; }

    /// <summary>Whether more lines may come (the button then says "Jump to live").</summary>
    [Parameter] public bool Live { get; set; }

    [Parameter] public string? DownloadHref { get; set; }

    [Parameter] public string? DownloadName { get; set; }

    [Parameter] public string Empty { get; set; } = "No output yet.";

    public const int RowHeight = 20;

    /// <summary>The lines a page shows before it is interactive: as many as the view holds.</summary>
    public const int PrerenderedLines = 28;

    private ElementReference _scroller;
    private DotNetObjectReference<LogView>? _self;
    private bool _attached;
    private bool _follow = true;
    private bool _times;
    private string? _query;

    /// <summary>Every occurrence of the query: the line's index and where in its plain text.</summary>
    private readonly List<(int Line, int Start)> _matches = [];
    private int _current;

    /// <summary>How many lines the matches were looked for in (new lines are searched as they come).</summary>
    private int _searched;

    /// <summary>The line to bring into view after this render, when a match was chosen.</summary>
    private int? _reveal;

    private int _renderedCount = -1;

    protected override void OnParametersSet()
    {
        if (_searched > Lines.Count)
            Reset(); // another list (the page switched logs): search it afresh
        if (!string.IsNullOrEmpty(_query) && _searched < Lines.Count)
            Find(_searched);
    }

    private void Reset()
    {
        _matches.Clear();
        _current = 0;
        _searched = 0;
    }

    private async Task SearchAsync(string? query)
    {
        if (string.Equals(query, _query, StringComparison.Ordinal))
            return; // the same query again (the debounced field may report it twice): keep the current match
        _query = query;
        Reset();
        if (!string.IsNullOrEmpty(query))
        {
            Find(0);
            if (_matches.Count > 0)
            {
                // The first match at or after the line in the middle of the view would be nicer; the first one is predictable.
                _current = 0;
                await RevealAsync();
            }
        }
    }

    private void Find(int from)
    {
        var query = _query!;
        for (var i = from; i < Lines.Count; i++)
        {
            var text = Lines[i].Plain;
            var at = text.IndexOf(query, StringComparison.OrdinalIgnoreCase);
            while (at >= 0)
            {
                _matches.Add((i, at));
                at = text.IndexOf(query, at + query.Length, StringComparison.OrdinalIgnoreCase);
            }
        }
        _searched = Lines.Count;
    }

    private async Task MoveAsync(int by)
    {
        if (_matches.Count == 0)
            return;
        _current = ((_current + by) % _matches.Count + _matches.Count) % _matches.Count;
        await RevealAsync();
    }

    private async Task SearchKeyAsync(Microsoft.AspNetCore.Components.Web.KeyboardEventArgs e)
    {
        if (e.Key == "Enter")
            await MoveAsync(e.ShiftKey ? -1 : 1);
    }

    private Task RevealAsync()
    {
        _follow = false;
        _reveal = _matches[_current].Line;
        return Task.CompletedTask;
    }

    private void JumpToLiveAsync()
    {
        _follow = true;
        _renderedCount = -1; // scroll on the next render even if no line came
    }

    /// <summary>Called by the browser when the reader scrolls away from the end, or back to it.</summary>
    [JSInvokable]
    public void OnFollowChanged(bool atEnd)
    {
        if (_follow == atEnd)
            return;
        _follow = atEnd;
        StateHasChanged();
    }

    protected override async Task OnAfterRenderAsync(bool firstRender)
    {
        if (!_attached && Lines.Count > 0)
        {
            _self ??= DotNetObjectReference.Create(this);
            _attached = true;
            try
            {
                await JS.InvokeVoidAsync("rbp.logView.attach", _scroller, _self);
            }
            catch (JSDisconnectedException)
            {
                return;
            }
        }
        try
        {
            if (_reveal is { } line)
            {
                _reveal = null;
                await JS.InvokeVoidAsync("rbp.logView.reveal", _scroller, line, RowHeight);
            }
            else if (_follow && _renderedCount != Lines.Count)
            {
                _renderedCount = Lines.Count;
                await JS.InvokeVoidAsync("rbp.logView.toEnd", _scroller);
            }
        }
        catch (JSDisconnectedException)
        {
            // The circuit went away.
        }
    }

    private enum MatchKind { None, Match, Current }

    private readonly record struct Part(string Text, string? Css, MatchKind Match);

    /// <summary>The line's styled segments, split where a match of the query begins and ends.</summary>
    private IEnumerable<Part> Parts(LogLine line)
    {
        var segments = AnsiText.Parse(line.Text);
        if (string.IsNullOrEmpty(_query) || _matches.Count == 0)
        {
            foreach (var s in segments)
                yield return new Part(s.Text, s.Css, MatchKind.None);
            yield break;
        }
        var index = IndexOf(line);
        var ranges = new List<(int Start, int End, bool Current)>();
        if (index >= 0)
        {
            var first = FirstMatchOf(index);
            for (var m = first; m >= 0 && m < _matches.Count && _matches[m].Line == index; m++)
                ranges.Add((_matches[m].Start, _matches[m].Start + _query.Length, m == _current));
        }
        var offset = 0;
        foreach (var s in segments)
        {
            var start = offset;
            var end = offset + s.Text.Length;
            var at = start;
            foreach (var r in ranges)
            {
                if (r.End <= at || r.Start >= end)
                    continue;
                var from = Math.Max(r.Start, at);
                if (from > at)
                    yield return new Part(s.Text[(at - start)..(from - start)], s.Css, MatchKind.None);
                var to = Math.Min(r.End, end);
                yield return new Part(s.Text[(from - start)..(to - start)], s.Css, r.Current ? MatchKind.Current : MatchKind.Match);
                at = to;
            }
            if (at < end)
                yield return new Part(s.Text[(at - start)..], s.Css, MatchKind.None);
            offset = end;
        }
    }

    /// <summary>The first match on line <paramref name="line"/> (binary search: the matches are in line order), or -1.</summary>
    private int FirstMatchOf(int line)
    {
        int lo = 0, hi = _matches.Count - 1, found = -1;
        while (lo <= hi)
        {
            var mid = (lo + hi) / 2;
            if (_matches[mid].Line >= line)
            {
                if (_matches[mid].Line == line)
                    found = mid;
                hi = mid - 1;
            }
            else
            {
                lo = mid + 1;
            }
        }
        return found;
    }

    /// <summary>The index of <paramref name="line"/> in <see cref="Lines"/> (in seq order), or -1.</summary>
    private int IndexOf(LogLine line)
    {
        int lo = 0, hi = Lines.Count - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) / 2;
            var seq = Lines[mid].Seq;
            if (seq == line.Seq)
                return mid;
            if (seq < line.Seq) lo = mid + 1; else hi = mid - 1;
        }
        return -1;
    }

    private static string Joined(string? a, string b) => a is null ? b : $"{a} {b}";

    public async ValueTask DisposeAsync()
    {
        if (_attached)
        {
            try
            {
                await JS.InvokeVoidAsync("rbp.logView.detach", _scroller);
            }
            catch (JSDisconnectedException)
            {
            }
        }
        _self?.Dispose();
    }
}
