using System.Text;

namespace RunbookPortal.Engine.Runbooks;

/// <summary>
/// Parses and validates runbook YAML (<c>runbooks/v1</c>). Every problem becomes a diagnostic with line, column,
/// path and a message; many problems are reported at once.
/// </summary>
public static class RunbookValidator
{
    /// <summary>
    /// Validates <paramref name="yaml"/> and, when there is no error, answers the parsed definition.
    /// Never throws, whatever the input: size, nesting and aliases are limited (see <see cref="RunbookLimits"/>).
    /// </summary>
    public static RunbookValidationResult Validate(string yaml)
    {
        var diagnostics = new DiagnosticBag();
        try
        {
            yaml ??= "";
            if (yaml.StartsWith('\uFEFF'))
                yaml = yaml[1..]; // a byte order mark is not part of the text, and editors do not count it as a column
            if (yaml.Length > RunbookLimits.MaxDocumentBytes || Encoding.UTF8.GetByteCount(yaml) > RunbookLimits.MaxDocumentBytes)
            {
                var size = Encoding.UTF8.GetByteCount(yaml) / (1024.0 * 1024.0);
                diagnostics.Error(SourcePosition.DocumentStart, "",
                    $"the document is {size.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture)} MiB; a runbook may be at most 1 MiB, so move large scripts or payloads into files the steps use");
                return new RunbookValidationResult(null, diagnostics.ToSortedList());
            }

            var root = YamlTreeReader.Read(yaml, diagnostics);
            var definition = root is null ? null : new RunbookAnalyzer(yaml, diagnostics).Analyze(root);
            return new RunbookValidationResult(diagnostics.HasErrors ? null : definition, diagnostics.ToSortedList());
        }
        catch (Exception exception)
        {
            // Last resort: the validator is written not to get here, but no input may make it throw.
            diagnostics.Error(SourcePosition.DocumentStart, "",
                $"the validator could not check this document ({exception.GetType().Name}); please report this to the portal's maintainers");
            return new RunbookValidationResult(null, diagnostics.ToSortedList());
        }
    }
}
