using System.Globalization;
using System.Text.RegularExpressions;

namespace RunbookPortal.Engine.Runbooks;

/// <summary>A declared runbook parameter.</summary>
/// <param name="Name">Letters, digits and underscores; used in templates as <c>{{ name }}</c>.</param>
/// <param name="Default">The default value as text (ints in invariant culture, bools as <c>true</c>/<c>false</c>).</param>
/// <param name="Allowed">When given, the value must be one of these.</param>
/// <param name="Pattern">When given, the value must match this regular expression (string and secret only).</param>
/// <param name="Min">Smallest value (int only).</param>
/// <param name="Max">Largest value (int only).</param>
public sealed partial record ParameterDefinition(
    string Name,
    ParameterType Type,
    bool Required,
    string? Default,
    IReadOnlyList<string>? Allowed,
    string? Pattern,
    long? Min,
    long? Max,
    string? Description)
{
    /// <summary>The YAML spelling of <see cref="Type"/>.</summary>
    public string TypeName => ParameterTypes.NameOf(Type);

    /// <summary><c>multiline: true</c>: a string value may contain newlines (never other control characters).</summary>
    public bool Multiline { get; init; }

    /// <summary><c>allow_leading_dash: true</c>: a string value may start with <c>-</c> (by default refused, so no value becomes an option).</summary>
    public bool AllowLeadingDash { get; init; }

    /// <summary>
    /// <c>from: ssm:/path</c> (secrets only): the name of the SSM Parameter Store parameter (<c>/path</c>) whose value, read
    /// with decryption when the run starts, is this parameter's. Nobody gives it a value, and it is never stored.
    /// </summary>
    public string? FromSsm { get; init; }

    /// <summary>Reads <c>ssm:/a/b</c> into the parameter name <c>/a/b</c>: SSM's characters (letters, digits, <c>_ . -</c>) between slashes.</summary>
    public static bool TryParseSsmSource(string text, out string name)
    {
        ArgumentNullException.ThrowIfNull(text);
        name = text.StartsWith("ssm:", StringComparison.Ordinal) ? text[4..] : "";
        return name.Length is > 1 and <= 2048 && SsmName().IsMatch(name);
    }

    [GeneratedRegex(@"^(/[A-Za-z0-9_.\-]+)+$", RegexOptions.CultureInvariant)]
    private static partial Regex SsmName();

    /// <summary>
    /// Checks a value against this declaration. Answers <c>null</c> when the value fits, else a problem
    /// that completes a sentence about the value ("is not a whole number"). The message never repeats the
    /// value, so it is safe for secrets.
    /// </summary>
    public string? CheckValue(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Contains('\0', StringComparison.Ordinal))
            return "contains a NUL character, which no step can be given";
        switch (Type)
        {
            case ParameterType.Int:
                if (!TryParseInt(value, out var number))
                    return "is not a whole number";
                if (Min is { } min && number < min)
                    return $"is below the minimum {min.ToString(CultureInfo.InvariantCulture)}";
                if (Max is { } max && number > max)
                    return $"is above the maximum {max.ToString(CultureInfo.InvariantCulture)}";
                if (Allowed is not null && !Allowed.Any(a => TryParseInt(a, out var allowed) && allowed == number))
                    return $"is not one of the allowed values ({string.Join(", ", Allowed)})";
                return null;
            case ParameterType.Bool:
                if (!TryParseBool(value, out var flag))
                    return "is not true or false";
                if (Allowed is not null && !Allowed.Any(a => TryParseBool(a, out var allowed) && allowed == flag))
                    return $"is not one of the allowed values ({string.Join(", ", Allowed)})";
                return null;
            default:
                if (Type == ParameterType.String && value.FirstOrDefault(c => char.IsControl(c) && !(c == '\n' && Multiline)) is var control and not '\0')
                    return control == '\n'
                        ? "contains a newline, which this parameter does not allow (the runbook may declare it `multiline: true`)"
                        : "contains a control character (such as a tab, carriage return or escape), which no string value may";
                if (Type == ParameterType.String && value.StartsWith('-') && !AllowLeadingDash)
                    return "starts with '-', so a command could take it for an option (the runbook may declare the parameter `allow_leading_dash: true`)";
                if (Allowed is not null && !Allowed.Contains(value, StringComparer.Ordinal))
                    return Type == ParameterType.Secret
                        ? "is not one of the allowed values"
                        : $"is not one of the allowed values ({string.Join(", ", Allowed)})";
                if (Pattern is not null)
                {
                    try
                    {
                        if (!Regex.IsMatch(value, Pattern, RegexOptions.CultureInvariant, RunbookLimits.RegexTimeout))
                            return $"does not match the pattern {Pattern}";
                    }
                    catch (RegexMatchTimeoutException)
                    {
                        return $"could not be checked: the pattern {Pattern} takes too long on it";
                    }
                    catch (ArgumentException)
                    {
                        return $"could not be checked: the pattern {Pattern} is not a valid regular expression";
                    }
                }
                return null;
        }
    }

    /// <summary>
    /// The one spelling of a valid value: an int without sign or leading zeros (<c>+01</c> → <c>1</c>), a bool as
    /// <c>true</c>/<c>false</c>; other types as given. Values are stored, compared (approval <c>when</c>) and passed on in it.
    /// </summary>
    public string Canonical(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return Type switch
        {
            ParameterType.Int when TryParseInt(value, out var number) => number.ToString(CultureInfo.InvariantCulture),
            ParameterType.Bool when TryParseBool(value, out var flag) => flag ? "true" : "false",
            _ => value,
        };
    }

    internal static bool TryParseInt(string text, out long value) =>
        long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);

    internal static bool TryParseBool(string text, out bool value)
    {
        switch (text)
        {
            case "true" or "True" or "TRUE":
                value = true;
                return true;
            case "false" or "False" or "FALSE":
                value = false;
                return true;
            default:
                value = false;
                return false;
        }
    }
}

/// <summary>The YAML names of <see cref="ParameterType"/>.</summary>
public static class ParameterTypes
{
    public static IReadOnlyList<string> All { get; } = Array.AsReadOnly(["string", "int", "bool", "secret"]);

    public static string NameOf(ParameterType type) => type switch
    {
        ParameterType.Int => "int",
        ParameterType.Bool => "bool",
        ParameterType.Secret => "secret",
        _ => "string",
    };

    public static bool TryParse(string name, out ParameterType type)
    {
        switch (name)
        {
            case "string": type = ParameterType.String; return true;
            case "int": type = ParameterType.Int; return true;
            case "bool": type = ParameterType.Bool; return true;
            case "secret": type = ParameterType.Secret; return true;
            default: type = ParameterType.String; return false;
        }
    }
}
