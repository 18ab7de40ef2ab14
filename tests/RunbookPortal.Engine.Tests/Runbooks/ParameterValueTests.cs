using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Tests.Runbooks;

/// <summary>String values are sanitised by default: no control characters, no newline, no leading dash, unless declared.</summary>
public sealed class ParameterValueTests
{
    private static ParameterDefinition String(bool multiline = false, bool dash = false) =>
        new("note", ParameterType.String, true, null, null, null, null, null, null) { Multiline = multiline, AllowLeadingDash = dash };

    [Theory]
    [InlineData("a\nb", "newline")]
    [InlineData("a\rb", "control character")]
    [InlineData("a\tb", "control character")]
    [InlineData("a\u001b[31mb", "control character")]
    [InlineData("--version", "starts with '-'")]
    [InlineData("-rf", "starts with '-'")]
    public void APlainString_RefusesControlCharacters_NewlinesAndALeadingDash(string value, string problem)
    {
        var refused = String().CheckValue(value);
        Assert.NotNull(refused);
        Assert.Contains(problem, refused);
        Assert.DoesNotContain(value, refused); // the message never repeats the value
    }

    [Fact]
    public void TheFlags_AllowExactlyWhatTheySay()
    {
        Assert.Null(String(multiline: true).CheckValue("line one\nline two"));
        Assert.NotNull(String(multiline: true).CheckValue("tab\there"));
        Assert.NotNull(String(multiline: true).CheckValue("--version"));
        Assert.Null(String(dash: true).CheckValue("--version"));
        Assert.NotNull(String(dash: true).CheckValue("a\nb"));
        Assert.Null(String().CheckValue("an ordinary value with spaces, quotes ' \" and $(symbols) -inside"));
    }

    [Fact]
    public void ASecret_MayStartWithADash_AndHoldNewlines_AsGeneratedTokensAndKeysDo()
    {
        var secret = new ParameterDefinition("token", ParameterType.Secret, true, null, null, null, null, null, null);
        Assert.Null(secret.CheckValue("-AbC_123"));
        Assert.Null(secret.CheckValue("-----BEGIN KEY-----\nabc\n-----END KEY-----"));
    }

    [Fact]
    public void TheValidator_ReadsTheFlags_OnStringParametersOnly()
    {
        var ok = RunbookValidator.Validate("""
            apiVersion: runbooks/v1
            name: flags
            title: Flags
            type: maintenance
            parameters:
              note: { type: string, multiline: true, allow_leading_dash: true }
            steps:
              - id: s
                action: shell
                run: echo {{ note }}
            """);
        Assert.True(ok.IsValid);
        var note = ok.Definition!.FindParameter("note")!;
        Assert.True(note.Multiline);
        Assert.True(note.AllowLeadingDash);

        var wrong = RunbookValidator.Validate("""
            apiVersion: runbooks/v1
            name: flags
            title: Flags
            type: maintenance
            parameters:
              n: { type: int, multiline: true }
            steps:
              - id: s
                action: shell
                run: echo {{ n }}
            """);
        var problem = Assert.Single(wrong.Diagnostics, d => d.Severity == DiagnosticSeverity.Error);
        Assert.Contains("`multiline` applies to string parameters only", problem.Message);
        Assert.Equal(6, problem.Line);

        var defaultWithDash = RunbookValidator.Validate("""
            apiVersion: runbooks/v1
            name: flags
            title: Flags
            type: maintenance
            parameters:
              opt: { type: string, default: "--all" }
            steps:
              - id: s
                action: shell
                run: echo {{ opt }}
            """);
        Assert.Contains(defaultWithDash.Diagnostics, d => d.Severity == DiagnosticSeverity.Error && d.Message.Contains("allow_leading_dash", StringComparison.Ordinal));
    }
}
