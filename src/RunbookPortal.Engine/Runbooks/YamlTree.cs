using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace RunbookPortal.Engine.Runbooks;

/// <summary>A 1-based line and column plus the 0-based character offset in the source.</summary>
internal readonly record struct SourcePosition(int Line, int Column, long Index)
{
    public static readonly SourcePosition DocumentStart = new(1, 1, 0);

    public static SourcePosition From(Mark mark) =>
        new((int)Math.Clamp(mark.Line, 1, int.MaxValue), (int)Math.Clamp(mark.Column, 1, int.MaxValue), Math.Max(0, mark.Index));
}

/// <summary>A node of the YAML tree the validator reads, every node with its position.</summary>
internal abstract class YNode(SourcePosition start, SourcePosition end)
{
    public SourcePosition Start { get; } = start;
    public SourcePosition End { get; } = end;
}

internal sealed class YScalar(SourcePosition start, SourcePosition end, string value, ScalarStyle style, bool forcedString) : YNode(start, end)
{
    public string Value { get; } = value;
    public ScalarStyle Style { get; } = style;

    /// <summary>Plain and untagged: its type follows from its text (YAML 1.2 core schema).</summary>
    public bool IsPlain { get; } = style is ScalarStyle.Plain or ScalarStyle.Any && !forcedString;

    public bool IsNull => IsPlain && YamlScalars.IsNull(Value);
}

internal readonly record struct YEntry(YScalar Key, YNode Value);

internal sealed class YMap(SourcePosition start, SourcePosition end, List<YEntry> entries) : YNode(start, end)
{
    public List<YEntry> Entries { get; } = entries;
}

internal sealed class YSeq(SourcePosition start, SourcePosition end, List<YNode> items) : YNode(start, end)
{
    public List<YNode> Items { get; } = items;
}

/// <summary>How plain scalars resolve (the YAML 1.2 core schema, decimal integers only).</summary>
internal static class YamlScalars
{
    public static bool IsNull(string text) => text is "" or "~" or "null" or "Null" or "NULL";

    public static bool IsBool(string text) => text is "true" or "True" or "TRUE" or "false" or "False" or "FALSE";

    public static bool IsInteger(string text)
    {
        var span = text.AsSpan();
        if (span.Length > 0 && span[0] is '-' or '+')
            span = span[1..];
        if (span.IsEmpty)
            return false;
        foreach (var c in span)
        {
            if (!char.IsAsciiDigit(c))
                return false;
        }
        return true;
    }

    public static bool IsFloat(string text) =>
        text.Length > 0
        && (char.IsAsciiDigit(text[0]) || text[0] is '-' or '+' or '.')
        && text.AsSpan().IndexOfAnyExcept("0123456789+-.eE") < 0
        && double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out _);
}

/// <summary>
/// Reads YAML into a <see cref="YNode"/> tree from YamlDotNet's parser events, refusing what a runbook must not
/// use: aliases and anchors (no expansion ever happens, so no billion laughs), custom tags, nesting deeper than
/// <see cref="RunbookLimits.MaxDepth"/>, and more than one document. Syntax errors become diagnostics.
/// </summary>
internal sealed class YamlTreeReader
{
    private const string CoreTagPrefix = "tag:yaml.org,2002:";

    private readonly string source;
    private readonly DiagnosticBag diagnostics;
    private readonly Parser parser;
    private bool anchorReported;

    /// <summary>The keys and indexes leading to the node being read; turned into a path only for a diagnostic.</summary>
    private readonly List<(string? Key, int Index)> pathSegments = [];

    /// <summary>Whether an alias was met; the tree then holds placeholders, so the runbook itself is not checked further.</summary>
    public bool SawAlias { get; private set; }

    private YamlTreeReader(string source, DiagnosticBag diagnostics)
    {
        this.source = source;
        this.diagnostics = diagnostics;
        parser = new Parser(new StringReader(source));
    }

    /// <summary>
    /// The root node, or <c>null</c> when the document is empty, unreadable or uses aliases (the diagnostics say why).
    /// </summary>
    public static YNode? Read(string source, DiagnosticBag diagnostics)
    {
        var reader = new YamlTreeReader(source, diagnostics);
        var root = reader.ReadStream();
        return reader.SawAlias ? null : root;
    }

    private YNode? ReadStream()
    {
        try
        {
            if (!parser.MoveNext() || parser.Current is not StreamStart || !parser.MoveNext())
                return Empty();
            if (parser.Current is StreamEnd)
                return Empty();
            if (parser.Current is not DocumentStart)
                return Unreadable();
            if (!parser.MoveNext())
                return Unreadable();

            var root = ReadNode(1);
            if (root is null)
                return null;

            if (parser.Current is not DocumentEnd || !parser.MoveNext())
                return Unreadable();
            if (parser.Current is DocumentStart second)
            {
                diagnostics.Error(SourcePosition.From(second.Start), "",
                    "a file holds exactly one runbook, but a second YAML document starts here; remove the `---` and what follows, or put it in its own file");
            }
            return root;
        }
        catch (YamlException exception)
        {
            ReportSyntaxError(exception);
            return null;
        }
        catch (Exception exception) when (exception is InvalidOperationException or ArgumentException or IndexOutOfRangeException or FormatException)
        {
            // YamlDotNet's scanner throws these on a few malformed inputs (e.g. `{ a: 1, {{b: 2 }` throws
            // InvalidOperationException) instead of a YamlException: report them as syntax errors too.
            var at = parser.Current is { } current ? SourcePosition.From(current.End) : SourcePosition.DocumentStart;
            diagnostics.Error(at, "", "the YAML is not well-formed after this point; check the brackets, braces and quotes that follow");
            return null;
        }
    }

    private YNode? Empty()
    {
        diagnostics.Error(SourcePosition.DocumentStart, "", "the document is empty; start with `apiVersion: runbooks/v1`, then `name`, `title`, `type` and `steps`");
        return null;
    }

    private YNode? Unreadable()
    {
        diagnostics.Error(parser.Current is { } current ? SourcePosition.From(current.Start) : SourcePosition.DocumentStart, "",
            "the YAML could not be read here");
        return null;
    }

    /// <summary>Reads the node at the current event and moves past it; <c>null</c> means reading stopped.</summary>
    private YNode? ReadNode(int depth)
    {
        switch (parser.Current)
        {
            case AnchorAlias alias:
            {
                var start = SourcePosition.From(alias.Start);
                SawAlias = true;
                diagnostics.Error(start, CurrentPath(), $"anchors and aliases are not supported; write the value out in full instead of `*{alias.Value}`");
                parser.MoveNext();
                return new YScalar(start, SourcePosition.From(alias.End), "", ScalarStyle.Plain, forcedString: false);
            }
            case Scalar scalar:
            {
                CheckAnchor(scalar);
                var forcedString = CheckTag(scalar, scalar.Tag, isScalar: true);
                var node = new YScalar(SourcePosition.From(scalar.Start), SourcePosition.From(scalar.End), scalar.Value, scalar.Style, forcedString);
                parser.MoveNext();
                return node;
            }
            case SequenceStart sequence:
            {
                CheckAnchor(sequence);
                CheckTag(sequence, sequence.Tag, isScalar: false);
                if (depth > RunbookLimits.MaxDepth)
                    return TooDeep(sequence);
                var items = new List<YNode>();
                if (!parser.MoveNext())
                    return null;
                while (parser.Current is not SequenceEnd)
                {
                    pathSegments.Add((null, items.Count));
                    var item = ReadNode(depth + 1);
                    pathSegments.RemoveAt(pathSegments.Count - 1);
                    if (item is null)
                        return null;
                    items.Add(item);
                }
                var end = SourcePosition.From(parser.Current.End);
                parser.MoveNext();
                return new YSeq(SourcePosition.From(sequence.Start), end, items);
            }
            case MappingStart mapping:
            {
                CheckAnchor(mapping);
                CheckTag(mapping, mapping.Tag, isScalar: false);
                if (depth > RunbookLimits.MaxDepth)
                    return TooDeep(mapping);
                var entries = new List<YEntry>();
                if (!parser.MoveNext())
                    return null;
                while (parser.Current is not MappingEnd)
                {
                    var key = ReadNode(depth + 1);
                    if (key is null)
                        return null;
                    pathSegments.Add((key is YScalar k ? k.Value : "?", -1));
                    var value = ReadNode(depth + 1);
                    pathSegments.RemoveAt(pathSegments.Count - 1);
                    if (value is null)
                        return null;
                    if (key is YScalar scalarKey)
                        entries.Add(new YEntry(scalarKey, value));
                    else
                        diagnostics.Error(key.Start, CurrentPath(), "keys must be plain text, not a mapping or a list");
                }
                var end = SourcePosition.From(parser.Current.End);
                parser.MoveNext();
                return new YMap(SourcePosition.From(mapping.Start), end, entries);
            }
            default:
                return Unreadable();
        }
    }

    private string CurrentPath()
    {
        var path = "";
        foreach (var (key, index) in pathSegments)
            path = key is null ? RunbookPath.Item(path, index) : RunbookPath.Child(path, key);
        return path;
    }

    private YNode? TooDeep(ParsingEvent at)
    {
        diagnostics.Error(SourcePosition.From(at.Start), CurrentPath(),
            $"the document nests mappings and lists deeper than {RunbookLimits.MaxDepth} levels; a runbook never needs that, flatten it");
        return null;
    }

    private void CheckAnchor(NodeEvent node)
    {
        if (node.Anchor.IsEmpty || anchorReported)
            return;
        anchorReported = true; // one report is enough: the anchor itself is harmless, its aliases are reported each
        diagnostics.Error(SourcePosition.From(node.Start), CurrentPath(),
            $"anchors and aliases are not supported; remove `&{node.Anchor.Value}` and write repeated values out in full");
    }

    /// <summary>Refuses application tags; answers whether the node is forced to be a string (<c>!!str</c>, <c>!</c>).</summary>
    private bool CheckTag(NodeEvent node, TagName tag, bool isScalar)
    {
        if (tag.IsEmpty)
            return false;
        if (tag.IsNonSpecific)
            return isScalar && tag.Value == "!";
        var value = tag.Value;
        if (value.StartsWith(CoreTagPrefix, StringComparison.Ordinal))
        {
            var name = value[CoreTagPrefix.Length..];
            if (name is "str" or "int" or "bool" or "null" or "float" or "map" or "seq")
                return name == "str";
        }
        diagnostics.Error(SourcePosition.From(node.Start), CurrentPath(), $"YAML tags such as `{Shorten(value)}` are not supported; remove the tag");
        return false;
    }

    private static string Shorten(string value) =>
        value.StartsWith(CoreTagPrefix, StringComparison.Ordinal) ? "!!" + value[CoreTagPrefix.Length..] : value;

    private void ReportSyntaxError(YamlException exception)
    {
        var position = SourcePosition.From(exception.Start);
        var raw = exception.Message;
        string message;
        if (raw.Contains("tab", StringComparison.OrdinalIgnoreCase))
        {
            position = FirstTabIndentation(position);
            message = "a tab is used for indentation; YAML indents with spaces only";
        }
        else if (raw.Contains("Mapping values are not allowed", StringComparison.Ordinal) || raw.Contains("found invalid mapping", StringComparison.Ordinal))
        {
            message = "a `key: value` cannot start here; check this line's indentation, or quote the value if it contains ': '";
        }
        else if (raw.Contains("could not find expected ':'", StringComparison.Ordinal))
        {
            message = "expected `key: value` here; a ':' is missing, or a multi-line text needs `|` or quotes";
        }
        else if (raw.Contains("did not find expected key", StringComparison.Ordinal))
        {
            message = "this line does not line up with the keys above it; check its indentation";
        }
        else if (raw.Contains("did not find expected '-' indicator", StringComparison.Ordinal))
        {
            message = "this line does not line up with the list items above it; check its indentation or add the missing '- '";
        }
        else if (raw.Contains("quoted scalar", StringComparison.Ordinal) && raw.Contains("end of stream", StringComparison.Ordinal))
        {
            message = "a quoted text is not closed; add the closing quote";
        }
        else if (raw.Contains("multi-line", StringComparison.Ordinal) && raw.Contains("quoted", StringComparison.Ordinal))
        {
            message = "a quoted text runs on over several lines; close the quote, or indent its continuation lines more than its key";
        }
        else if (raw.Contains("did not find expected ',' or ']'", StringComparison.Ordinal))
        {
            message = "a `[ … ]` list is not closed; add the missing ',' or ']', and quote values that contain ',', '[', ']', '{' or '}'";
        }
        else if (raw.Contains("did not find expected ',' or '}'", StringComparison.Ordinal))
        {
            message = "a `{ … }` mapping is not closed; add the missing ',' or '}', and quote values that contain ',', '[', ']', '{' or '}' (templates too)";
        }
        else if (raw.Contains("cannot start any token", StringComparison.Ordinal))
        {
            message = "this character cannot start a YAML value; quote the value";
        }
        else
        {
            message = $"the YAML is not well-formed: {raw.TrimEnd('.')}";
        }
        diagnostics.Error(position, "", message);
    }

    /// <summary>YamlDotNet reports tab indentation at the start of the enclosing block; point at the tab instead.</summary>
    private SourcePosition FirstTabIndentation(SourcePosition fallback)
    {
        var line = 1;
        var lineStart = 0;
        for (var i = 0; i < source.Length; i++)
        {
            if (i == lineStart)
            {
                var j = i;
                while (j < source.Length && source[j] == ' ')
                    j++;
                if (j < source.Length && source[j] == '\t' && line >= fallback.Line)
                    return new SourcePosition(line, j - lineStart + 1, j);
            }
            if (source[i] == '\n')
            {
                line++;
                lineStart = i + 1;
            }
        }
        return fallback;
    }
}
