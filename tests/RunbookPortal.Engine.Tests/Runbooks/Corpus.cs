using System.Globalization;
using System.Text.RegularExpressions;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Tests.Runbooks;

/// <summary>One expected diagnostic, declared in an invalid corpus file's header.</summary>
public sealed record ExpectedDiagnostic(int Line, int Column, DiagnosticSeverity Severity, string Path, string MessageFragment)
{
    public bool Matches(RunbookDiagnostic actual) =>
        actual.Line == Line && actual.Column == Column && actual.Severity == Severity && actual.Path == Path
        && actual.Message.Contains(MessageFragment, StringComparison.Ordinal);

    public override string ToString() => $"{Line}:{Column} {Severity} [{Path}] {MessageFragment}";
}

/// <summary>
/// The corpus of runbooks in <c>Runbooks/Corpus</c> (copied to the output): <c>valid/*.yaml</c> (including the shipped
/// samples as <c>sample-*.yaml</c>) and <c>invalid/*.yaml</c>. An invalid file declares in its leading comment lines:
/// <code>
/// # schema: invalid                                   (the JSON Schema must refuse it too)
/// # expect: LINE:COLUMN PATH MESSAGE-FRAGMENT         (an error; PATH is '-' for the document)
/// # expect-warning: LINE:COLUMN PATH MESSAGE-FRAGMENT (a warning)
/// </code>
/// </summary>
public static partial class Corpus
{
    public static string Root => Path.Combine(AppContext.BaseDirectory, "Runbooks", "Corpus");

    public static IEnumerable<string> ValidFiles => Files("valid");

    public static IEnumerable<string> InvalidFiles => Files("invalid");

    public static TheoryData<string> Valid => [.. ValidFiles];

    public static TheoryData<string> Invalid => [.. InvalidFiles];

    public static TheoryData<string> SchemaInvalid => [.. InvalidFiles.Where(f => IsMarkedSchemaInvalid(Read(f)))];

    public static string Read(string relativePath) => File.ReadAllText(Path.Combine(Root, relativePath));

    public static bool IsMarkedSchemaInvalid(string text) => Header(text).Any(line => line.Trim() == "# schema: invalid");

    public static IReadOnlyList<ExpectedDiagnostic> Expectations(string text)
    {
        var expectations = new List<ExpectedDiagnostic>();
        foreach (var line in Header(text))
        {
            var match = ExpectLine().Match(line);
            if (!match.Success)
                continue;
            expectations.Add(new ExpectedDiagnostic(
                int.Parse(match.Groups["line"].Value, CultureInfo.InvariantCulture),
                int.Parse(match.Groups["column"].Value, CultureInfo.InvariantCulture),
                match.Groups["kind"].Value == "expect-warning" ? DiagnosticSeverity.Warning : DiagnosticSeverity.Error,
                match.Groups["path"].Value == "-" ? "" : match.Groups["path"].Value,
                match.Groups["message"].Value.Trim()));
        }
        return expectations;
    }

    private static IEnumerable<string> Header(string text) =>
        text.Split('\n').Select(l => l.TrimEnd('\r')).TakeWhile(l => l.StartsWith('#'));

    private static IEnumerable<string> Files(string folder) =>
        Directory.EnumerateFiles(Path.Combine(Root, folder), "*.yaml")
            .Select(f => Path.Combine(folder, Path.GetFileName(f)))
            .Order(StringComparer.Ordinal);

    [GeneratedRegex(@"^# (?<kind>expect|expect-warning): (?<line>\d+):(?<column>\d+) (?<path>\S+) (?<message>.+)$")]
    private static partial Regex ExpectLine();
}
