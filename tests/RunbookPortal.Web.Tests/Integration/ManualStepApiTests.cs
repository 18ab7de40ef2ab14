using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>
/// Manual steps through the REST API on both stores: the run is suspended (no node holds it) in WaitingForInput until
/// a person with the step's role continues or aborts it, or its timeout aborts it; it survives a restart of the portal.
/// </summary>
public abstract class ManualStepApiTests(PortalFixture fixture) : IDisposable
{
    private PortalFactory Portal => fixture.Portal;
    private readonly string _markers = Directory.CreateTempSubdirectory("rbp-manual-").FullName;

    public void Dispose()
    {
        Directory.Delete(_markers, recursive: true);
        GC.SuppressFinalize(this);
    }

    internal static string ManualYaml(string name, string markers, string? role = null, string? timeout = null, bool required = true) => $$$"""
        apiVersion: runbooks/v1
        name: {{{name}}}
        title: With a person in the loop
        type: deployment
        parameters:
          tag: { type: string, required: true, pattern: '^[a-z0-9]+$' }
          token: { type: secret }
        steps:
          - id: prepare
            action: shell
            run: touch {{{markers}}}/{{ tag }}.prepared
            rollback:
              action: shell
              run: touch {{{markers}}}/{{ tag }}.undone
          - id: check
            name: Watch the dashboards
            action: manual
            instructions: Check the error rate of {{ tag }} (token {{ token }}), then continue or abort.
            required: {{{(required ? "true" : "false")}}}
        {{{(role is null ? "" : $"    role: {role}")}}}
        {{{(timeout is null ? "" : $"    timeout: {timeout}")}}}
          - id: finish
            action: shell
            run: touch {{{markers}}}/{{ tag }}.finished
        """;

    private async Task<(string Name, HttpClient Operator)> PublishAsync(string? role = null, string? timeout = null, bool required = true)
    {
        var name = $"manual-{Guid.NewGuid():N}"[..28];
        await ExecutionApiTests.PublishAsync(Portal, ManualYaml(name, _markers, role, timeout, required), name);
        return (name, (await Portal.CreateUserAsync("operator", "Operator")).Client);
    }

    internal static Task<JsonElement> WaitingAsync(HttpClient client, Guid id) =>
        ExecutionApiTests.WaitForAsync(client, id, e => e.GetProperty("status").GetString() == "WaitingForInput");

    private bool Marker(string file) => File.Exists(Path.Combine(_markers, file));

    [Fact]
    public async Task TheRunWaits_ShowingTheInstructionsWithSecretsMasked_AndAnotherOperatorContinuesIt()
    {
        var (name, op) = await PublishAsync();
        var id = await ExecutionApiTests.StartAsync(op, name, new { tag = "go", token = "s3cr'et\"x" });
        var waiting = await WaitingAsync(op, id);
        Assert.Equal("check", waiting.GetProperty("currentStepId").GetString());
        Assert.True(Marker("go.prepared"));
        Assert.False(Marker("go.finished"));

        var events = await ExecutionApiTests.EventsAsync(op, id);
        var asked = events.Single(e => e.GetProperty("kind").GetString() == "step_waiting_for_input");
        var instructions = asked.GetProperty("data").GetProperty("instructions").GetString()!;
        Assert.Contains("Check the error rate of go", instructions);
        Assert.DoesNotContain("s3cr", instructions);
        Assert.Equal("Operator", asked.GetProperty("data").GetProperty("role").GetString());

        // A second operator continues it; a second decision finds nothing waiting.
        var (colleague, _, _) = await Portal.CreateUserAsync("oncall", "Operator");
        var continued = await colleague.PostAsJsonAsync($"/api/executions/{id}/steps/check/continue", new { comment = "error rate flat" });
        Assert.Equal(HttpStatusCode.OK, continued.StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await op.PostAsJsonAsync($"/api/executions/{id}/steps/check/abort", new { })).StatusCode);
        var done = await ExecutionApiTests.WaitForEndAsync(op, id);
        Assert.Equal("Succeeded", done.GetProperty("status").GetString());
        Assert.True(Marker("go.finished"));
        Assert.DoesNotContain("s3cr", (await op.GetStringAsync($"/api/executions/{id}/events")));
        Assert.Equal(HttpStatusCode.NotFound, (await op.PostAsJsonAsync($"/api/executions/{id}/steps/nope/continue", new { })).StatusCode);
    }

    [Fact]
    public async Task AbortingARequiredManualStep_RollsBackTheStepsBefore_AndTheRunFails()
    {
        var (name, op) = await PublishAsync();
        var id = await ExecutionApiTests.StartAsync(op, name, new { tag = "abort" });
        await WaitingAsync(op, id);
        Assert.Equal(HttpStatusCode.OK, (await op.PostAsJsonAsync($"/api/executions/{id}/steps/check/abort", new { comment = "errors are up" })).StatusCode);
        var done = await ExecutionApiTests.WaitForEndAsync(op, id);
        Assert.Equal("Failed", done.GetProperty("status").GetString());
        Assert.Contains("errors are up", done.GetProperty("reason").GetString());
        Assert.True(done.GetProperty("rolledBack").GetBoolean());
        Assert.True(Marker("abort.undone"));
        Assert.False(Marker("abort.finished"));
    }

    [Fact]
    public async Task AbortingAnOptionalManualStep_LetsTheRunGoOn()
    {
        var (name, op) = await PublishAsync(required: false);
        var id = await ExecutionApiTests.StartAsync(op, name, new { tag = "optional" });
        await WaitingAsync(op, id);
        Assert.Equal(HttpStatusCode.OK, (await op.PostAsJsonAsync($"/api/executions/{id}/steps/check/abort", new { })).StatusCode);
        var done = await ExecutionApiTests.WaitForEndAsync(op, id);
        Assert.Equal("Succeeded", done.GetProperty("status").GetString());
        Assert.True(Marker("optional.finished"));
    }

    [Fact]
    public async Task OnlyTheStepsRole_OrAnAdmin_MayDecide()
    {
        var (name, op) = await PublishAsync(role: "Approver");
        var id = await ExecutionApiTests.StartAsync(op, name, new { tag = "role" });
        await WaitingAsync(op, id);
        foreach (var role in new[] { "Operator", "Author", "Auditor" })
        {
            var (client, _, _) = await Portal.CreateUserAsync(role.ToLowerInvariant(), role);
            var refused = await client.PostAsJsonAsync($"/api/executions/{id}/steps/check/continue", new { });
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }
        var (nobody, _, _) = await Portal.CreateUserAsync("nobody");
        Assert.Equal(HttpStatusCode.Forbidden, (await nobody.PostAsJsonAsync($"/api/executions/{id}/steps/check/abort", new { })).StatusCode);
        Assert.Equal("WaitingForInput", (await op.GetFromJsonAsync<JsonElement>($"/api/executions/{id}")).GetProperty("status").GetString());

        var (approver, _, _) = await Portal.CreateUserAsync("approver", "Approver");
        Assert.Equal(HttpStatusCode.OK, (await approver.PostAsJsonAsync($"/api/executions/{id}/steps/check/continue", new { })).StatusCode);
        Assert.Equal("Succeeded", (await ExecutionApiTests.WaitForEndAsync(op, id)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task AManualStepPastItsTimeout_IsAborted_AndTheRunRollsBack()
    {
        var (name, op) = await PublishAsync(timeout: "1s");
        var id = await ExecutionApiTests.StartAsync(op, name, new { tag = "timeout" });
        var done = await ExecutionApiTests.WaitForEndAsync(op, id);
        Assert.Equal("Failed", done.GetProperty("status").GetString());
        var check = done.GetProperty("steps").EnumerateArray().Single(s => s.GetProperty("id").GetString() == "check");
        Assert.Equal("TimedOut", check.GetProperty("status").GetString());
        Assert.True(Marker("timeout.undone"));
    }

    /// <summary>Changes the row as a race would have left it (a cancel the node never saw, a deadline already past).</summary>
    private Task ChangeRowAsync(Guid id, Action<Execution> change) => Portal.WithServiceAsync<PortalDbContext, int>(async db =>
    {
        var row = await db.Executions.FirstAsync(e => e.Id == id);
        change(row);
        return await db.SaveChangesAsync();
    });

    [Fact]
    public async Task ACancelThatArrivedWhileTheStepBeforeRan_WinsOverTheDecision()
    {
        var (name, op) = await PublishAsync();
        var id = await ExecutionApiTests.StartAsync(op, name, new { tag = "lostcancel" });
        await WaitingAsync(op, id);
        // The cancel was recorded while 'prepare' ran, on a node that suspended the run before its heartbeat saw it.
        await ChangeRowAsync(id, e => { e.CancelRequested = true; e.CancelRequestedBy = "oncall@portal.test"; e.CancelRollback = true; });
        var refused = await op.PostAsJsonAsync($"/api/executions/{id}/steps/check/continue", new { });
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Contains("cancelled by oncall@portal.test", await refused.Content.ReadAsStringAsync());
        var done = await ExecutionApiTests.WaitForEndAsync(op, id);
        Assert.Equal("Cancelled", done.GetProperty("status").GetString());
        Assert.True(Marker("lostcancel.undone"));
        Assert.False(Marker("lostcancel.finished"));
    }

    [Fact]
    public async Task ADecisionAfterTheDeadline_IsRefused_AndTheStepTimesOut()
    {
        var (name, op) = await PublishAsync(timeout: "1h");
        var id = await ExecutionApiTests.StartAsync(op, name, new { tag = "late" });
        await WaitingAsync(op, id);
        await ChangeRowAsync(id, e => e.InputDeadline = DateTime.UtcNow.AddSeconds(-1));
        // Whoever is first, the worker's sweep or this decision, the step is aborted as timed out.
        Assert.Equal(HttpStatusCode.Conflict, (await op.PostAsJsonAsync($"/api/executions/{id}/steps/check/continue", new { })).StatusCode);
        var done = await ExecutionApiTests.WaitForEndAsync(op, id);
        Assert.Equal("Failed", done.GetProperty("status").GetString());
        Assert.Equal("TimedOut", done.GetProperty("steps").EnumerateArray().Single(s => s.GetProperty("id").GetString() == "check").GetProperty("status").GetString());
        Assert.False(Marker("late.finished"));
    }

    [Fact]
    public async Task CancellingAWaitingRun_EndsIt_AndAResumeAsksAgain()
    {
        var (name, op) = await PublishAsync();
        var id = await ExecutionApiTests.StartAsync(op, name, new { tag = "cancel" });
        await WaitingAsync(op, id);
        Assert.Equal(HttpStatusCode.OK, (await op.PostAsJsonAsync($"/api/executions/{id}/cancel", new { })).StatusCode);
        var cancelled = await ExecutionApiTests.WaitForEndAsync(op, id);
        Assert.Equal("Cancelled", cancelled.GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.OK, (await op.PostAsJsonAsync($"/api/executions/{id}/resume", new { })).StatusCode);
        await WaitingAsync(op, id);
        Assert.Equal(HttpStatusCode.OK, (await op.PostAsJsonAsync($"/api/executions/{id}/cancel", new { rollback = true })).StatusCode);
        var rolledBack = await ExecutionApiTests.WaitForEndAsync(op, id);
        Assert.Equal("Cancelled", rolledBack.GetProperty("status").GetString());
        Assert.True(rolledBack.GetProperty("rolledBack").GetBoolean());
        Assert.True(Marker("cancel.undone"));
        Assert.False(Marker("cancel.finished"));
    }
}

public sealed class SqliteManualStepApiTests(SqliteEngineFixture fixture) : ManualStepApiTests(fixture), IClassFixture<SqliteEngineFixture>;

public sealed class PostgresManualStepApiTests(PostgresEngineFixture fixture) : ManualStepApiTests(fixture), IClassFixture<PostgresEngineFixture>;

/// <summary>A waiting manual step is state in the database, not a waiting thread: it survives the portal's restart.</summary>
public abstract class ManualStepRestartTests
{
    protected abstract Task<TestDatabase> DatabaseAsync();

    [Fact]
    public async Task AWaitingManualStep_SurvivesARestartOfThePortal_AndIsContinuedAfterIt()
    {
        var database = await DatabaseAsync();
        await using var owner = database;
        var markers = Directory.CreateTempSubdirectory("rbp-restart-").FullName;
        var name = $"restart-{Guid.NewGuid():N}"[..28];
        Guid id;
        string token;
        await using (var before = new PortalFactory(TestDatabase.Shared(database), EngineSettings.Fast))
        {
            _ = before.Server;
            token = before.AdminToken;
            await ExecutionApiTests.PublishAsync(before, ManualStepApiTests.ManualYaml(name, markers), name);
            id = await ExecutionApiTests.StartAsync(before.AdminClient(), name, new { tag = "restart" });
            await ManualStepApiTests.WaitingAsync(before.AdminClient(), id);
        }

        var settings = new Dictionary<string, string?>(EngineSettings.Fast) { ["Bootstrap:AdminEmail"] = "", ["Bootstrap:AdminPassword"] = "", ["Bootstrap:ApiToken"] = "" };
        await using var after = new PortalFactory(TestDatabase.Shared(database), settings);
        var admin = after.CreateClient(token);
        var waiting = await admin.GetFromJsonAsync<JsonElement>($"/api/executions/{id}");
        Assert.Equal("WaitingForInput", waiting.GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsJsonAsync($"/api/executions/{id}/steps/check/continue", new { })).StatusCode);
        Assert.Equal("Succeeded", (await ExecutionApiTests.WaitForEndAsync(admin, id)).GetProperty("status").GetString());
        Assert.True(File.Exists(Path.Combine(markers, "restart.finished")));
        Directory.Delete(markers, recursive: true);
    }
}

public sealed class SqliteManualStepRestartTests : ManualStepRestartTests
{
    protected override Task<TestDatabase> DatabaseAsync() => Task.FromResult(TestDatabase.Sqlite());
}

public sealed class PostgresManualStepRestartTests : ManualStepRestartTests
{
    protected override Task<TestDatabase> DatabaseAsync() => TestDatabase.PostgresAsync();
}
