using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Execution.Steps;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Tests.Execution;

/// <summary>
/// Templates where bash evaluates a value (arithmetic, after a backslash): each template binds its own reference,
/// and only numeric parameters may stand there — in the renderer (run time) and with real bash.
/// </summary>
public sealed class ShellTemplatePlacesTests : ScratchFolder
{
    private static string Render(string run, Func<TemplateReference, bool>? isNumeric) =>
        ShellQuoting.RenderScript(run, r => "V_" + (r.ParameterName ?? r.OutputName), isNumeric);

    [Theory]
    [InlineData("x \\{{ a }}; deploy --env {{ env }}", "x \"${V_a}\"; deploy --env \"${V_env}\"")]
    [InlineData("echo \"\\{{ a }}\" {{ env }}", "echo \"\\\\${V_a}\" \"${V_env}\"")]
    [InlineData("echo \\\\{{ a }} {{ env }}", "echo \\\\\"${V_a}\" \"${V_env}\"")]
    [InlineData("cat <<< \"{{ a }}\"; deploy --env {{ env }}", "cat <<< \"${V_a}\"; deploy --env \"${V_env}\"")]
    [InlineData("cat <<< {{ a }}\ndeploy --env {{ env }}", "cat <<< \"${V_a}\"\ndeploy --env \"${V_env}\"")]
    [InlineData("cat <<EOF\n\\{{ a }}\nEOF\necho {{ env }}", "cat <<EOF\n\\\\${V_a}\nEOF\necho \"${V_env}\"")]
    public void EveryTemplate_BindsItsOwnReference(string run, string script) =>
        Assert.Equal(script, Render(run, _ => true));

    [Fact]
    public void AfterABackslash_ATemplateThatIsNotNumeric_FailsTheStep_NeverShiftsTheNextOne()
    {
        var ex = Assert.Throws<StepTemplateException>(() => Render("x \\{{ a }}; deploy --env {{ env }}", r => r.ParameterName == "env"));
        Assert.Contains("{{ a }}", ex.Message, StringComparison.Ordinal);
        Assert.Contains("backslash", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ATemplateInAHereDocumentDelimiter_IsRefused() =>
        Assert.Throws<StepTemplateException>(() => Render("cat <<{{ a }}\nx\n{{ a }}\necho {{ env }}", _ => true));

    public static TheoryData<string> ArithmeticRuns =>
    [
        "echo $(( {{ n }} + 1 ))",
        "echo \"$(( {{ n }} + 1 ))\"",
        "(( {{ n }} ))",
        "if (( {{ n }} > 1 )); then echo big; fi",
        "for (( i = 0; i < {{ n }}; i++ )); do echo $i; done",
        "x=$(( \"{{ n }}\" * 2 ))",
        "let x={{ n }}",
        "let \"x = {{ n }} + 1\"",
        "true && let x={{ n }}",
        "[[ {{ n }} -eq 0 ]]",
        "[[ {{ n }} -ne 0 ]]",
        "[[ {{ n }} -lt 0 ]]",
        "[[ {{ n }} -le 0 ]]",
        "[[ {{ n }} -gt 0 ]]",
        "[[ {{ n }} -ge 0 ]]",
        "[[ 0 -lt \"{{ n }}\" ]]",
        "if [[ -v {{ n }} ]]; then echo set; fi",
        "a[{{ n }}]=1",
        "echo \"${a[{{ n }}]}\"",
        "unset a[{{ n }}]",
    ];

    [Theory]
    [MemberData(nameof(ArithmeticRuns))]
    public void InAnArithmeticContext_ATemplateThatIsNotNumeric_IsRefused_AndANumericOneIsRendered(string run)
    {
        var ex = Assert.Throws<StepTemplateException>(() => Render(run, _ => false));
        Assert.Contains("arithmetic", ex.Message, StringComparison.Ordinal);

        Assert.Contains("V_n", Render(run, _ => true), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("echo {{ n }}")]
    [InlineData("[[ \"{{ n }}\" == prod ]] && echo yes")]
    [InlineData("[[ {{ n }} =~ ^[0-9]+$ ]]")]
    [InlineData("echo \"(( {{ n }} ))\" 'let {{ n }}'")]
    [InlineData("echo $(( 1 + $(wc -l < {{ n }}) ))")]
    [InlineData("echo let x={{ n }}")]
    [InlineData("let x=1; echo {{ n }}")]
    [InlineData("echo a[1] {{ n }}")]
    [InlineData("cat <<< \"{{ n }}\"")]
    [InlineData("cat <<EOF\nvalue: {{ n }}\nEOF")]
    public void OutsideArithmetic_AnyTemplateIsRendered(string run) =>
        Assert.Contains("V_n", Render(run, _ => false), StringComparison.Ordinal);

    private async Task<(ExecutionOutcome Outcome, EventLog Log)> RunAsync(RunbookDefinition runbook, Dictionary<string, string> values)
    {
        var log = new EventLog();
        using var control = new ExecutionControl();
        var outcome = await Engine.Runner(Folder).RunAsync(Engine.Plan(runbook, values), log, control, CancellationToken.None).WaitAsync(EventLog.Patience);
        return (outcome, log);
    }

    /// <summary>The same runbook with every parameter declared as <paramref name="type"/> (as if it had not been validated).</summary>
    private static RunbookDefinition Retyped(RunbookDefinition runbook, ParameterType type) =>
        runbook with { Parameters = [.. runbook.Parameters.Select(p => p with { Type = type, Min = null, Max = null })] };

    private const string BindingSteps = """
        - id: probe
          action: shell
          run: |
            echo "a=" \{{ a }}
            cat <<< "{{ a }}"
            echo "b=" {{ b }}
        """;

    [Fact]
    public async Task WithRealBash_TheTemplatesAfterABackslashAndAHereString_BindTheirOwnValues()
    {
        var runbook = Engine.Runbook(BindingSteps, "a: { type: int }\nb: { type: int }");

        var (outcome, log) = await RunAsync(runbook, new() { ["a"] = "11", ["b"] = "22" });

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal("a= 11\n11\nb= 22", log.Output("probe"));
    }

    [Theory]
    [InlineData("cat <<< \"{{ a }}\"; echo \"b=\" {{ b }}")]
    public async Task WithRealBash_BGetsTheValueOfB_OrTheStepFails_NeverTheValueOfA(string run)
    {
        var runbook = Engine.Runbook($"- {{ id: probe, action: shell, run: '{run}' }}", "a: { type: string }\nb: { type: string }");

        var (outcome, log) = await RunAsync(runbook, new() { ["a"] = "value-of-a", ["b"] = "value-of-b" });

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.EndsWith("b= value-of-b", log.Output("probe"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithRealBash_AStringAfterABackslash_FailsTheStep_AndNeverGivesBTheValueOfA()
    {
        // The validator refuses this runbook; run it anyway, as if it had not been validated.
        var runbook = Retyped(Engine.Runbook("- { id: probe, action: shell, run: 'echo \"a=\" \\{{ a }}; echo \"b=\" {{ b }}' }", "a: { type: int }\nb: { type: int }"), ParameterType.String);

        var (outcome, log) = await RunAsync(runbook, new() { ["a"] = "value-of-a", ["b"] = "value-of-b" });

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.DoesNotContain("value-of-a", log.Output("probe"), StringComparison.Ordinal);
        var failed = Assert.Single(log.All<StepFailed>());
        Assert.Contains("{{ a }}", failed.Reason, StringComparison.Ordinal);
    }

    private const string ArithmeticSteps = """
        - id: probe
          action: shell
          run: |
            echo $(( {{ n }} + 1 ))
            (( {{ n }} )) || true
            let x={{ n }}
            [[ {{ n }} -gt 0 ]] || true
            a=(1 2 3)
            echo "${a[{{ n }}]}"
            echo \{{ n }}
        """;

    [Fact]
    public async Task WithRealBash_AHostileValue_IsNotAnInt_AndNeverRunsInAnyArithmeticContext()
    {
        var marker = Marker();
        var hostile = $"a[$(touch {marker})]";
        var runbook = Engine.Runbook(ArithmeticSteps, "n: { type: int }");

        // Checked before the run: not a whole number.
        Assert.NotNull(runbook.Parameters.Single().CheckValue(hostile));

        // An int parameter with a good value runs.
        var (outcome, log) = await RunAsync(runbook, new() { ["n"] = "1" });
        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal("2\n2\n1", log.Output("probe"));

        // Should the value get past the check, or the parameter not be numeric, the step fails without running it.
        foreach (var candidate in new[] { runbook, Retyped(runbook, ParameterType.String), Retyped(runbook, ParameterType.Secret) })
        {
            (outcome, _) = await RunAsync(candidate, new() { ["n"] = hostile });
            Assert.Equal(ExecutionStatus.Failed, outcome.Status);
            Assert.False(File.Exists(marker), "a value in an arithmetic context ran as a command");
        }

        // And the validator refuses the runbook with a string or secret parameter.
        Assert.Throws<InvalidOperationException>(() => Engine.Runbook(ArithmeticSteps, "n: { type: string }"));
        Assert.Throws<InvalidOperationException>(() => Engine.Runbook(ArithmeticSteps, "n: { type: secret }"));
    }
}
