using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Tests.Runbooks;

public sealed class CorpusTests
{
    [Fact]
    public void Corpus_HasEnoughFilesOfEachKind()
    {
        Assert.True(Corpus.ValidFiles.Count() >= 10, "at least 10 valid runbooks");
        Assert.True(Corpus.InvalidFiles.Count() >= 25, "at least 25 invalid runbooks");
        Assert.Equal(RunbookSamples.All.Count, Corpus.ValidFiles.Count(f => Path.GetFileName(f).StartsWith("sample-", StringComparison.Ordinal)));
    }

    [Theory]
    [MemberData(nameof(Corpus.Valid), MemberType = typeof(Corpus))]
    public void ValidRunbook_HasNoDiagnosticsAndADefinition(string file)
    {
        var result = RunbookValidator.Validate(Corpus.Read(file));

        Assert.True(result.Diagnostics.Count == 0, $"{file}:\n{Describe(result.Diagnostics)}");
        Assert.True(result.IsValid);
        Assert.NotNull(result.Definition);
    }

    [Theory]
    [MemberData(nameof(Corpus.Invalid), MemberType = typeof(Corpus))]
    public void InvalidRunbook_ReportsExactlyTheDeclaredErrors_AtTheirLineColumnAndPath(string file)
    {
        var text = Corpus.Read(file);
        var expectations = Corpus.Expectations(text);
        Assert.True(expectations.Any(e => e.Severity == DiagnosticSeverity.Error), $"{file} declares no `# expect:` line");

        var result = RunbookValidator.Validate(text);

        Assert.False(result.IsValid);
        Assert.Null(result.Definition);
        var missing = expectations.Where(e => !result.Diagnostics.Any(e.Matches)).ToList();
        var unexpected = result.Diagnostics
            .Where(d => d.Severity == DiagnosticSeverity.Error && !expectations.Any(e => e.Matches(d)))
            .ToList();
        Assert.True(missing.Count == 0 && unexpected.Count == 0,
            $"{file}\nexpected but not reported:\n{string.Join("\n", missing)}\nreported but not expected:\n{Describe(unexpected)}\nall reported:\n{Describe(result.Diagnostics)}");
    }

    [Theory]
    [MemberData(nameof(Corpus.Invalid), MemberType = typeof(Corpus))]
    public void InvalidRunbook_DiagnosticsPointInsideTheDocument(string file)
    {
        var text = Corpus.Read(file);
        var lines = text.Split('\n');

        var result = RunbookValidator.Validate(text);

        foreach (var diagnostic in result.Diagnostics)
        {
            Assert.InRange(diagnostic.Line, 1, lines.Length);
            Assert.InRange(diagnostic.Column, 1, lines[diagnostic.Line - 1].Length + 1);
            Assert.False(string.IsNullOrWhiteSpace(diagnostic.Message));
        }
    }

    internal static string Describe(IEnumerable<RunbookDiagnostic> diagnostics) =>
        string.Join("\n", diagnostics.Select(d => $"  {d.Line}:{d.Column} {d.Severity} [{d.Path}] {d.Message}"));
}
