using System.Text;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Execution.Steps;

/// <summary>
/// Turns a shell step's <c>run</c> text into the bash script that runs, so that no template value can change the
/// structure of the command.
/// <para>
/// A value never enters the script text at all. Each template is replaced by a reference to the environment variable
/// that holds its value, written for the quoting context the template stands in: <c>"${RBP_PARAM_X}"</c> as a word of
/// its own, <c>${RBP_PARAM_X}</c> inside double quotes or an unquoted here-document, <c>'"${RBP_PARAM_X}"'</c> inside
/// single quotes. Bash does not re-parse the result of a parameter expansion, so a value such as <c>x; rm -rf /</c>,
/// <c>$(id)</c>, backticks or a newline is inert text in one argument. It also keeps secrets out of the command line
/// (which any local user can read in <c>ps</c>); environment variables are readable by the same user only.
/// </para>
/// <para>
/// The context comes from a small bash lexer (quotes, escapes, comments, <c>$( )</c>, <c>${ }</c>, backticks,
/// here-documents). Should it misjudge an exotic construct, the worst outcome is a value split into words — never
/// a value run as code, because the value is not in the text.
/// </para>
/// </summary>
public static class ShellQuoting
{
    /// <summary>Stands for one template while the script is lexed (a private-use character).</summary>
    private const char Slot = '\uE000';

    /// <summary><paramref name="value"/> as one single-quoted bash word: <c>'it'\''s'</c>.</summary>
    public static string Quote(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return "'" + value.Replace("'", @"'\''", StringComparison.Ordinal) + "'";
    }

    /// <summary>
    /// The script for <paramref name="run"/>: parameter and step-output templates become references to the variable
    /// <paramref name="variableFor"/> names; literal templates (<c>{{ '…' }}</c>) become their text.
    /// </summary>
    /// <exception cref="StepTemplateException">A template stands where no expansion happens (a quoted here-document).</exception>
    public static string RenderScript(string run, Func<TemplateReference, string> variableFor)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(variableFor);
        if (run.Contains(Slot, StringComparison.Ordinal))
            throw new StepTemplateException("the command contains the character U+E000, which the portal reserves");

        // The text to lex: literals inlined (they are script text), every value template one slot character.
        var references = new List<TemplateReference>();
        var text = TemplateReferences.Replace(run, reference =>
        {
            references.Add(reference);
            return Slot.ToString();
        });
        return references.Count == 0 ? text : new Lexer(text, references, variableFor).Render();
    }

    /// <summary>What a person reads for the script (a dry run): each template replaced by its value as a quoted word.</summary>
    public static string RenderForDisplay(string run, Func<TemplateReference, string> valueFor)
    {
        ArgumentNullException.ThrowIfNull(run);
        return TemplateReferences.Replace(run, reference => Quote(valueFor(reference)));
    }

    private enum Context
    {
        /// <summary>Words are split here: the top level, <c>$( )</c>, <c>${ }</c> and backticks.</summary>
        Unquoted,
        DoubleQuoted,
        SingleQuoted,
        /// <summary><c>$'…'</c>.</summary>
        AnsiC,
        Comment,
    }

    private sealed record Frame(Context Context, char Closer, bool Arithmetic = false)
    {
        /// <summary>Open parentheses inside a <c>$( )</c> frame.</summary>
        public int Depth { get; set; }
    }

    private sealed record PendingHeredoc(string Delimiter, bool Quoted, bool StripTabs);

    private sealed class Lexer(string text, List<TemplateReference> references, Func<TemplateReference, string> variableFor)
    {
        private readonly StringBuilder _out = new(text.Length + references.Count * 24);
        private readonly Stack<Frame> _frames = new([new Frame(Context.Unquoted, '\0')]);
        private readonly Queue<PendingHeredoc> _heredocs = new();
        private int _position;
        private int _slot;

        public string Render()
        {
            while (_position < text.Length)
            {
                var c = text[_position];
                if (c == Slot)
                {
                    EmitSlot(_frames.Peek().Context switch
                    {
                        Context.Unquoted => "\"${0}\"",
                        Context.DoubleQuoted or Context.Comment => "${0}",
                        Context.SingleQuoted => "'\"${0}\"'",
                        _ => "'\"${0}\"$'", // ANSI-C quotes
                    });
                    continue;
                }
                switch (_frames.Peek().Context)
                {
                    case Context.Unquoted: Unquoted(c); break;
                    case Context.DoubleQuoted: DoubleQuoted(c); break;
                    case Context.SingleQuoted: Copy(1); if (c == '\'') _frames.Pop(); break;
                    case Context.AnsiC: AnsiC(c); break;
                    case Context.Comment:
                        if (c == '\n')
                            _frames.Pop(); // the newline itself is the parent's (it may start here-documents)
                        else
                            Copy(1);
                        break;
                }
            }
            return _out.ToString();
        }

        private void EmitSlot(string pattern)
        {
            var reference = references[_slot++];
            _out.Append(pattern.Replace("{0}", "{" + variableFor(reference) + "}", StringComparison.Ordinal));
            _position++;
        }

        private void Copy(int count)
        {
            count = Math.Min(count, text.Length - _position);
            _out.Append(text, _position, count);
            _position += count;
        }

        private char Next(int offset = 1) => _position + offset < text.Length ? text[_position + offset] : '\0';

        private void Push(Context context, char closer, int length)
        {
            Copy(length);
            _frames.Push(new Frame(context, closer));
        }

        private void Unquoted(char c)
        {
            var frame = _frames.Peek();
            switch (c)
            {
                case '\\': Copy(2); return;
                case '\'': Push(Context.SingleQuoted, '\'', 1); return;
                case '"': Push(Context.DoubleQuoted, '"', 1); return;
                case '`' when frame.Closer == '`': Copy(1); _frames.Pop(); return;
                case '`': Push(Context.Unquoted, '`', 1); return;
                case '$': Dollar(); return;
                case '(' when frame.Closer == ')': frame.Depth++; Copy(1); return;
                case ')' when frame.Closer == ')':
                    Copy(1);
                    if (frame.Depth == 0)
                        _frames.Pop();
                    else
                        frame.Depth--;
                    return;
                case '}' when frame.Closer == '}': Copy(1); _frames.Pop(); return;
                case '#' when AtWordStart(): _frames.Push(new Frame(Context.Comment, '\n')); Copy(1); return;
                case '<' when Next() == '<' && Next(2) != '<' && !frame.Arithmetic: Heredoc(); return;
                case '\n':
                    Copy(1);
                    while (_heredocs.Count > 0)
                        HeredocBody(_heredocs.Dequeue());
                    return;
                default: Copy(1); return;
            }
        }

        private void DoubleQuoted(char c)
        {
            switch (c)
            {
                case '\\': Copy(2); return;
                case '"': Copy(1); _frames.Pop(); return;
                case '`': Push(Context.Unquoted, '`', 1); return;
                case '$' when Next() is '(' or '{': Dollar(); return;
                default: Copy(1); return;
            }
        }

        private void AnsiC(char c)
        {
            if (c == '\\')
            {
                Copy(2);
                return;
            }
            Copy(1);
            if (c == '\'')
                _frames.Pop();
        }

        private void Dollar()
        {
            switch (Next())
            {
                case '(':
                    var arithmetic = Next(2) == '(';
                    Copy(2);
                    _frames.Push(new Frame(Context.Unquoted, ')', arithmetic));
                    return;
                case '{': Push(Context.Unquoted, '}', 2); return;
                case '\'': Push(Context.AnsiC, '\'', 2); return;
                case '"': Push(Context.DoubleQuoted, '"', 2); return;
                default: Copy(1); return;
            }
        }

        private bool AtWordStart()
        {
            if (_out.Length == 0)
                return true;
            var previous = _out[^1];
            return char.IsWhiteSpace(previous) || previous is ';' or '&' or '|' or '(' or ')' or '<' or '>' or '`';
        }

        /// <summary><c>&lt;&lt;[-] WORD</c>: the body starts on the next line; a quoted WORD means nothing expands in it.</summary>
        private void Heredoc()
        {
            Copy(2);
            var stripTabs = false;
            if (Next(0) == '-')
            {
                stripTabs = true;
                Copy(1);
            }
            while (Next(0) is ' ' or '\t')
                Copy(1);
            var delimiter = new StringBuilder();
            var quoted = false;
            while (_position < text.Length)
            {
                var c = text[_position];
                if (char.IsWhiteSpace(c) || c is ';' or '&' or '|' or '(' or ')' or '<' or '>')
                    break;
                if (c is '\'' or '"')
                {
                    quoted = true;
                    var end = text.IndexOf(c, _position + 1);
                    end = end < 0 ? text.Length : end;
                    delimiter.Append(text, _position + 1, end - _position - 1);
                    Copy(end + 1 - _position);
                    continue;
                }
                if (c == '\\')
                {
                    quoted = true;
                    if (_position + 1 < text.Length)
                        delimiter.Append(text[_position + 1]);
                    Copy(2);
                    continue;
                }
                delimiter.Append(c);
                Copy(1);
            }
            if (delimiter.Length > 0)
                _heredocs.Enqueue(new PendingHeredoc(delimiter.ToString(), quoted, stripTabs));
        }

        /// <summary>Copies the body lines up to and including the delimiter line.</summary>
        private void HeredocBody(PendingHeredoc heredoc)
        {
            while (_position < text.Length)
            {
                var lineEnd = text.IndexOf('\n', _position);
                lineEnd = lineEnd < 0 ? text.Length : lineEnd;
                var line = text.AsSpan(_position, lineEnd - _position);
                var isDelimiter = (heredoc.StripTabs ? line.TrimStart('\t') : line).SequenceEqual(heredoc.Delimiter);
                while (_position < lineEnd)
                {
                    if (text[_position] != Slot)
                    {
                        Copy(1);
                        continue;
                    }
                    if (heredoc.Quoted)
                    {
                        throw new StepTemplateException(
                            $"{{{{ {references[_slot].Expression} }}}} stands in a quoted here-document (<<'{heredoc.Delimiter}'), where nothing is expanded; " +
                            $"write <<{heredoc.Delimiter} without quotes, or use the environment variable {variableFor(references[_slot])}");
                    }
                    EmitSlot("${0}");
                }
                Copy(1); // the newline
                if (isDelimiter)
                    return;
            }
        }
    }
}
