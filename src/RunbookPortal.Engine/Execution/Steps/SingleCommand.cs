using System.Buffers;

namespace RunbookPortal.Engine.Execution.Steps;

/// <summary>
/// Tells a script that is nothing but one external command — <c>systemctl restart nginx</c>,
/// <c>date -u +%FT%TZ &gt;/dev/null</c>, <c>kubectl rollout status deploy/"${RBP_PARAM_APP}"</c> — from everything
/// else. The execution's shell runs such a script as a job of its own directly, without the subshell every other
/// script gets (for a short command that subshell is a fifth of the step's cost, see <see cref="ShellHost"/>). It is
/// the same as running it in a subshell only when running it cannot change the shell: so the test is strict, and
/// anything it does not know is "no".
/// <list type="bullet">
/// <item>One line of words and redirections separated by blanks; no quotes, escapes, globs, braces, comments,
/// substitutions, operators (<c>; &amp; | ( )</c>) or here-documents.</item>
/// <item>A word is made of <c>A–Z a–z 0–9 _ . / : = , + % @ ^ -</c> and of template references as the portal writes
/// them (<c>"${RBP_…}"</c>): expanding one changes nothing, and it has the value it would have in a subshell (unlike
/// <c>$BASHPID</c> or <c>$RANDOM</c>).</item>
/// <item>The first word names the command: none of those characters but letters, digits and <c>_ . / : , + @ ^ -</c>,
/// no variable, and neither a bash builtin, a reserved word nor one of the shell's own names — a builtin such as
/// <c>cd</c>, <c>export</c> or <c>exit</c> would run in the shell itself.</item>
/// <item>Redirections: <c>&gt; &gt;&gt; &gt;| &lt;</c> with a word without <c>=</c>, optionally after one digit;
/// <c>&amp;&gt; &amp;&gt;&gt;</c> with such a word; and <c>n&gt;&amp;m n&lt;&amp;m n&gt;&amp;-</c>.</item>
/// </list>
/// Functions are not known here: a shell whose environment can define some runs every script in a subshell
/// (<see cref="ShellHost"/>).
/// </summary>
public static class SingleCommand
{
    private static readonly SearchValues<char> WordCharacters =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:=,+%@^-");

    private static readonly SearchValues<char> CommandCharacters =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:,+@^-");

    /// <summary>bash 5's builtins and reserved words (<c>compgen -b -k</c>), less those the characters above rule out.</summary>
    private static readonly HashSet<string> ShellWords = new(StringComparer.Ordinal)
    {
        ".", ":", "alias", "bg", "bind", "break", "builtin", "caller", "cd", "command", "compgen", "complete", "compopt",
        "continue", "declare", "dirs", "disown", "echo", "enable", "eval", "exec", "exit", "export", "false", "fc", "fg",
        "getopts", "hash", "help", "history", "jobs", "kill", "let", "local", "logout", "mapfile", "popd", "printf",
        "pushd", "pwd", "read", "readarray", "readonly", "return", "set", "shift", "shopt", "source", "suspend", "test",
        "times", "trap", "true", "type", "typeset", "ulimit", "umask", "unalias", "unset", "wait",
        "if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while", "until", "do", "done", "in",
        "function", "time", "coproc",
    };

    private static readonly string[] FileOperators = [">>", ">|", ">", "<", "&>>", "&>"];

    /// <summary>Whether a builtin or reserved word of the shell is ruled out as a command name here.</summary>
    public static bool Knows(string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        return ShellWords.Contains(word) || word.AsSpan().ContainsAnyExcept(CommandCharacters);
    }

    /// <summary>Whether <paramref name="script"/> is one external command that may run without a subshell.</summary>
    public static bool IsExternalCommand(string script)
    {
        ArgumentNullException.ThrowIfNull(script);
        var text = script.AsSpan().Trim(" \t\r\n");
        if (text.IsEmpty || text.ContainsAny('\n', '\r'))
            return false;

        var command = false;
        var targetDue = false;
        foreach (var range in text.SplitAny(" \t"))
        {
            var token = text[range];
            if (token.IsEmpty)
                continue;
            if (targetDue)
            {
                if (!IsTarget(token))
                    return false;
                targetDue = false;
            }
            else if (Redirection(token) is { } target)
            {
                if (target.Length == 0)
                    targetDue = true;
                else if (target is not "-" && !IsTarget(target) && !IsDigit(target))
                    return false;
            }
            else if (command)
            {
                if (!IsWord(token))
                    return false;
            }
            else
            {
                if (token.ContainsAnyExcept(CommandCharacters) || token.StartsWith("__rbp", StringComparison.Ordinal)
                    || ShellWords.Contains(token.ToString()))
                    return false;
                command = true;
            }
        }
        return command && !targetDue;
    }

    /// <summary>
    /// The target of a redirection token (empty when it is the next token), or null when the token is no redirection.
    /// A duplication (<c>&gt;&amp;</c>, <c>&lt;&amp;</c>) answers its target only when it is one digit or <c>-</c>.
    /// </summary>
    private static string? Redirection(ReadOnlySpan<char> token)
    {
        // A digit before &> is a word of its own to bash.
        var rest = token.Length > 1 && IsDigit(token[..1]) && token[1] != '&' ? token[1..] : token;
        if (rest.StartsWith(">&") || rest.StartsWith("<&"))
        {
            var target = rest[2..];
            return target is "-" || (target.Length == 1 && IsDigit(target)) ? target.ToString() : "\0";
        }
        foreach (var op in FileOperators)
        {
            if (rest.StartsWith(op, StringComparison.Ordinal))
                return rest[op.Length..].ToString();
        }
        return null;
    }

    /// <summary>
    /// A redirection's file: a word without <c>=</c> (after another redirection, bash 5.2 takes <c>&amp;&gt;&gt;x=y</c>
    /// for an assignment in the wrong place and fails to parse the command).
    /// </summary>
    private static bool IsTarget(ReadOnlySpan<char> word) => IsWord(word) && !word.Contains('=');

    /// <summary>Word characters and <c>"${RBP_…}"</c> references, nothing else.</summary>
    private static bool IsWord(ReadOnlySpan<char> word)
    {
        if (word.IsEmpty)
            return false;
        while (!word.IsEmpty)
        {
            if (word[0] == '"')
            {
                var length = Reference(word);
                if (length == 0)
                    return false;
                word = word[length..];
                continue;
            }
            var plain = word.IndexOfAnyExcept(WordCharacters);
            if (plain == 0)
                return false;
            word = plain < 0 ? [] : word[plain..];
        }
        return true;
    }

    /// <summary>The length of a leading <c>"${RBP_NAME}"</c> (upper case, digits, <c>_</c>), or 0.</summary>
    private static int Reference(ReadOnlySpan<char> text)
    {
        if (!text.StartsWith("\"${RBP_"))
            return 0;
        var end = text.IndexOf("}\"");
        if (end <= "\"${RBP_".Length)
            return 0;
        foreach (var c in text[3..end])
        {
            if (!char.IsAsciiLetterUpper(c) && !char.IsAsciiDigit(c) && c != '_')
                return 0;
        }
        return end + 2;
    }

    private static bool IsDigit(ReadOnlySpan<char> text) => text.Length == 1 && char.IsAsciiDigit(text[0]);
}
