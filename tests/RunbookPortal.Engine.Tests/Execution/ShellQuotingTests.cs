using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Execution.Steps;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Tests.Execution;

/// <summary>How a template becomes a variable reference, by the quoting context it stands in.</summary>
public sealed class ShellQuotingTests
{
    /// <summary>Renders with every template taken for a numeric parameter (these tests are about lexing).</summary>
    private static string Render(string run) => ShellQuoting.RenderScript(run, r => "V_" + (r.ParameterName ?? r.OutputName), _ => true);

    [Theory]
    [InlineData("deploy --version {{ v }}", "deploy --version \"${V_v}\"")]
    [InlineData("echo \"version {{ v }} now\"", "echo \"version ${V_v} now\"")]
    [InlineData("echo 'version {{ v }} now'", "echo 'version '\"${V_v}\"' now'")]
    [InlineData("echo $'tab\\t{{ v }}'", "echo $'tab\\t'\"${V_v}\"$''")]
    [InlineData("echo $(basename {{ v }})", "echo $(basename \"${V_v}\")")]
    [InlineData("echo \"$(basename {{ v }})\"", "echo \"$(basename \"${V_v}\")\"")]
    [InlineData("echo `basename {{ v }}`", "echo `basename \"${V_v}\"`")]
    [InlineData("echo ${X:-{{ v }}}", "echo ${X:-\"${V_v}\"}")]
    [InlineData("echo x # it's {{ v }}\necho {{ v }}", "echo x # it's ${V_v}\necho \"${V_v}\"")]
    [InlineData("echo a#{{ v }}", "echo a#\"${V_v}\"")]
    [InlineData("echo \\'{{ v }}", "echo \\'\"${V_v}\"")]
    [InlineData("echo $(( {{ v }} << 2 ))\necho {{ v }}", "echo $(( \"${V_v}\" << 2 ))\necho \"${V_v}\"")]
    [InlineData("echo {{ '{{' }} {{ v }}", "echo {{ \"${V_v}\"")]
    [InlineData("echo {{ steps.build.outputs.out }}", "echo \"${V_out}\"")]
    public void Templates_BecomeQuotedVariableReferences_ForTheirContext(string run, string script) =>
        Assert.Equal(script, Render(run));

    [Fact]
    public void InAnUnquotedHereDocument_TheReferenceIsBare_AndTheLinesAfterItAreCodeAgain()
    {
        var run = "cat <<-EOF > out.txt\n\tname: {{ v }}\n\tit's \"fine\"\n\tEOF\necho {{ v }}";

        Assert.Equal("cat <<-EOF > out.txt\n\tname: ${V_v}\n\tit's \"fine\"\n\tEOF\necho \"${V_v}\"", Render(run));
    }

    [Fact]
    public void InAQuotedHereDocument_ATemplateIsRefused_BecauseNothingExpandsThere()
    {
        var ex = Assert.Throws<StepTemplateException>(() => Render("cat <<'EOF'\n{{ v }}\nEOF"));

        Assert.Contains("quoted here-document", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AScriptWithoutTemplates_IsUnchanged()
    {
        const string run = "set -x\necho \"$HOME\" 'it''s' # done\n";
        Assert.Equal(run, Render(run));
    }

    [Theory]
    [InlineData("plain", "'plain'")]
    [InlineData("it's", "'it'\\''s'")]
    [InlineData("", "''")]
    [InlineData("$(id) `id` \n", "'$(id) `id` \n'")]
    public void Quote_MakesOneSingleQuotedWord(string value, string quoted) => Assert.Equal(quoted, ShellQuoting.Quote(value));

    [Fact]
    public void VariableNames_AreUpperCase_WithDashesAsUnderscores()
    {
        Assert.Equal("RBP_PARAM_DB_PASSWORD", ShellStepExecutor.ParameterVariable("db_password"));
        Assert.Equal("RBP_STEP_PRE_CHECK_VERSION", ShellStepExecutor.OutputVariable("pre-check", "version"));
    }

    [Fact]
    public void RenderForDisplay_ShowsValuesAsQuotedWords()
    {
        var shown = ShellQuoting.RenderForDisplay("./deploy.sh --app {{ app }}", r => r.Kind == TemplateReferenceKind.Parameter ? "web app" : "?");
        Assert.Equal("./deploy.sh --app 'web app'", shown);
    }
}
