namespace RunbookPortal.Engine.Runbooks;

/// <summary>How bad a diagnostic is: an error makes the runbook invalid, a warning does not.</summary>
public enum DiagnosticSeverity
{
    Error,
    Warning,
}

/// <summary>
/// One problem found in a runbook's YAML.
/// </summary>
/// <param name="Line">1-based line of the problem.</param>
/// <param name="Column">1-based column (in UTF-16 code units, as editors count).</param>
/// <param name="Severity">Error or warning.</param>
/// <param name="Path">Where in the document, like <c>steps[2].retry.attempts</c>; empty for the document itself.</param>
/// <param name="Message">What is wrong and what to do about it.</param>
public sealed record RunbookDiagnostic(int Line, int Column, DiagnosticSeverity Severity, string Path, string Message);

/// <summary>The outcome of <see cref="RunbookValidator.Validate"/>.</summary>
/// <param name="Definition">The parsed runbook; <c>null</c> whenever there is at least one error.</param>
/// <param name="Diagnostics">Every problem found, ordered by position.</param>
public sealed record RunbookValidationResult(RunbookDefinition? Definition, IReadOnlyList<RunbookDiagnostic> Diagnostics)
{
    public bool IsValid => Definition is not null && Diagnostics.All(d => d.Severity != DiagnosticSeverity.Error);

    public IEnumerable<RunbookDiagnostic> Errors => Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error);

    public IEnumerable<RunbookDiagnostic> Warnings => Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Warning);
}

/// <summary>The limits the validator enforces, so that no input can exhaust the portal.</summary>
public static class RunbookLimits
{
    /// <summary>Largest accepted document, in UTF-8 bytes (1 MiB).</summary>
    public const int MaxDocumentBytes = 1024 * 1024;

    /// <summary>Most steps in one runbook.</summary>
    public const int MaxSteps = 500;

    /// <summary>Deepest nesting of mappings and lists.</summary>
    public const int MaxDepth = 32;

    /// <summary>Most diagnostics reported for one document; a last one says that more were left out.</summary>
    public const int MaxDiagnostics = 200;

    /// <summary>Longest time one regular expression may take on one value while validating.</summary>
    public static readonly TimeSpan RegexTimeout = TimeSpan.FromMilliseconds(200);
}
