using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Tests.Runbooks;

/// <summary>The validator refuses a template where bash evaluates its value unless the parameter is int or bool.</summary>
public sealed class ShellTemplateValidationTests
{
    private const string Header = "apiVersion: runbooks/v1\nname: test\ntitle: Test\ntype: maintenance\n";

    /// <summary>A runbook with parameter <c>n</c> of <paramref name="type"/> and one shell step; its `run` is on line 8, from column 10.</summary>
    private static RunbookValidationResult Validate(string type, string run) =>
        RunbookValidator.Validate(Header + $"parameters:\n  n: {{ type: {type} }}\nsteps:\n  - id: a\n    action: shell\n    run: |\n      {run.Replace("\n", "\n      ", StringComparison.Ordinal)}\n");

    public static TheoryData<string> Refused =>
    [
        "echo $(( {{ n }} + 1 ))",
        "(( {{ n }} ))",
        "for (( i = 0; i < {{ n }}; i++ )); do :; done",
        "let x={{ n }}",
        "[[ {{ n }} -eq 0 ]]",
        "[[ {{ n }} -ne 0 ]]",
        "[[ {{ n }} -lt 0 ]]",
        "[[ {{ n }} -le 0 ]]",
        "[[ {{ n }} -gt 0 ]]",
        "[[ {{ n }} -ge 0 ]]",
        "a[{{ n }}]=1",
        "echo \"${a[{{ n }}]}\"",
        "echo \\{{ n }}",
        "echo $[ {{ n }} + 1 ]",
        "declare -i x={{ n }}",
        "typeset -ri x={{ n }}",
        "local -a -i x=({{ n }})",
        "echo \"${s:{{ n }}}\"",
        "echo ${s:0:{{ n }}}",
        "echo ${s: {{ n }}}",
        "printf -v \"a[{{ n }}]\" %s 1",
        "unset 'a[{{ n }}]'",
        "read -r \"a[{{ n }}]\" <<< 1",
        "[ -v \"a[{{ n }}]\" ]",
        "declare -i x; x={{ n }}",
        "declare -i x y; echo; y+=\"{{ n }}\"",
    ];

    [Theory]
    [MemberData(nameof(Refused))]
    public void AStringParameter_IsRefused_AtTheTemplate(string run)
    {
        var result = Validate("string", run);

        Assert.False(result.IsValid);
        var error = Assert.Single(result.Diagnostics);
        Assert.Equal(DiagnosticSeverity.Error, error.Severity);
        Assert.Equal("steps[0].run", error.Path);
        Assert.Equal((11, 7 + run.IndexOf("{{", StringComparison.Ordinal)), (error.Line, error.Column));
        Assert.Contains("`n` is a string parameter", error.Message, StringComparison.Ordinal);
        Assert.Contains("`type: int` or `bool`", error.Message, StringComparison.Ordinal);
        Assert.Contains(run.Contains('\\', StringComparison.Ordinal) ? "backslash" : "arithmetic", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Refused))]
    public void ASecretParameter_IsRefused(string run) =>
        Assert.Contains(Validate("secret", run).Diagnostics, d => d.Message.Contains("`n` is a secret parameter", StringComparison.Ordinal));

    [Theory]
    [MemberData(nameof(Refused))]
    public void AnIntOrBoolParameter_IsAccepted(string run)
    {
        foreach (var type in new[] { "int", "bool" })
        {
            var result = Validate(type, run);
            Assert.True(result.IsValid && result.Diagnostics.Count == 0, $"{type}: {CorpusTests.Describe(result.Diagnostics)}");
        }
    }

    [Theory]
    [InlineData("echo {{ n }} \"{{ n }}\" '{{ n }}'")]
    [InlineData("[[ \"{{ n }}\" == prod ]] && echo yes")]
    [InlineData("cat <<< \"{{ n }}\"")]
    [InlineData("cat <<EOF\nname: {{ n }}\nEOF")]
    [InlineData("echo \"(( {{ n }} ))\"")]
    [InlineData("declare x={{ n }}")]
    [InlineData("echo \"items[{{ n }}]\"")]
    [InlineData("declare x; x={{ n }}")]
    [InlineData("local -r x={{ n }}")]
    [InlineData("echo \"${s:-{{ n }}}\" ${s:={{ n }}} ${s:+{{ n }}}")]
    [InlineData("echo \"${s}: {{ n }}\"")]
    public void AStringParameter_OutsideArithmetic_IsAccepted(string run)
    {
        var result = Validate("string", run);
        Assert.True(result.IsValid && result.Diagnostics.Count == 0, CorpusTests.Describe(result.Diagnostics));
    }

    [Theory]
    [InlineData("ssh web-1 systemctl restart {{ n }}", "ssh")]
    [InlineData("sh -c \"deploy {{ n }}\"", "sh -c")]
    [InlineData("echo start; bash -lc 'run {{ n }}'", "bash -lc")]
    [InlineData("sudo eval echo {{ n }}", "eval")]
    [InlineData("su deploy -c \"./go {{ n }}\"", "su deploy -c")]
    public void AValueHandedToAnotherInterpreter_IsValid_WithAWarningAtTheTemplate(string run, string interpreter)
    {
        var result = Validate("string", run);

        Assert.True(result.IsValid, CorpusTests.Describe(result.Diagnostics));
        var warning = Assert.Single(result.Diagnostics);
        Assert.Equal(DiagnosticSeverity.Warning, warning.Severity);
        Assert.Equal((11, 7 + run.IndexOf("{{", StringComparison.Ordinal)), (warning.Line, warning.Column));
        Assert.Contains($"is handed to `{interpreter}`, which parses its arguments as a command again", warning.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("echo {{ n }} | ssh-keygen -lf -")]
    [InlineData("deploy --target {{ n }}")]
    [InlineData("echo \"eval {{ n }}\"")]
    public void AnOrdinaryCommand_GetsNoSuchWarning(string run) =>
        Assert.Empty(Validate("string", run).Diagnostics);

    [Fact]
    public void AStepOutput_InAnArithmeticContext_IsRefused()
    {
        var result = RunbookValidator.Validate(Header + """
            steps:
              - { id: count, action: shell, run: echo 3, outputs: { n: '(\d+)' } }
              - { id: use, action: shell, run: "echo $(( {{ steps.count.outputs.n }} + 1 ))" }
            """);

        var error = Assert.Single(result.Diagnostics);
        Assert.Equal(("steps[1].run", 7, 46), (error.Path, error.Line, error.Column));
        Assert.Contains("a step output", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ATemplateInAQuotedHereDocument_IsRefused_WhateverItsType()
    {
        var result = Validate("int", "cat <<'EOF'\n{{ n }}\nEOF");

        var error = Assert.Single(result.Diagnostics);
        Assert.Equal((12, 7), (error.Line, error.Column));
        Assert.Contains("quoted here-document", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheSamples_StillValidate()
    {
        foreach (var sample in RunbookSamples.All)
            Assert.True(RunbookValidator.Validate(sample.Yaml).Diagnostics.Count == 0, sample.Name);
    }
}
