using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Tests.Runbooks;

public sealed class TemplateReferencesTests
{
    [Theory]
    [InlineData("")]
    [InlineData(null)]
    [InlineData("no templates here")]
    [InlineData("single { brace } and } {")]
    public void Find_AnswersNothing_WithoutTemplates(string? text) =>
        Assert.Empty(TemplateReferences.Find(text));

    [Theory]
    [InlineData("{{ version }}", "version")]
    [InlineData("{{version}}", "version")]
    [InlineData("{{   _under_score9   }}", "_under_score9")]
    public void Find_ReadsParameters_WithOrWithoutSpaces(string text, string name)
    {
        var reference = Assert.Single(TemplateReferences.Find(text));
        Assert.Equal(TemplateReferenceKind.Parameter, reference.Kind);
        Assert.Equal(name, reference.ParameterName);
        Assert.Equal((0, text.Length), (reference.Index, reference.Length));
    }

    [Fact]
    public void Find_ReadsStepOutputs_AndTheirPositions()
    {
        const string text = "deploy {{ steps.build-1.outputs.image_tag }} to {{ env }}";

        var references = TemplateReferences.Find(text);

        Assert.Equal(2, references.Count);
        Assert.Equal(TemplateReferenceKind.StepOutput, references[0].Kind);
        Assert.Equal(("build-1", "image_tag"), (references[0].StepId, references[0].OutputName));
        Assert.Equal("{{ steps.build-1.outputs.image_tag }}", references[0].Text(text));
        Assert.Equal(7, references[0].Index);
        Assert.Equal(TemplateReferenceKind.Parameter, references[1].Kind);
        Assert.Equal("{{ env }}", references[1].Text(text));
    }

    [Theory]
    [InlineData("{{ steps.build.id }}")]
    [InlineData("{{ steps.Build.outputs.x }}")]
    [InlineData("{{ steps.build.outputs.x.y }}")]
    [InlineData("{{ 1 + 2 }}")]
    [InlineData("{{ }}")]
    [InlineData("{{ a b }}")]
    [InlineData("{{ 9lives }}")]
    [InlineData("{{ env | upper }}")]
    public void Find_MarksOtherExpressionsInvalid(string text) =>
        Assert.Equal(TemplateReferenceKind.Invalid, Assert.Single(TemplateReferences.Find(text)).Kind);

    [Fact]
    public void Find_ReadsLiterals_TheWayToWriteBraces()
    {
        const string text = "docker inspect -f '{{ '{{' }} .State.Running }}'";

        var reference = Assert.Single(TemplateReferences.Find(text));

        Assert.Equal(TemplateReferenceKind.Literal, reference.Kind);
        Assert.Equal("{{", reference.LiteralText);
        Assert.Equal("docker inspect -f '{{ .State.Running }}'", TemplateReferences.Replace(text, _ => "unused"));
    }

    [Fact]
    public void Find_ReportsAnUnclosedTemplate_RunningToTheEnd()
    {
        var references = TemplateReferences.Find("a {{ b }} c {{ d");

        Assert.Equal(2, references.Count);
        Assert.Equal(TemplateReferenceKind.Unclosed, references[1].Kind);
        Assert.Equal((12, 4), (references[1].Index, references[1].Length));
    }

    [Fact]
    public void Replace_SubstitutesParametersAndOutputs_AndLeavesTheRestAlone()
    {
        const string text = "run {{ app }} at {{ steps.build.outputs.tag }}: {{ not valid }} {{ app";

        var rendered = TemplateReferences.Replace(text, r => r.Kind == TemplateReferenceKind.Parameter ? $"<{r.ParameterName}>" : $"<{r.StepId}.{r.OutputName}>");

        Assert.Equal("run <app> at <build.tag>: {{ not valid }} {{ app", rendered);
    }

    [Fact]
    public void Replace_DoesNotRescanSubstitutedValues()
    {
        var rendered = TemplateReferences.Replace("{{ a }}", _ => "{{ b }}");

        Assert.Equal("{{ b }}", rendered);
    }

    [Theory]
    [InlineData("deploy", true)]
    [InlineData("pre_check", true)]
    [InlineData("step-2", true)]
    [InlineData("9", true)]
    [InlineData("Deploy", false)]
    [InlineData("-x", false)]
    [InlineData("a.b", false)]
    [InlineData("", false)]
    public void IsStepId_AcceptsSlugs(string id, bool expected) =>
        Assert.Equal(expected, TemplateReferences.IsStepId(id));
}
