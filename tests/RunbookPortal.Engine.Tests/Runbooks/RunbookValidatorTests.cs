using System.Text;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Tests.Runbooks;

public sealed class RunbookValidatorTests
{
    private const string Header = "apiVersion: runbooks/v1\nname: test\ntitle: Test\ntype: maintenance\n";

    private static RunbookDefinition ValidDefinition(string yaml)
    {
        var result = RunbookValidator.Validate(yaml);
        Assert.True(result.IsValid, CorpusTests.Describe(result.Diagnostics));
        return result.Definition!;
    }

    [Fact]
    public void EveryActionAndField_IsReadIntoTheDefinition()
    {
        var definition = ValidDefinition(Corpus.Read(Path.Combine("valid", "every-action.yaml")));

        Assert.Equal(StepActions.All, definition.Steps.Select(s => s.Action));

        var shell = definition.Steps[0];
        Assert.Equal(("shell_step", "Shell", "Runs a script."), (shell.Id, shell.Name, shell.Description));
        Assert.Equal("./script.sh {{ target }}", shell.Shell!.Run);
        Assert.Equal("/srv/app", shell.Shell.WorkingDirectory);
        Assert.Equal(new Dictionary<string, string> { ["TARGET"] = "{{ target }}", ["RETRIES"] = "3", ["VERBOSE"] = "true" }, shell.Shell.Env);
        Assert.Equal(TimeSpan.FromMinutes(1), shell.Timeout);
        Assert.Equal(new RetryPolicy(3, TimeSpan.FromSeconds(5)), shell.Retry);
        Assert.Equal(new ValidationRule("done", @"ok \d+", 0, null, null), shell.Validate);
        Assert.Equal(@"build=(\w+)", shell.Outputs["build_id"]);
        Assert.Equal("shell_step.rollback", shell.Rollback!.Id);
        Assert.Equal("Roll back Shell", shell.Rollback.Name);
        Assert.Equal("./undo.sh {{ steps.shell_step.outputs.build_id }}", shell.Rollback.Shell!.Run);
        Assert.Empty(shell.Rollback.Outputs);
        Assert.Null(shell.Rollback.Rollback);

        var http = definition.Steps[1].Http!;
        Assert.Equal("PUT", http.Method);
        Assert.Equal("https://api.example.com/items/{{ steps.shell_step.outputs.build_id }}", http.Url);
        Assert.Equal("1", http.Headers["X-Retry"]);
        Assert.Null(http.Body);
        Assert.Equal("""{"id":"{{ steps.shell_step.outputs.build_id }}","tags":["a","b"],"nested":{"n":1.5,"flag":false,"none":null}}""", http.JsonBody!.Value.GetRawText());
        Assert.Equal([200, 201, 204], http.ExpectStatus);
        Assert.Equal(("$.items[0].state", "ready"), (definition.Steps[1].Validate!.JsonPath, definition.Steps[1].Validate!.JsonEquals));
        Assert.Equal("DELETE", definition.Steps[1].Rollback!.Http!.Method);
        Assert.Equal([204], definition.Steps[1].Rollback!.Http!.ExpectStatus);

        var ssm = definition.Steps[2].Ssm!;
        Assert.Equal("AWS-RunShellScript", ssm.Document);
        Assert.Equal(["i-0abc", "i-0def"], ssm.Targets["InstanceIds"]);
        Assert.Equal(["uptime", "df -h"], ssm.Parameters["commands"]);
        Assert.Equal(["600"], ssm.Parameters["executionTimeout"]);

        var automation = definition.Steps[3].SsmAutomation!;
        Assert.Equal(("AWS-RestartEC2Instance", "i-0abc"), (automation.Document, automation.Parameters["InstanceId"].Single()));

        var lambda = definition.Steps[4].Lambda!;
        Assert.Equal("""[1,"two",{"three":3}]""", lambda.Payload!.Value.GetRawText());
        Assert.Equal("\"raw text payload\"", definition.Steps[4].Rollback!.Lambda!.Payload!.Value.GetRawText());

        Assert.Equal(new ManualAction("Look at the dashboard.", "Approver"), definition.Steps[5].Manual);
        Assert.Equal(TimeSpan.FromMinutes(30), definition.Steps[5].Timeout);
        Assert.False(definition.Steps[5].Required);
        Assert.Equal("./undo-by-hand.sh", definition.Steps[5].Rollback!.Shell!.Run);

        Assert.Equal(new TimeSpan(1, 30, 0), definition.Steps[6].Wait!.Duration);
        var waitRollback = definition.Steps[6].Rollback!;
        Assert.Equal(("Wait before undoing", TimeSpan.FromMilliseconds(500)), (waitRollback.Name, waitRollback.Wait!.Duration));
        Assert.Equal(new RetryPolicy(1, TimeSpan.Zero), waitRollback.Retry);
    }

    [Fact]
    public void Parameters_KeepDeclarationOrder_AndNormalizeDefaults()
    {
        var definition = ValidDefinition(Corpus.Read(Path.Combine("valid", "parameters-all-types.yaml")));

        Assert.Equal(["plain", "text_with_pattern", "choice", "count", "quoted_count", "choice_of_ints", "enabled", "also_enabled", "password", "_private"],
            definition.Parameters.Select(p => p.Name));
        var plain = definition.FindParameter("plain")!;
        Assert.Equal(new ParameterDefinition("plain", ParameterType.String, false, null, null, null, null, null, null), plain);
        Assert.Equal(("-2", -5L, 5L), (definition.FindParameter("count")!.Default, definition.FindParameter("count")!.Min, definition.FindParameter("count")!.Max));
        Assert.Equal("3", definition.FindParameter("quoted_count")!.Default);
        Assert.Equal("true", definition.FindParameter("enabled")!.Default);
        Assert.Equal("false", definition.FindParameter("also_enabled")!.Default);
        Assert.Equal(["1", "2", "4", "8"], definition.FindParameter("choice_of_ints")!.Allowed!);
        var password = definition.FindParameter("password")!;
        Assert.Equal((ParameterType.Secret, true, "secret"), (password.Type, password.Required, password.TypeName));
        Assert.Equal("Letters, a dash, two digits", definition.FindParameter("text_with_pattern")!.Description);
    }

    [Fact]
    public void ApprovalAndConcurrency_TakeTheirDefaults()
    {
        var definition = ValidDefinition(Header + "parameters: { env: { type: string } }\napproval: {}\nconcurrency: { key: \"{{ env }}\" }\nsteps:\n  - { id: a, action: wait, duration: 1s }\n");

        Assert.Equal(new ApprovalPolicy(1, "Approver", definition.Approval!.When, null), definition.Approval);
        Assert.Empty(definition.Approval.When);
        Assert.Equal(new ConcurrencyPolicy("{{ env }}", 1), definition.Concurrency);
        Assert.Equal("a", definition.Steps[0].Name);
        Assert.Empty(definition.Tags);
        Assert.Empty(definition.Prerequisites);
        Assert.Null(definition.Description);
    }

    [Fact]
    public void ConcurrencyKey_LongerThanTheStoredKeyCanBe_IsAnErrorAtTheKey_EvenBeforeValuesAreFilledIn()
    {
        var longText = new string('k', ConcurrencyPolicy.MaxKeyLength + 1);
        var plain = Assert.Single(RunbookValidator.Validate(Header + $"concurrency: {{ key: {longText} }}\nsteps:\n  - {{ id: a, action: wait, duration: 1s }}\n").Diagnostics);
        Assert.Equal((5, 21, "concurrency.key", DiagnosticSeverity.Error), (plain.Line, plain.Column, plain.Path, plain.Severity));
        Assert.Equal($"the concurrency key is {ConcurrencyPolicy.MaxKeyLength + 1} characters long; a key may have at most {ConcurrencyPolicy.MaxKeyLength}", plain.Message);

        var templated = Assert.Single(RunbookValidator.Validate(Header + $"parameters: {{ env: {{ type: string }} }}\nconcurrency: {{ key: \"{longText}-{{{{ env }}}}\" }}\nsteps:\n  - {{ id: a, action: wait, duration: 1s }}\n").Diagnostics);
        Assert.Equal("concurrency.key", templated.Path);
        Assert.Contains($"is {ConcurrencyPolicy.MaxKeyLength + 2} characters long before any value is filled in", templated.Message, StringComparison.Ordinal);

        // At the limit, and a short text around a template (whose value is checked when the run starts), are fine.
        ValidDefinition(Header + $"concurrency: {{ key: {longText[1..]} }}\nsteps:\n  - {{ id: a, action: wait, duration: 1s }}\n");
        Assert.Equal("deploy-staging", ValidDefinition(Header + "parameters: { env: { type: string } }\nconcurrency: { key: \"deploy-{{ env }}\" }\nsteps:\n  - { id: a, action: wait, duration: 1s }\n")
            .Concurrency!.Render(new Dictionary<string, string> { ["env"] = "staging" }));
    }

    [Fact]
    public void Approval_When_KeepsTypedValuesAsText()
    {
        var definition = ValidDefinition(Corpus.Read(Path.Combine("valid", "approval-and-concurrency.yaml")));

        Assert.Equal(new Dictionary<string, string> { ["region"] = "us-east-1", ["replicas"] = "3", ["destructive"] = "true" }, definition.Approval!.When);
        Assert.Equal(TimeSpan.FromHours(36), definition.Approval.ExpiresAfter);
        Assert.Equal(("Admin", 3), (definition.Approval.ApproverRole, definition.Approval.RequiredApprovals));
    }

    [Fact]
    public void ManualStep_WithoutRole_IsForOperators()
    {
        var definition = ValidDefinition(Header + "steps:\n  - { id: a, action: manual, instructions: Look. }\n");

        Assert.Equal(new ManualAction("Look.", ManualAction.DefaultRole), definition.Steps[0].Manual);
        Assert.Equal("Operator", ManualAction.DefaultRole);
        Assert.Null(definition.Steps[0].Timeout);
    }

    [Theory]
    [InlineData("Admin")]
    [InlineData("Author")]
    [InlineData("Operator")]
    [InlineData("Approver")]
    [InlineData("Auditor")]
    public void ManualStep_Role_IsAnyOfThePortalsRoles(string role)
    {
        var definition = ValidDefinition(Header + $"steps:\n  - {{ id: a, action: manual, instructions: Look., role: {role}, timeout: 30m }}\n");

        Assert.Equal(role, definition.Steps[0].Manual!.Role);
        Assert.Equal(TimeSpan.FromMinutes(30), definition.Steps[0].Timeout);
    }

    [Theory]
    [InlineData("approver", "; did you mean `Approver`?")]
    [InlineData("Oprator", "; did you mean `Operator`?")]
    [InlineData("OnCall", "")]
    public void ManualStep_UnknownRole_IsRefused_WithDidYouMean(string role, string hint)
    {
        var result = RunbookValidator.Validate(Header + $"steps:\n  - {{ id: a, action: manual, instructions: Look., role: {role} }}\n");

        Assert.False(result.IsValid);
        var diagnostic = Assert.Single(result.Diagnostics);
        Assert.Equal(("steps[0].role", 6, 57), (diagnostic.Path, diagnostic.Line, diagnostic.Column));
        Assert.Equal($"`role` must be one of the portal's roles (Admin, Author, Operator, Approver, Auditor), got '{role}'{hint}", diagnostic.Message);
    }

    [Fact]
    public void ManualStep_AsARollback_IsRefused()
    {
        var result = RunbookValidator.Validate(Header + "steps:\n  - { id: a, action: shell, run: ./x.sh, rollback: { action: manual, instructions: Undo by hand. } }\n");

        Assert.False(result.IsValid);
        var diagnostic = Assert.Single(result.Diagnostics);
        Assert.Equal("steps[0].rollback.action", diagnostic.Path);
        Assert.StartsWith("a rollback cannot be a manual step: a rollback runs unattended", diagnostic.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ManualStep_MayHaveARollback()
    {
        var definition = ValidDefinition(Header + "steps:\n  - { id: a, action: manual, instructions: Look., rollback: { action: shell, run: ./undo.sh } }\n");

        Assert.Equal("./undo.sh", definition.Steps[0].Rollback!.Shell!.Run);
    }

    [Fact]
    public void Warnings_DoNotMakeARunbookInvalid()
    {
        var result = RunbookValidator.Validate(Header + "parameters: { token: { type: secret, default: abc } }\nsteps:\n  - { id: a, action: shell, run: \"echo {{ token\" }\n");

        Assert.True(result.IsValid);
        Assert.NotNull(result.Definition);
        Assert.Equal(2, result.Warnings.Count());
        Assert.Empty(result.Errors);
    }

    [Fact]
    public void Diagnostics_AreOrderedByPosition()
    {
        var result = RunbookValidator.Validate(Corpus.Read(Path.Combine("invalid", "wrong-types.yaml")));

        Assert.Equal(result.Diagnostics.OrderBy(d => d.Line).ThenBy(d => d.Column), result.Diagnostics);
    }

    [Fact]
    public void FiveHundredSteps_AreAllowed_FiveHundredAndOneAreNot()
    {
        string WithSteps(int count) => Header + "steps:\n" + string.Concat(Enumerable.Range(0, count).Select(i => $"  - {{ id: s{i}, action: wait, duration: 1s }}\n"));

        Assert.Equal(RunbookLimits.MaxSteps, ValidDefinition(WithSteps(RunbookLimits.MaxSteps)).Steps.Count);
        var diagnostic = Assert.Single(RunbookValidator.Validate(WithSteps(RunbookLimits.MaxSteps + 1)).Diagnostics);
        Assert.Equal(("steps", 6, 3), (diagnostic.Path, diagnostic.Line, diagnostic.Column));
    }

    [Fact]
    public void DocumentSize_IsMeasuredInUtf8Bytes()
    {
        var filler = RunbookLimits.MaxDocumentBytes - Header.Length - 200;
        var asciiYaml = Header + "description: " + new string('a', filler) + "\nsteps:\n  - { id: a, action: wait, duration: 1s }\n";
        Assert.True(RunbookValidator.Validate(asciiYaml).IsValid);

        // The same number of characters, but each takes two bytes in UTF-8.
        var wideYaml = Header + "description: " + new string('é', filler) + "\nsteps:\n  - { id: a, action: wait, duration: 1s }\n";
        var diagnostic = Assert.Single(RunbookValidator.Validate(wideYaml).Diagnostics);
        Assert.Equal((1, 1, ""), (diagnostic.Line, diagnostic.Column, diagnostic.Path));
        Assert.Contains("at most 1 MiB", diagnostic.Message, StringComparison.Ordinal);
        Assert.True(Encoding.UTF8.GetByteCount(wideYaml) > RunbookLimits.MaxDocumentBytes);
    }

    [Fact]
    public void Null_IsAnEmptyDocument()
    {
        var result = RunbookValidator.Validate(null!);

        var diagnostic = Assert.Single(result.Diagnostics);
        Assert.Equal("the document is empty; start with `apiVersion: runbooks/v1`, then `name`, `title`, `type` and `steps`", diagnostic.Message);
    }

    [Fact]
    public void CrLfLineEndings_GiveTheSamePositions()
    {
        var text = Corpus.Read(Path.Combine("invalid", "undeclared-parameters.yaml")).Replace("\r\n", "\n", StringComparison.Ordinal);

        var lf = RunbookValidator.Validate(text).Diagnostics;
        var crlf = RunbookValidator.Validate(text.Replace("\n", "\r\n", StringComparison.Ordinal)).Diagnostics;

        Assert.Equal(lf, crlf);
    }

    [Fact]
    public void Templates_InBlockScalars_ArePointedAtExactly()
    {
        var yaml = Header + "steps:\n  - id: a\n    action: shell\n    run: |\n      echo one\n      echo {{ nope }}\n";

        var diagnostic = Assert.Single(RunbookValidator.Validate(yaml).Diagnostics);

        Assert.Equal((10, 12, "steps[0].run"), (diagnostic.Line, diagnostic.Column, diagnostic.Path));
    }

    [Fact]
    public void Templates_WithEscapesInDoubleQuotes_FallBackToTheScalarStart()
    {
        // "\x7B\x7B nope }}" is "{{ nope }}" once unescaped, but is not written that way in the source.
        var yaml = Header + "steps:\n  - { id: a, action: shell, run: \"\\x7B\\x7B nope }}\" }\n";

        var diagnostic = Assert.Single(RunbookValidator.Validate(yaml).Diagnostics);

        Assert.Equal((6, 34), (diagnostic.Line, diagnostic.Column));
        Assert.Contains("names no declared parameter", diagnostic.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("1.5", "is not a whole number")]
    [InlineData("11", "is above the maximum 10")]
    [InlineData("0", "is below the minimum 1")]
    [InlineData("3", "is not one of the allowed values (2, 4)")]
    public void CheckValue_ExplainsWhyAnIntDoesNotFit(string value, string problem)
    {
        var parameter = new ParameterDefinition("n", ParameterType.Int, true, null, ["2", "4"], null, 1, 10, null);

        Assert.Equal(problem, parameter.CheckValue(value));
        Assert.Null(parameter.CheckValue("4"));
    }

    [Theory]
    [InlineData(ParameterType.String)]
    [InlineData(ParameterType.Secret)]
    public void CheckValue_RefusesANulCharacter_WhichNoStepCanBeGiven(ParameterType type)
    {
        var parameter = new ParameterDefinition("p", type, true, null, null, null, null, null, null);

        Assert.Equal("contains a NUL character, which no step can be given", parameter.CheckValue("a\0b"));
        Assert.Null(parameter.CheckValue("a b"));
    }

    [Fact]
    public void CheckValue_NeverRepeatsASecretsValue()
    {
        var secret = new ParameterDefinition("token", ParameterType.Secret, true, null, ["right-one"], null, null, null, null);

        Assert.Equal("is not one of the allowed values", secret.CheckValue("wrong-one"));
        Assert.Null(secret.CheckValue("right-one"));
    }

    [Fact]
    public void CheckValue_StopsACatastrophicPattern()
    {
        var parameter = new ParameterDefinition("p", ParameterType.String, true, null, null, "^(a+)+$", null, null, null);

        var problem = parameter.CheckValue(new string('a', 5000) + "!");

        Assert.StartsWith("could not be checked", problem, StringComparison.Ordinal);
    }
}
