namespace RunbookPortal.Engine.Runbooks;

/// <summary>Collects diagnostics up to <see cref="RunbookLimits.MaxDiagnostics"/>.</summary>
internal sealed class DiagnosticBag
{
    private readonly List<RunbookDiagnostic> items = [];
    private bool truncated;

    public bool HasErrors { get; private set; }

    public bool IsFull => truncated;

    public void Error(YNode at, LazyPath path, string message) => Add(at.Start, DiagnosticSeverity.Error, path.ToString(), message);

    public void Warning(YNode at, LazyPath path, string message) => Add(at.Start, DiagnosticSeverity.Warning, path.ToString(), message);

    public void Error(SourcePosition at, LazyPath path, string message) => Add(at, DiagnosticSeverity.Error, path.ToString(), message);

    public void Warning(SourcePosition at, LazyPath path, string message) => Add(at, DiagnosticSeverity.Warning, path.ToString(), message);

    private void Add(SourcePosition at, DiagnosticSeverity severity, string? path, string message)
    {
        if (severity == DiagnosticSeverity.Error)
            HasErrors = true;
        if (truncated)
            return;
        if (items.Count >= RunbookLimits.MaxDiagnostics)
        {
            truncated = true;
            items.Add(new RunbookDiagnostic(at.Line, at.Column, DiagnosticSeverity.Error, path ?? "",
                $"more than {RunbookLimits.MaxDiagnostics} problems; fix these first to see the rest"));
            HasErrors = true;
            return;
        }
        items.Add(new RunbookDiagnostic(Math.Max(1, at.Line), Math.Max(1, at.Column), severity, path ?? "", message));
    }

    public IReadOnlyList<RunbookDiagnostic> ToSortedList() =>
        items.OrderBy(d => d.Line).ThenBy(d => d.Column).ToArray();
}
