using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>
/// GET /api/executions/running on both stores: runs that have not ended, with the step they are at (and their approval),
/// and the failures of the last 24 hours with their failed step and reason; nothing that succeeded. Other tests' runs share
/// the store, so each test looks for its own executions by id.
/// </summary>
public abstract class RunningNowApiTests(PortalFixture fixture) : IDisposable
{
    private PortalFactory Portal => fixture.Portal;
    private readonly string _markers = Directory.CreateTempSubdirectory("rbp-running-").FullName;

    public void Dispose()
    {
        Directory.Delete(_markers, recursive: true);
        GC.SuppressFinalize(this);
    }

    private static string Name(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..28];

    private static async Task<JsonElement> RunningAsync(HttpClient client)
    {
        var response = await client.GetAsync("/api/executions/running");
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    private static JsonElement? Find(JsonElement running, string list, Guid id) =>
        running.GetProperty(list).EnumerateArray().Where(e => e.GetProperty("id").GetGuid() == id).Cast<JsonElement?>().FirstOrDefault();

    [Fact]
    public async Task ARunWaitingAtAManualStep_IsListedWithThatStep_AndLeavesTheListOnceItSucceeded()
    {
        var name = Name("running");
        await ExecutionApiTests.PublishAsync(Portal, ManualStepApiTests.ManualYaml(name, _markers), name);
        var (op, email, _) = await Portal.CreateUserAsync("operator", "Operator");
        var id = await ExecutionApiTests.StartAsync(op, name, new { tag = "now", token = "s3cret-value" });
        await ManualStepApiTests.WaitingAsync(op, id);

        var (viewer, _, _) = await Portal.CreateUserAsync("viewer", "Auditor");
        var running = await RunningAsync(viewer);
        var row = Find(running, "active", id) ?? throw new Xunit.Sdk.XunitException($"Execution {id} is not listed as running: {running}");
        Assert.Equal(name, row.GetProperty("runbook").GetString());
        Assert.Equal(1, row.GetProperty("version").GetInt32());
        Assert.Equal("WaitingForInput", row.GetProperty("status").GetString());
        Assert.Equal("check", row.GetProperty("currentStepId").GetString());
        Assert.Equal("Watch the dashboards", row.GetProperty("currentStepName").GetString());
        Assert.Equal(email, row.GetProperty("requestedBy").GetString());
        Assert.True(row.GetProperty("since").GetDateTime() <= running.GetProperty("at").GetDateTime());
        Assert.True(running.GetProperty("activeTotal").GetInt32() >= 1);
        Assert.Null(Find(running, "recentFailures", id));
        Assert.DoesNotContain("s3cret", running.GetRawText(), StringComparison.Ordinal); // no parameters at all

        var (colleague, _, _) = await Portal.CreateUserAsync("oncall", "Operator");
        Assert.Equal(HttpStatusCode.OK, (await colleague.PostAsJsonAsync($"/api/executions/{id}/steps/check/continue", new { })).StatusCode);
        Assert.Equal("Succeeded", (await ExecutionApiTests.WaitForEndAsync(op, id)).GetProperty("status").GetString());

        var after = await RunningAsync(viewer);
        Assert.Null(Find(after, "active", id));
        Assert.Null(Find(after, "recentFailures", id));
    }

    [Fact]
    public async Task AFailedRun_IsListedUnderRecentFailures_WithItsFailedStepAndReason_AndNotAsRunning()
    {
        var name = Name("failing");
        await ExecutionApiTests.PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Fails at migrate
            type: deployment
            steps:
              - id: prepare
                action: shell
                run: "true"
              - id: migrate
                name: Migrate the database
                action: shell
                run: echo "lock held"; exit 3
              - id: verify
                action: shell
                run: "true"
            """, name);
        var (op, _, _) = await Portal.CreateUserAsync("operator", "Operator");
        var id = await ExecutionApiTests.StartAsync(op, name, new { });
        Assert.Equal("Failed", (await ExecutionApiTests.WaitForEndAsync(op, id)).GetProperty("status").GetString());

        var running = await RunningAsync(op);
        Assert.Null(Find(running, "active", id));
        var row = Find(running, "recentFailures", id) ?? throw new Xunit.Sdk.XunitException($"Execution {id} is not listed among the failures: {running}");
        Assert.Equal("Failed", row.GetProperty("status").GetString());
        Assert.Equal("migrate", row.GetProperty("failedStepId").GetString());
        Assert.Equal("Migrate the database", row.GetProperty("failedStepName").GetString());
        Assert.Contains("3", row.GetProperty("reason").GetString());
        Assert.True(row.GetProperty("finishedAt").GetDateTime() >= running.GetProperty("failuresSince").GetDateTime());
    }

    [Fact]
    public async Task Running_NeedsASignedInUserWithARole()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, (await Portal.CreateClient(token: null).GetAsync("/api/executions/running")).StatusCode);
        var (nobody, _, _) = await Portal.CreateUserAsync("nobody");
        var refused = await nobody.GetAsync("/api/executions/running");
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.DoesNotContain("active", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var (auditor, _, _) = await Portal.CreateUserAsync("auditor", "Auditor");
        Assert.Equal(HttpStatusCode.OK, (await auditor.GetAsync("/api/executions/running")).StatusCode);
    }
}

public sealed class SqliteRunningNowApiTests(SqliteEngineFixture fixture) : RunningNowApiTests(fixture), IClassFixture<SqliteEngineFixture>;

public sealed class PostgresRunningNowApiTests(PostgresEngineFixture fixture) : RunningNowApiTests(fixture), IClassFixture<PostgresEngineFixture>;
