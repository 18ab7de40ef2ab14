using Newtonsoft.Json.Linq;
using NJsonSchema;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Tests.Runbooks;

/// <summary>The published JSON Schema (<c>wwwroot-assets/schemas/runbook-v1.json</c>) agrees with the validator on the corpus.</summary>
public sealed class SchemaTests
{
    private static readonly Lazy<JsonSchema> Schema = new(() =>
        JsonSchema.FromJsonAsync(File.ReadAllText(SchemaPath)).GetAwaiter().GetResult());

    private static string SchemaPath => Path.Combine(AppContext.BaseDirectory, "Runbooks", "Schema", "runbook-v1.json");

    [Fact]
    public void Schema_IsDraft07_WithItsIdTitlesAndNoUnknownTopLevelKeys()
    {
        var json = JObject.Parse(File.ReadAllText(SchemaPath));

        Assert.Equal("http://json-schema.org/draft-07/schema#", (string?)json["$schema"]);
        Assert.Equal("/schemas/runbook-v1.json", (string?)json["$id"]);
        Assert.False((bool?)json["additionalProperties"]);
        foreach (var property in ((JObject)json["properties"]!).Properties())
            Assert.False(string.IsNullOrEmpty((string?)property.Value["description"] ?? (string?)json.SelectToken($"definitions.{property.Name}.description")), $"{property.Name} has no description");
    }

    [Fact]
    public void Schema_ListsTheSameTypesActionsAndParameterTypesAsTheEngine()
    {
        var json = JObject.Parse(File.ReadAllText(SchemaPath));

        Assert.Equal(RunbookTypes.All, json.SelectToken("properties.type.enum")!.Values<string>());
        Assert.Equal(StepActions.All, json.SelectToken("definitions.step.properties.action.enum")!.Values<string>());
        Assert.Equal(ParameterTypes.All, json.SelectToken("definitions.parameter.properties.type.enum")!.Values<string>());
    }

    [Theory]
    [MemberData(nameof(Corpus.Valid), MemberType = typeof(Corpus))]
    public void ValidRunbook_PassesTheSchema(string file)
    {
        var errors = Schema.Value.Validate(YamlToJson.Convert(Corpus.Read(file)));

        Assert.True(errors.Count == 0, $"{file}:\n{string.Join("\n", errors.Select(e => e.ToString()))}");
    }

    [Theory]
    [MemberData(nameof(Corpus.SchemaInvalid), MemberType = typeof(Corpus))]
    public void StructurallyInvalidRunbook_FailsTheSchema(string file)
    {
        var errors = Schema.Value.Validate(YamlToJson.Convert(Corpus.Read(file)));

        Assert.NotEmpty(errors);
    }

    [Fact]
    public void EnoughInvalidRunbooksAreMarkedForTheSchema() =>
        Assert.True(Corpus.SchemaInvalid.Count >= 15, $"only {Corpus.SchemaInvalid.Count} invalid runbooks are marked `# schema: invalid`");

    [Fact]
    public void Samples_AndTemplates_PassTheSchema()
    {
        foreach (var yaml in RunbookSamples.All.Select(s => s.Yaml).Concat(RunbookTypes.All.Select(RunbookTemplates.For)))
            Assert.Empty(Schema.Value.Validate(YamlToJson.Convert(yaml)));
    }
}

/// <summary>Small documents the schema must refuse or accept, beyond the corpus.</summary>
public sealed class SchemaSnippetTests
{
    private static readonly Lazy<JsonSchema> Schema = new(() =>
        JsonSchema.FromJsonAsync(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Runbooks", "Schema", "runbook-v1.json"))).GetAwaiter().GetResult());

    private static string WithStep(string step) =>
        "apiVersion: runbooks/v1\nname: snippet\ntitle: Snippet\ntype: monitoring\nsteps:\n  - " + step + "\n";

    [Theory]
    [InlineData("{ id: a, action: wait, duration: 1s, bogus: 1 }")]
    [InlineData("{ id: a, action: wait, duration: soon }")]
    [InlineData("{ id: a, action: wait, duration: 1s, retry: { attempts: 0 } }")]
    [InlineData("{ id: a, action: wait, duration: 1s, rollback: { action: shell } }")]
    [InlineData("{ id: a, action: wait, duration: 1s, rollback: { id: b, action: wait, duration: 1s } }")]
    [InlineData("{ id: A, action: wait, duration: 1s }")]
    [InlineData("{ id: a, action: shell, run: x, url: 'https://example.com' }")]
    [InlineData("{ id: a, action: http, url: 'https://example.com', method: get }")]
    [InlineData("{ id: a, action: http, url: 'https://example.com', expect_status: 99 }")]
    [InlineData("{ id: a, action: shell, run: x, validate: {} }")]
    [InlineData("{ id: a, action: shell, run: x, outputs: { bad-name: x } }")]
    [InlineData("{ id: a, action: shell, run: '' }")]
    [InlineData("{ id: a, action: manual, instructions: look, role: Operators }")]
    [InlineData("{ id: a, action: wait, duration: 1s, role: Operator }")]
    [InlineData("{ id: a, action: shell, run: x, rollback: { action: manual, instructions: undo } }")]
    public void Schema_RefusesStructurallyWrongSteps(string step)
    {
        Assert.True(RunbookValidator.Validate(WithStep(step)).Errors.Any(), "the validator refuses it as well");
        Assert.NotEmpty(Schema.Value.Validate(YamlToJson.Convert(WithStep(step))));
    }

    [Theory]
    [InlineData("{ id: a, action: wait, duration: 1s }")]
    [InlineData("{ id: a, action: http, url: 'https://example.com', expect_status: [200, 204], body: { any: [thing, 1, true] } }")]
    [InlineData("{ id: a, action: shell, run: x, env: { A: 1, B: true, C: text }, rollback: { action: wait, duration: 1s } }")]
    [InlineData("{ id: a, action: manual, instructions: look, role: Approver, timeout: 30m, required: false, rollback: { action: shell, run: ./undo.sh } }")]
    [InlineData("{ id: a, action: lambda, function: f, payload: 42 }")]
    public void Schema_AcceptsWhatTheValidatorAccepts(string step)
    {
        Assert.True(RunbookValidator.Validate(WithStep(step)).IsValid);
        Assert.Empty(Schema.Value.Validate(YamlToJson.Convert(WithStep(step))));
    }
}
