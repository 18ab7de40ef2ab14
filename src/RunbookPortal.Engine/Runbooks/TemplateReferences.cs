using System.Text;

namespace RunbookPortal.Engine.Runbooks;

/// <summary>What a <c>{{ … }}</c> template in a runbook text refers to.</summary>
public enum TemplateReferenceKind
{
    /// <summary><c>{{ name }}</c>: the value of a declared parameter.</summary>
    Parameter,
    /// <summary><c>{{ steps.&lt;id&gt;.outputs.&lt;name&gt; }}</c>: an output captured by an earlier step.</summary>
    StepOutput,
    /// <summary><c>{{ '…' }}</c>: literal text, the way to write braces: <c>{{ '{{' }}</c>.</summary>
    Literal,
    /// <summary>Anything else between <c>{{</c> and <c>}}</c>.</summary>
    Invalid,
    /// <summary>A <c>{{</c> without a closing <c>}}</c>; it runs to the end of the text.</summary>
    Unclosed,
}

/// <summary>One template found in a text.</summary>
/// <param name="Index">Offset of the opening <c>{{</c> in the text.</param>
/// <param name="Length">Length up to and including the closing <c>}}</c> (to the end of the text when unclosed).</param>
/// <param name="Expression">The trimmed text between the braces.</param>
public sealed record TemplateReference(
    int Index,
    int Length,
    string Expression,
    TemplateReferenceKind Kind,
    string? ParameterName = null,
    string? StepId = null,
    string? OutputName = null,
    string? LiteralText = null)
{
    /// <summary>The template as written, braces included.</summary>
    public string Text(string source) => source.Substring(Index, Length);
}

/// <summary>
/// The templating syntax of <c>runbooks/v1</c>: <c>{{ parameter }}</c>, <c>{{ steps.&lt;id&gt;.outputs.&lt;name&gt; }}</c>
/// and <c>{{ '…' }}</c> for literal text. Spaces inside the braces are optional.
/// </summary>
public static class TemplateReferences
{
    /// <summary>Every template in <paramref name="text"/>, in order.</summary>
    public static IReadOnlyList<TemplateReference> Find(string? text)
    {
        if (string.IsNullOrEmpty(text))
            return [];
        var open = text.IndexOf("{{", StringComparison.Ordinal);
        if (open < 0)
            return [];

        var found = new List<TemplateReference>();
        while (open >= 0)
        {
            var close = text.IndexOf("}}", open + 2, StringComparison.Ordinal);
            if (close < 0)
            {
                found.Add(new TemplateReference(open, text.Length - open, text[(open + 2)..].Trim(), TemplateReferenceKind.Unclosed));
                break;
            }
            found.Add(Classify(open, close + 2 - open, text.AsSpan(open + 2, close - open - 2).Trim().ToString()));
            open = text.IndexOf("{{", close + 2, StringComparison.Ordinal);
        }
        return found;
    }

    /// <summary>
    /// Replaces every parameter and step-output template by what <paramref name="resolve"/> answers for it and
    /// every literal by its text; invalid and unclosed templates stay as they are. Callers that build commands
    /// must quote what <paramref name="resolve"/> answers themselves.
    /// </summary>
    public static string Replace(string text, Func<TemplateReference, string> resolve)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(resolve);
        var references = Find(text);
        if (references.Count == 0)
            return text;
        var builder = new StringBuilder(text.Length);
        var position = 0;
        foreach (var reference in references)
        {
            builder.Append(text, position, reference.Index - position);
            builder.Append(reference.Kind switch
            {
                TemplateReferenceKind.Parameter or TemplateReferenceKind.StepOutput => resolve(reference),
                TemplateReferenceKind.Literal => reference.LiteralText,
                _ => reference.Text(text),
            });
            position = reference.Index + reference.Length;
        }
        builder.Append(text, position, text.Length - position);
        return builder.ToString();
    }

    /// <summary>Whether <paramref name="name"/> can be a parameter or output name: letters, digits, underscores, not starting with a digit.</summary>
    public static bool IsIdentifier(ReadOnlySpan<char> name)
    {
        if (name.IsEmpty || name.Length > 64 || char.IsAsciiDigit(name[0]))
            return false;
        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c == '_'))
                return false;
        }
        return true;
    }

    /// <summary>Whether <paramref name="id"/> is a step id: 1–64 lowercase letters, digits, '_' or '-', starting with a letter or digit.</summary>
    public static bool IsStepId(ReadOnlySpan<char> id)
    {
        if (id.IsEmpty || id.Length > 64 || !(char.IsAsciiLetterLower(id[0]) || char.IsAsciiDigit(id[0])))
            return false;
        foreach (var c in id)
        {
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '-'))
                return false;
        }
        return true;
    }

    private static TemplateReference Classify(int index, int length, string expression)
    {
        if (expression.Length >= 2 && expression[0] == '\'' && expression[^1] == '\'' && expression.IndexOf('\'', 1) == expression.Length - 1)
            return new TemplateReference(index, length, expression, TemplateReferenceKind.Literal, LiteralText: expression[1..^1]);

        if (IsIdentifier(expression))
            return new TemplateReference(index, length, expression, TemplateReferenceKind.Parameter, ParameterName: expression);

        // steps.<id>.outputs.<name>
        var parts = expression.Split('.');
        if (parts.Length == 4 && parts[0] == "steps" && parts[2] == "outputs" && IsStepId(parts[1]) && IsIdentifier(parts[3]))
            return new TemplateReference(index, length, expression, TemplateReferenceKind.StepOutput, StepId: parts[1], OutputName: parts[3]);

        return new TemplateReference(index, length, expression, TemplateReferenceKind.Invalid);
    }
}
