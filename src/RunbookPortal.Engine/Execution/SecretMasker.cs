using System.Text.Json;

namespace RunbookPortal.Engine.Execution;

/// <summary>
/// Replaces every secret value in a text by <c>***</c>. The longest secret is masked first, so a secret that
/// contains another is masked whole. The forms a value takes on its way out are masked too: URL-encoded,
/// JSON-escaped, and each line of a multi-line secret (output is recorded line by line).
/// </summary>
public sealed class SecretMasker
{
    public const string Mask = "***";

    /// <summary>The shortest line of a multi-line secret that is masked on its own.</summary>
    private const int MinimumLineLength = 4;

    private readonly string[] _secrets;

    public SecretMasker(IEnumerable<string> secrets)
    {
        ArgumentNullException.ThrowIfNull(secrets);
        var forms = new HashSet<string>(StringComparer.Ordinal);
        foreach (var secret in secrets)
        {
            if (string.IsNullOrEmpty(secret))
                continue;
            forms.Add(secret);
            forms.Add(Uri.EscapeDataString(secret));
            forms.Add(JsonEncodedText.Encode(secret).Value);
            foreach (var line in secret.Split('\n'))
            {
                var trimmed = line.TrimEnd('\r');
                if (trimmed.Trim().Length >= MinimumLineLength)
                    forms.Add(trimmed);
            }
        }
        _secrets = [.. forms.Where(f => f.Length > 0).OrderByDescending(f => f.Length).ThenBy(f => f, StringComparer.Ordinal)];
    }

    /// <summary>A masker that masks nothing.</summary>
    public static SecretMasker None { get; } = new([]);

    /// <summary>The values of the parameters declared <c>secret</c> in <paramref name="plan"/>.</summary>
    public static SecretMasker For(ExecutionPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return new SecretMasker(plan.Runbook.Parameters
            .Where(p => p.Type == Runbooks.ParameterType.Secret)
            .Select(p => plan.Parameters.TryGetValue(p.Name, out var value) ? value : p.Default)
            .OfType<string>());
    }

    public bool IsEmpty => _secrets.Length == 0;

    public string Apply(string text)
    {
        if (string.IsNullOrEmpty(text))
            return text;
        foreach (var secret in _secrets)
        {
            if (text.Contains(secret, StringComparison.Ordinal))
                text = text.Replace(secret, Mask, StringComparison.Ordinal);
        }
        return text;
    }

    public string? ApplyOrNull(string? text) => text is null ? null : Apply(text);
}
