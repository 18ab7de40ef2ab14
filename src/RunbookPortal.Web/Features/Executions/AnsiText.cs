using System.Text;

namespace RunbookPortal.Web.Features.Executions;

/// <summary>A run of text in one style: <see cref="Css"/> is null for the default style, else CSS classes (<c>ansi-fg-31 ansi-bold</c>).</summary>
public readonly record struct AnsiSegment(string Text, string? Css);

/// <summary>
/// ANSI escape sequences in a line of step output, read into styled segments. Only SGR (<c>ESC [ … m</c>) is
/// understood: 0 reset, 1 bold, 22 normal intensity, 30–37 and 90–97 foreground, 39 default foreground, 40–47 and
/// 100–107 background, 49 default background; every other escape sequence is dropped. The result is text and class
/// names chosen here from a fixed set — never markup taken from the line (Blazor encodes the text).
/// Each line starts in the default style (a colour never bleeds into the next line).
/// </summary>
public static class AnsiText
{
    private const char Escape = '\u001b';

    public static List<AnsiSegment> Parse(string line)
    {
        var segments = new List<AnsiSegment>();
        if (line.IndexOf(Escape) < 0)
        {
            if (line.Length > 0)
                segments.Add(new AnsiSegment(line, null));
            return segments;
        }
        int? fg = null, bg = null;
        var bold = false;
        var text = new StringBuilder();
        var i = 0;
        while (i < line.Length)
        {
            var c = line[i];
            if (c != Escape)
            {
                text.Append(c);
                i++;
                continue;
            }
            var end = SequenceEnd(line, i, out var isSgr, out var parameters);
            if (isSgr)
            {
                Flush();
                Apply(parameters, ref fg, ref bg, ref bold);
            }
            i = end;
        }
        Flush();
        return segments;

        void Flush()
        {
            if (text.Length == 0)
                return;
            segments.Add(new AnsiSegment(text.ToString(), Css(fg, bg, bold)));
            text.Clear();
        }
    }

    /// <summary>The line as text, every escape sequence removed (what search looks in).</summary>
    public static string Strip(string line)
    {
        if (line.IndexOf(Escape) < 0)
            return line;
        var text = new StringBuilder(line.Length);
        var i = 0;
        while (i < line.Length)
        {
            if (line[i] != Escape)
            {
                text.Append(line[i++]);
                continue;
            }
            i = SequenceEnd(line, i, out _, out _);
        }
        return text.ToString();
    }

    /// <summary>Where the escape sequence at <paramref name="start"/> ends (the index after it).</summary>
    private static int SequenceEnd(string line, int start, out bool isSgr, out string parameters)
    {
        isSgr = false;
        parameters = "";
        var i = start + 1;
        if (i >= line.Length)
            return i;
        if (line[i] != '[')
            return i + 1; // a two-character escape (ESC c, ESC 7 …): dropped
        i++;
        var from = i;
        // CSI: parameter bytes 0x30–0x3F, intermediate bytes 0x20–0x2F, then one final byte 0x40–0x7E.
        while (i < line.Length && line[i] is >= '\u0030' and <= '\u003f')
            i++;
        var paramEnd = i;
        while (i < line.Length && line[i] is >= '\u0020' and <= '\u002f')
            i++;
        if (i >= line.Length)
            return i; // cut off: drop what there is
        var final = line[i];
        if (final is < '\u0040' or > '\u007e')
            return i; // not a sequence after all: drop the introducer only, keep the character
        isSgr = final == 'm' && paramEnd == i;
        parameters = line[from..paramEnd];
        return i + 1;
    }

    private static void Apply(string parameters, ref int? fg, ref int? bg, ref bool bold)
    {
        if (parameters.Length == 0)
        {
            fg = bg = null;
            bold = false;
            return;
        }
        foreach (var part in parameters.Split(';'))
        {
            if (part is "38" or "48")
                return; // 256 colours or RGB: its arguments are not codes of their own, and it is not rendered
            if (!int.TryParse(part.Length == 0 ? "0" : part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var code))
                continue;
            switch (code)
            {
                case 0: fg = bg = null; bold = false; break;
                case 1: bold = true; break;
                case 22: bold = false; break;
                case >= 30 and <= 37: fg = code; break;
                case 39: fg = null; break;
                case >= 40 and <= 47: bg = code; break;
                case 49: bg = null; break;
                case >= 90 and <= 97: fg = code; break;
                case >= 100 and <= 107: bg = code; break;
            }
        }
    }

    private static string? Css(int? fg, int? bg, bool bold)
    {
        if (fg is null && bg is null && !bold)
            return null;
        var parts = new List<string>(3);
        if (fg is { } f) parts.Add($"ansi-fg-{f}");
        if (bg is { } b) parts.Add($"ansi-bg-{b}");
        if (bold) parts.Add("ansi-bold");
        return string.Join(' ', parts);
    }
}
