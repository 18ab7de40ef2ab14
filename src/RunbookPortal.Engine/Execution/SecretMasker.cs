using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace RunbookPortal.Engine.Execution;

/// <summary>
/// Replaces every secret value in a text by <c>***</c>. The longest secret is masked first, so a secret that
/// contains another is masked whole. The forms a value takes on its way out are masked too: URL-encoded,
/// JSON-escaped (both ways JSON writers escape), as it stands inside single quotes, base64, each line of a multi-line
/// secret (output is recorded line by line), and its first 8 or more characters where a preview was cut off.
/// </summary>
public sealed class SecretMasker
{
    public const string Mask = "***";

    /// <summary>The shortest line of a multi-line secret that is masked on its own.</summary>
    private const int MinimumLineLength = 4;

    private readonly string[] _secrets;
    private readonly List<string> _originals = [];

    /// <summary>The shortest start of a secret that is masked where a preview was cut off (<c>…</c>).</summary>
    private const int MinimumCutPrefix = 8;

    /// <summary>What a cut-off preview ends with (the validate messages' 200-character previews).</summary>
    private const char Ellipsis = '…';

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
            forms.Add(JsonEncodedText.Encode(secret, JavaScriptEncoder.UnsafeRelaxedJsonEscaping).Value); // "a\"b", as most tools write JSON
            forms.Add(secret.Replace("'", @"'\''", StringComparison.Ordinal)); // inside single quotes, as the dry run shows a command
            forms.Add(Convert.ToBase64String(Encoding.UTF8.GetBytes(secret)));
            _originals.Add(secret);
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
        return text.Contains(Ellipsis, StringComparison.Ordinal) ? MaskCutPrefixes(text) : text;
    }

    /// <summary>A preview cut in the middle of a secret ends with its first characters and then <c>…</c>: those go too.</summary>
    private string MaskCutPrefixes(string text)
    {
        for (var at = text.IndexOf(Ellipsis, StringComparison.Ordinal); at >= 0; at = text.IndexOf(Ellipsis, at + 1))
        {
            foreach (var secret in _originals)
            {
                for (var length = Math.Min(secret.Length - 1, at); length >= MinimumCutPrefix; length--)
                {
                    if (string.CompareOrdinal(text, at - length, secret, 0, length) != 0)
                        continue;
                    text = string.Concat(text.AsSpan(0, at - length), Mask, text.AsSpan(at));
                    at = at - length + Mask.Length;
                    break;
                }
            }
        }
        return text;
    }

    public string? ApplyOrNull(string? text) => text is null ? null : Apply(text);
}
