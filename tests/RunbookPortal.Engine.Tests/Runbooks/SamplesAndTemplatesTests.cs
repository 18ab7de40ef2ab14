using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Tests.Runbooks;

public sealed class SamplesAndTemplatesTests
{
    public static TheoryData<string> Types => [.. RunbookTypes.All];

    [Fact]
    public void EverySample_ValidatesWithoutAnyDiagnostic()
    {
        Assert.NotEmpty(RunbookSamples.All);
        foreach (var sample in RunbookSamples.All)
        {
            var result = RunbookValidator.Validate(sample.Yaml);
            Assert.True(result.IsValid && result.Diagnostics.Count == 0, $"{sample.Name}:\n{CorpusTests.Describe(result.Diagnostics)}");
            Assert.Equal(sample.Name, result.Definition!.Name);
            Assert.Equal(sample.Type, result.Definition.Type);
        }
    }

    [Fact]
    public void Samples_AreOnePerType_InTheOrderOfTheTypes()
    {
        Assert.Equal(RunbookTypes.All, RunbookSamples.All.Select(s => s.Type));
        Assert.Equal(RunbookSamples.All.Count, RunbookSamples.All.Select(s => s.Name).Distinct().Count());
    }

    [Fact]
    public void Samples_AreRealistic_WithSeveralStepsAndParameters()
    {
        foreach (var sample in RunbookSamples.All)
        {
            var definition = RunbookValidator.Validate(sample.Yaml).Definition!;
            Assert.True(definition.Steps.Count >= 4, $"{sample.Name} has {definition.Steps.Count} steps");
            Assert.NotEmpty(definition.Parameters);
            Assert.False(string.IsNullOrWhiteSpace(definition.Description));
        }
        var actionsUsed = RunbookSamples.All.SelectMany(s => RunbookValidator.Validate(s.Yaml).Definition!.Steps.Select(step => step.Action)).ToHashSet();
        Assert.Equal(StepActions.All.ToHashSet(), actionsUsed);
    }

    [Fact]
    public void WebAppDeploySample_IsTheOneFromTheDesign()
    {
        var sample = RunbookSamples.Find("web-app-deploy");
        Assert.NotNull(sample);

        var definition = RunbookValidator.Validate(sample.Yaml).Definition!;

        Assert.Equal("Web Application Deployment", definition.Title);
        Assert.Equal(RunbookTypes.Deployment, definition.Type);
        Assert.Equal(["deployment", "web-application"], definition.Tags);
        Assert.Equal("team-web", definition.Owner);
        Assert.Equal(["Application build completed successfully"], definition.Prerequisites);
        Assert.Equal(["application_name", "version", "environment", "batch_size", "db_password"], definition.Parameters.Select(p => p.Name));
        var batch = definition.FindParameter("batch_size")!;
        Assert.Equal((ParameterType.Int, "2", 1L, 10L), (batch.Type, batch.Default, batch.Min, batch.Max));
        Assert.Equal(["staging", "production"], definition.FindParameter("environment")!.Allowed!);
        Assert.Equal(ParameterType.Secret, definition.FindParameter("db_password")!.Type);
        Assert.Equal(@"^\d+\.\d+\.\d+$", definition.FindParameter("version")!.Pattern);

        var approval = definition.Approval!;
        Assert.Equal(2, approval.RequiredApprovals);
        Assert.Equal("Approver", approval.ApproverRole);
        Assert.Equal("production", approval.When["environment"]);
        Assert.Equal(TimeSpan.FromHours(4), approval.ExpiresAfter);
        Assert.Equal(new ConcurrencyPolicy("{{ environment }}", 1), definition.Concurrency);

        Assert.Equal(["pre_check", "backup", "deploy", "verify"], definition.Steps.Select(s => s.Id));
        var preCheck = definition.Steps[0];
        Assert.Equal("health-check-function", preCheck.Lambda!.Function);
        Assert.Equal("""{"environment":"{{ environment }}"}""", preCheck.Lambda.Payload!.Value.GetRawText());
        Assert.Equal(TimeSpan.FromMinutes(5), preCheck.Timeout);
        Assert.Equal(new RetryPolicy(2, TimeSpan.FromSeconds(10)), preCheck.Retry);
        var backup = definition.Steps[1];
        Assert.Equal(["{{ application_name }}"], backup.Ssm!.Targets["tag:App"]);
        Assert.Equal("restore-application", backup.Rollback!.Ssm!.Document);
        Assert.Equal("backup.rollback", backup.Rollback.Id);
        Assert.Equal("./deploy.sh --app {{ application_name }} --version {{ version }}", definition.Steps[2].Shell!.Run);
        Assert.Equal("deployment created successfully", definition.Steps[2].Validate!.OutputContains);
        Assert.False(definition.Steps[3].Required);
        Assert.True(definition.Steps[2].Required);
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Template_ForEveryType_IsValidAndNamedWithThePlaceholder(string type)
    {
        var result = RunbookValidator.Validate(RunbookTemplates.For(type));

        Assert.True(result.IsValid && result.Diagnostics.Count == 0, CorpusTests.Describe(result.Diagnostics));
        Assert.Equal(RunbookTemplates.PlaceholderName, result.Definition!.Name);
        Assert.Equal(type, result.Definition.Type);
    }

    [Fact]
    public void Template_ForAnUnknownType_IsRefused() =>
        Assert.Throws<ArgumentException>(() => RunbookTemplates.For("chaos"));
}
