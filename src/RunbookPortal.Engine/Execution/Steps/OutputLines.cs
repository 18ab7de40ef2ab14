using System.Text;

namespace RunbookPortal.Engine.Execution.Steps;

/// <summary>
/// Cuts streamed text into lines: <c>\n</c> ends a line, a <c>\r</c> before it is dropped, a NUL character becomes
/// U+FFFD (no database stores it in text, no environment variable can hold it), and a line longer than
/// <see cref="MaxLineChars"/> is cut into pieces so one endless line cannot fill the memory.
/// </summary>
internal sealed class LineSplitter
{
    public const int MaxLineChars = 16 * 1024;

    private readonly StringBuilder _line = new();

    /// <summary>Adds <paramref name="chars"/> and appends every line they complete to <paramref name="lines"/>.</summary>
    public void Append(ReadOnlySpan<char> chars, List<string> lines)
    {
        while (!chars.IsEmpty)
        {
            var newline = chars.IndexOf('\n');
            var take = newline < 0 ? chars.Length : newline;
            var room = MaxLineChars - _line.Length;
            if (take > room)
            {
                _line.Append(chars[..room]);
                lines.Add(Line());
                chars = chars[room..];
                continue;
            }
            _line.Append(chars[..take]);
            if (newline < 0)
                return;
            if (_line.Length > 0 && _line[^1] == '\r')
                _line.Length--;
            lines.Add(Line());
            chars = chars[(newline + 1)..];
        }
    }

    /// <summary>The last line when the text did not end with a newline.</summary>
    public string? Flush()
    {
        return _line.Length == 0 ? null : Line();
    }

    private string Line()
    {
        var line = _line.Replace('\0', '\uFFFD').ToString();
        _line.Clear();
        return line;
    }
}

/// <summary>Lines kept for <see cref="StepResult.Output"/>, up to a number of UTF-8 bytes; safe to fill from two streams at once.</summary>
internal sealed class CappedLines(int maxBytes)
{
    private readonly Lock _lock = new();
    private readonly StringBuilder _text = new();
    private long _bytes;

    public bool Truncated { get; private set; }

    public void Add(string line)
    {
        var bytes = Encoding.UTF8.GetByteCount(line) + 1;
        lock (_lock)
        {
            if (Truncated || _bytes + bytes > maxBytes)
            {
                Truncated = true;
                return;
            }
            _bytes += bytes;
            if (_text.Length > 0)
                _text.Append('\n');
            _text.Append(line);
        }
    }

    public override string ToString()
    {
        lock (_lock)
            return _text.ToString();
    }
}
