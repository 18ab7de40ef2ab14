using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Execution;

/// <summary>Decides whether an attempt that ran did succeed (<c>validate</c>) and reads its <c>outputs</c>.</summary>
internal static class StepChecks
{
    private const RegexOptions Options = RegexOptions.CultureInvariant | RegexOptions.Multiline;

    /// <summary>Answers the outputs when every check holds, else the first problem (unmasked).</summary>
    public static (IReadOnlyDictionary<string, string>? Outputs, string? Problem) Evaluate(
        StepDefinition step, StepResult result, StepTemplateValues values, TimeSpan regexTimeout)
    {
        try
        {
            var problem = Validate(step.Validate, result, values, regexTimeout);
            return problem is null ? (CaptureOutputs(step, result.Output, regexTimeout, out problem), problem) : (null, problem);
        }
        catch (StepTemplateException ex)
        {
            return (null, ex.Message);
        }
        catch (RegexMatchTimeoutException ex)
        {
            return (null, $"the regular expression {ex.Pattern} took longer than {DurationParser.Format(regexTimeout)} on the output");
        }
    }

    private static string? Validate(ValidationRule? rule, StepResult result, StepTemplateValues values, TimeSpan regexTimeout)
    {
        if (rule?.ExitCode is { } expected)
        {
            if (result.ExitCode is not { } code || result.Error is not null)
                return result.Error ?? "validate expects an exit code, and this step has none";
            if (code != expected)
                return $"exited with code {code}, and validate expects {expected}";
        }
        else if (!result.Succeeded)
        {
            return result.Error ?? (result.ExitCode is { } code ? $"exited with code {code}" : "the step failed");
        }
        if (rule is null)
            return null;

        var output = result.Output;
        if (rule.OutputContains is { } contains)
        {
            var text = values.Render(contains);
            if (!output.Contains(text, StringComparison.Ordinal))
                return $"the output does not contain \"{text}\"";
        }
        if (rule.Regex is { } pattern && !Regex.IsMatch(output, pattern, Options, regexTimeout))
            return $"the output does not match the regular expression {pattern}";
        if (rule.JsonPath is { } path)
            return CheckJson(output, path, rule.JsonEquals is { } equals ? values.Render(equals) : null);
        return null;
    }

    private static string? CheckJson(string output, string path, string? expected)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(output);
        }
        catch (JsonException)
        {
            return $"the output is not JSON, so {path} cannot be checked";
        }
        using (document)
        {
            if (!TryFind(document.RootElement, path, out var found))
                return $"the JSON output has no value at {path}";
            if (expected is null)
                return null;
            var actual = found.ValueKind switch
            {
                JsonValueKind.String => found.GetString()!,
                JsonValueKind.True => "true",
                JsonValueKind.False => "false",
                JsonValueKind.Null => "null",
                _ => found.GetRawText(),
            };
            return actual == expected ? null : $"{path} is \"{Preview(actual)}\", and validate expects \"{expected}\"";
        }
    }

    /// <summary>Follows a simple path: <c>$</c>, then <c>.name</c> and <c>[index]</c> parts.</summary>
    internal static bool TryFind(JsonElement root, string path, out JsonElement found)
    {
        found = root;
        var position = path.StartsWith('$') ? 1 : 0;
        while (position < path.Length)
        {
            if (path[position] == '.')
            {
                var end = path.IndexOfAny(['.', '['], position + 1);
                end = end < 0 ? path.Length : end;
                var name = path[(position + 1)..end];
                if (found.ValueKind != JsonValueKind.Object || !found.TryGetProperty(name, out found))
                    return false;
                position = end;
            }
            else if (path[position] == '[')
            {
                var end = path.IndexOf(']', position);
                if (end < 0 || !int.TryParse(path.AsSpan(position + 1, end - position - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var index)
                    || found.ValueKind != JsonValueKind.Array || index >= found.GetArrayLength())
                    return false;
                found = found[index];
                position = end + 1;
            }
            else
            {
                return false;
            }
        }
        return true;
    }

    private static Dictionary<string, string>? CaptureOutputs(StepDefinition step, string output, TimeSpan regexTimeout, out string? problem)
    {
        problem = null;
        var outputs = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, pattern) in step.Outputs)
        {
            var match = Regex.Match(output, pattern, Options, regexTimeout);
            if (!match.Success)
            {
                problem = $"the output '{name}' was not found: the regular expression {pattern} does not match the step's output";
                return null;
            }
            outputs[name] = match.Groups.Count > 1 ? match.Groups[1].Value : match.Value;
        }
        return outputs;
    }

    private static string Preview(string text) => text.Length <= 200 ? text : text[..200] + "…";
}
