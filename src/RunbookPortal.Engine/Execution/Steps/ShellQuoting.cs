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
public static partial class ShellQuoting
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
    /// <remarks>
    /// Where bash evaluates a value (an arithmetic context, after a backslash) only a template <paramref name="isNumeric"/>
    /// answers <c>true</c> for may stand; without <paramref name="isNumeric"/> no template may stand there.
    /// </remarks>
    /// <exception cref="StepTemplateException">A template stands where no expansion happens (a quoted here-document),
    /// where bash would evaluate a value that is not numeric, or the script could not be rendered template for template.</exception>
    public static string RenderScript(string run, Func<TemplateReference, string> variableFor, Func<TemplateReference, bool>? isNumeric = null)
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
        if (references.Count == 0)
            return text;
        var script = new Lexer(text, references, variableFor, isNumeric ?? (_ => false), null).Render();
        return script;
    }

    /// <summary>
    /// Where each parameter and step-output template of <paramref name="run"/> stands, as far as bash is concerned
    /// (for the validator). A script the renderer would refuse for its structure answers the templates before that point.
    /// </summary>
    internal static IReadOnlyList<(TemplateReference Reference, TemplatePlaces Places)> Analyze(string run)
    {
        ArgumentNullException.ThrowIfNull(run);
        var found = new List<(TemplateReference, TemplatePlaces)>();
        if (run.Contains(Slot, StringComparison.Ordinal))
            return found;
        var references = new List<TemplateReference>();
        var text = TemplateReferences.Replace(run, reference =>
        {
            references.Add(reference);
            return Slot.ToString();
        });
        if (references.Count == 0)
            return found;
        try
        {
            new Lexer(text, references, _ => "V", _ => true, (reference, places) => found.Add((reference, places))).Render();
        }
        catch (StepTemplateException)
        {
            // Refused at run time with its own message.
        }
        return found;
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

    /// <param name="Arithmetic">Bash evaluates what stands here as an arithmetic expression: <c>$(( ))</c>, <c>(( ))</c>,
    /// an array subscript, or a double-quoted or <c>${ }</c> part of one.</param>
    private sealed record Frame(Context Context, char Closer, bool Arithmetic = false)
    {
        /// <summary>Open parentheses inside a <c>$( )</c> frame.</summary>
        public int Depth { get; set; }

        /// <summary>In the arguments of <c>let</c> (until the end of the command): arithmetic.</summary>
        public bool Let { get; set; }

        /// <summary>Inside <c>[[ … ]]</c>, where the operands of <c>-eq</c>, <c>-lt</c>, … and of <c>-v</c> are evaluated.</summary>
        public bool Conditional { get; set; }

        /// <summary>An array subscript <c>name[…]</c>, or <c>$[ … ]</c>.</summary>
        public bool Subscript => Closer == ']';

        /// <summary>The offset and length of <c>${name:offset:length}</c>, inside its <c>${ }</c> frame: both close at its <c>}</c>.</summary>
        public bool Offset { get; init; }
    }

    private sealed record PendingHeredoc(string Delimiter, bool Quoted, bool StripTabs);

    [System.Text.RegularExpressions.GeneratedRegex(@"^(?:declare|typeset|local|readonly|export)(?:[ \t]+-[A-Za-z]+)*?[ \t]+-[A-Za-z]*i[A-Za-z]*(?=[ \t;]|$)")]
    private static partial System.Text.RegularExpressions.Regex DeclareInteger();

    [System.Text.RegularExpressions.GeneratedRegex(@"(?:^|[ \t])([A-Za-z_][A-Za-z0-9_]*)(?==|[ \t;]|$)")]
    private static partial System.Text.RegularExpressions.Regex AssignedName();

    [System.Text.RegularExpressions.GeneratedRegex(@"^([A-Za-z_][A-Za-z0-9_]*)(?:\[[^\]]*\])?\+?=")]
    private static partial System.Text.RegularExpressions.Regex IntegerAssignment();

    [System.Text.RegularExpressions.GeneratedRegex(@"^[A-Za-z_][A-Za-z0-9_]*\[[^\]]*$")]
    private static partial System.Text.RegularExpressions.Regex OpenSubscript();

    private sealed class Lexer(
        string text,
        List<TemplateReference> references,
        Func<TemplateReference, string> variableFor,
        Func<TemplateReference, bool> isNumeric,
        Action<TemplateReference, TemplatePlaces>? observe)
    {
        private static readonly string[] ArithmeticTestOperators = ["-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-v"];
        private static readonly string[] CommandKeywords = ["if", "then", "elif", "else", "while", "until", "do", "for", "!", "{", "time"];

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
                    var frame = _frames.Peek();
                    var places = TemplatePlaces.None;
                    if (frame.Arithmetic || frame.Let || (frame.Conditional && NextToArithmeticOperator()) || EvaluatedAsAName())
                        places |= TemplatePlaces.Arithmetic;
                    EmitSlot(frame.Context switch
                    {
                        Context.Unquoted => "\"${0}\"",
                        Context.DoubleQuoted or Context.Comment => "${0}",
                        Context.SingleQuoted => "'\"${0}\"'",
                        _ => "'\"${0}\"$'", // ANSI-C quotes
                    }, places);
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
            // Every template must have become its own reference: one that did not would shift the later ones.
            if (_slot != references.Count || _out.ToString().Contains(Slot, StringComparison.Ordinal))
            {
                throw new StepTemplateException(
                    $"the command could not be rendered template for template ({_slot} of {references.Count} templates placed); " +
                    "rewrite it, or use the environment variables of the templates");
            }
            return _out.ToString();
        }

        /// <summary>Writes the reference for the template at the current position (the slot character) and steps over it.</summary>
        private void EmitSlot(string pattern, TemplatePlaces places = TemplatePlaces.None)
        {
            var reference = references[_slot];
            observe?.Invoke(reference, places);
            if ((places & (TemplatePlaces.Arithmetic | TemplatePlaces.AfterBackslash)) != 0 && !isNumeric(reference))
            {
                var where = (places & TemplatePlaces.Arithmetic) != 0 ? "in an arithmetic context" : "after a backslash";
                throw new StepTemplateException(
                    $"{{{{ {reference.Expression} }}}} stands {where}, where bash would evaluate its value; only an int or bool parameter can be used there");
            }
            _slot++;
            _out.Append(pattern.Replace("{0}", "{" + variableFor(reference) + "}", StringComparison.Ordinal));
            _position++;
        }

        /// <summary>
        /// A backslash before a template: bash would escape the value's first character. Only a number or
        /// true/false may stand there (escaping one of their characters changes nothing), so this is the reference alone —
        /// after a literal backslash inside double quotes or a here-document, where bash keeps it.
        /// </summary>
        private void EmitEscapedSlot(string pattern)
        {
            _position++; // the backslash
            EmitSlot(pattern, TemplatePlaces.AfterBackslash);
        }

        /// <summary>Whether the word the template is in is an operand of <c>-eq</c>…<c>-ge</c> or <c>-v</c> (inside <c>[[ ]]</c>).</summary>
        private bool NextToArithmeticOperator()
        {
            var end = _position;
            while (end < text.Length && !char.IsWhiteSpace(text[end]))
                end++;
            while (end < text.Length && char.IsWhiteSpace(text[end]))
                end++;
            var after = end;
            while (after < text.Length && !char.IsWhiteSpace(text[after]))
                after++;
            var start = _position;
            while (start > 0 && !char.IsWhiteSpace(text[start - 1]))
                start--;
            while (start > 0 && char.IsWhiteSpace(text[start - 1]))
                start--;
            var before = start;
            while (before > 0 && !char.IsWhiteSpace(text[before - 1]))
                before--;
            var next = text[end..after];
            var previous = text[before..start];
            return (ArithmeticTestOperators.Contains(next) && next != "-v") || ArithmeticTestOperators.Contains(previous);
        }

        /// <summary>Whether the current position starts a command (where <c>((</c>, <c>[[</c> and <c>let</c> mean what they mean).</summary>
        private bool AtCommandStart()
        {
            var end = _out.Length;
            while (end > 0 && _out[end - 1] is ' ' or '\t')
                end--;
            if (end == 0)
                return true;
            var previous = _out[end - 1];
            if (previous is ';' or '&' or '|' or '(' or '\n' or '`')
                return true;
            var start = end;
            while (start > 0 && !char.IsWhiteSpace(_out[start - 1]))
                start--;
            var word = _out.ToString(start, end - start);
            return CommandKeywords.Contains(word) && (start == 0 || AtCommandStartBefore(start));
        }

        private bool AtCommandStartBefore(int end)
        {
            while (end > 0 && _out[end - 1] is ' ' or '\t')
                end--;
            return end == 0 || _out[end - 1] is ';' or '&' or '|' or '(' or '\n' or '`' or '!' or '{' || char.IsLetter(_out[end - 1]);
        }

        /// <summary>
        /// At <c>declare</c>, <c>typeset</c>, <c>local</c>, <c>readonly</c> or <c>export</c> whose options (before any
        /// name) include <c>i</c>: the length of the keyword and its options; else null.
        /// </summary>
        private int? DeclaresIntegers()
        {
            var end = text.IndexOf('\n', _position);
            var line = end < 0 ? text[_position..] : text[_position..end];
            var match = DeclareInteger().Match(line);
            if (!match.Success)
                return null;
            // Later plain assignments to these names are arithmetic too (x=… of an integer variable is evaluated).
            foreach (System.Text.RegularExpressions.Match name in AssignedName().Matches(line[match.Length..]))
                _integers.Add(name.Groups[1].Value);
            return match.Length;
        }

        private readonly HashSet<string> _integers = new(StringComparer.Ordinal);

        /// <summary>Builtins that take a variable name, subscript included, as an argument (which bash then evaluates).</summary>
        private static readonly HashSet<string> NameTakers = new(StringComparer.Ordinal)
        {
            "printf", "unset", "read", "readarray", "mapfile", "declare", "typeset", "local", "readonly", "export", "test", "[", "wait",
        };

        /// <summary>
        /// Whether the template stands where bash evaluates it as part of a name: in <c>name[…</c> given (quoted or not) to
        /// a builtin that takes names (<c>printf -v "a[…]"</c>, <c>unset</c>, <c>read</c>, <c>declare</c>, <c>[ -v … ]</c>…),
        /// or as the value assigned to a variable this script declared integer (<c>declare -i x; x=…</c>).
        /// </summary>
        private bool EvaluatedAsAName()
        {
            var start = _out.Length;
            while (start > 0 && !char.IsWhiteSpace(_out[start - 1]) && _out[start - 1] is not (';' or '&' or '|' or '(' or ')' or '`'))
                start--;
            var word = _out.ToString(start, _out.Length - start).Replace("\"", "", StringComparison.Ordinal).Replace("'", "", StringComparison.Ordinal);
            if (IntegerAssignment().Match(word) is { Success: true } assignment && _integers.Contains(assignment.Groups[1].Value))
                return true;
            if (!OpenSubscript().IsMatch(word))
                return false;
            var command = start;
            while (command > 0 && _out[command - 1] is not (';' or '&' or '|' or '(' or '\n' or '`'))
                command--;
            var first = _out.ToString(command, start - command).TrimStart().Split([' ', '\t'], 2)[0];
            return NameTakers.Contains(first);
        }

        private bool WordFollows(string word)
        {
            if (string.CompareOrdinal(text, _position, word, 0, word.Length) != 0)
                return false;
            var after = _position + word.Length;
            return after < text.Length && text[after] is ' ' or '\t';
        }

        private void Copy(int count)
        {
            count = Math.Min(count, text.Length - _position);
            _out.Append(text, _position, count);
            _position += count;
        }

        private char Next(int offset = 1) => _position + offset < text.Length ? text[_position + offset] : '\0';

        /// <summary>A quote or <c>${ }</c>: what the parent evaluates, it evaluates too.</summary>
        private void Push(Context context, char closer, int length)
        {
            Copy(length);
            var parent = _frames.Peek();
            _frames.Push(new Frame(context, closer, parent.Arithmetic || parent.Let) { Conditional = parent.Conditional });
        }

        /// <summary>A command substitution (<c>$( )</c>, backticks): commands again, nothing evaluated.</summary>
        private void PushCommands(char closer, int length, bool arithmetic = false)
        {
            Copy(length);
            _frames.Push(new Frame(Context.Unquoted, closer, arithmetic));
        }

        private void Unquoted(char c)
        {
            var frame = _frames.Peek();
            switch (c)
            {
                case '\\' when Next() == Slot: EmitEscapedSlot("\"${0}\""); return;
                case '\\': Copy(2); return;
                case '\'': Push(Context.SingleQuoted, '\'', 1); return;
                case '"': Push(Context.DoubleQuoted, '"', 1); return;
                case '`' when frame.Closer == '`': Copy(1); _frames.Pop(); return;
                case '`': PushCommands('`', 1); return;
                case '$': Dollar(); return;
                case ']' when frame.Subscript: Copy(1); _frames.Pop(); return;
                case '\n' or ';' when frame.Subscript: _frames.Pop(); return; // not a subscript after all
                case '[' when _out.Length > 0 && (char.IsAsciiLetterOrDigit(_out[^1]) || _out[^1] == '_'):
                    // name[subscript]: an indexed array's subscript is evaluated (a[$(cmd)] runs cmd).
                    Copy(1);
                    _frames.Push(new Frame(Context.Unquoted, ']', Arithmetic: true));
                    return;
                case '[' when Next() == '[' && Next(2) is ' ' or '\t' or '\n' && AtCommandStart(): Copy(2); frame.Conditional = true; return;
                case ']' when frame.Conditional && Next() == ']' && AtWordStart(): Copy(2); frame.Conditional = false; return;
                case '(' when Next() == '(' && AtCommandStart():
                    // (( expression )): a command that is arithmetic.
                    PushCommands(')', 1, arithmetic: true);
                    return;
                case 'l' when !frame.Let && WordFollows("let") && AtCommandStart(): frame.Let = true; Copy(3); return;
                case 'd' or 't' or 'l' or 'r' or 'e' when !frame.Let && AtCommandStart() && DeclaresIntegers() is { } length:
                    // declare -i x=…, local -i, typeset -i, readonly -i: the values assigned are evaluated as arithmetic.
                    frame.Let = true;
                    Copy(length);
                    return;
                case ':' when frame.Closer == '}' && !frame.Offset && !frame.Arithmetic && Next() is not ('-' or '=' or '+' or '?'):
                    // ${name:offset:length}: both are arithmetic (${name:-default} and the like are not).
                    Copy(1);
                    _frames.Push(new Frame(Context.Unquoted, '}', Arithmetic: true) { Offset = true });
                    return;
                case '}' when frame.Offset:
                    Copy(1);
                    _frames.Pop();
                    _frames.Pop(); // the ${ } it belongs to ends with it
                    return;
                case ';' or '&' or '|' when frame.Let: frame.Let = false; Copy(1); return;
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
                case '<' when Next() == '<' && Next(2) == '<' && !frame.Arithmetic: HereString(); return;
                case '<' when Next() == '<' && !frame.Arithmetic: Heredoc(); return;
                case '\n':
                    frame.Let = false;
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
                case '\\' when Next() == Slot: EmitEscapedSlot("\\\\${0}"); return;
                case '\\': Copy(2); return;
                case '"': Copy(1); _frames.Pop(); return;
                case '`': PushCommands('`', 1); return;
                case '$' when Next() is '(' or '{': Dollar(); return;
                default: Copy(1); return;
            }
        }

        private void AnsiC(char c)
        {
            if (c == '\\')
            {
                if (Next() == Slot)
                {
                    throw new StepTemplateException(
                        $"{{{{ {references[_slot].Expression} }}}} stands after a backslash in $'…', where bash would read its value as an escape; remove the backslash");
                }
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
                    PushCommands(')', 2, arithmetic: Next(2) == '(');
                    return;
                case '{': Push(Context.Unquoted, '}', 2); return;
                case '[':
                    // $[ expression ]: bash's old spelling of $(( )).
                    Copy(2);
                    _frames.Push(new Frame(Context.Unquoted, ']', Arithmetic: true));
                    return;
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
                if (c == Slot || (c is '\'' or '"' or '\\' && text.IndexOf(Slot, _position) is var slot && slot >= 0 && slot <= WordEnd(_position)))
                {
                    observe?.Invoke(references[_slot], TemplatePlaces.NotExpanded);
                    throw new StepTemplateException(
                        $"{{{{ {references[_slot].Expression} }}}} stands in a here-document's delimiter (<<), which is never expanded; write the delimiter as plain text");
                }
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

        /// <summary><c>&lt;&lt;&lt; word</c>: a here-string, not a here-document; its word is lexed as any other (and expands to the value).</summary>
        private void HereString() => Copy(3);

        /// <summary>Where the shell word starting at <paramref name="start"/> ends (quotes and escapes skipped over).</summary>
        private int WordEnd(int start)
        {
            var i = start;
            while (i < text.Length)
            {
                var c = text[i];
                if (char.IsWhiteSpace(c) || c is ';' or '&' or '|' or '(' or ')' or '<' or '>')
                    break;
                if (c is '\'' or '"')
                {
                    var close = i + 1;
                    while (close < text.Length && text[close] != c)
                        close += c == '"' && text[close] == '\\' ? 2 : 1;
                    i = Math.Min(close + 1, text.Length);
                    continue;
                }
                i += c == '\\' ? 2 : 1;
            }
            return Math.Min(i, text.Length);
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
                    if (!heredoc.Quoted && text[_position] == '\\' && _position + 1 < lineEnd)
                    {
                        if (text[_position + 1] == Slot)
                            EmitEscapedSlot("\\\\${0}");
                        else
                            Copy(2);
                        continue;
                    }
                    if (text[_position] != Slot)
                    {
                        Copy(1);
                        continue;
                    }
                    if (heredoc.Quoted && observe is not null)
                    {
                        observe(references[_slot++], TemplatePlaces.NotExpanded);
                        _position++;
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

/// <summary>Where bash reads a template's value other than as plain text (see <see cref="ShellQuoting.Analyze"/>).</summary>
[Flags]
internal enum TemplatePlaces
{
    None = 0,
    /// <summary>Right after a backslash, which would escape the value's first character.</summary>
    AfterBackslash = 1,
    /// <summary>Evaluated as an arithmetic expression: <c>$(( ))</c>, <c>(( ))</c>, <c>let</c>, <c>[[ … -gt … ]]</c>, <c>a[…]</c>.</summary>
    Arithmetic = 2,
    /// <summary>Never expanded: in a quoted here-document (<c>&lt;&lt;'EOF'</c>) or a here-document's delimiter; refused at run time.</summary>
    NotExpanded = 4,
}
