using System.Net;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>GET /api/executions/{id}/log: the run's output as text, of the whole run or one step, on both stores.</summary>
public abstract class ExecutionLogApiTests(PortalFixture fixture)
{
    private PortalFactory Portal => fixture.Portal;

    private static string Name(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..28];

    private async Task<(Guid Id, HttpClient Operator)> FinishedRunAsync()
    {
        var name = Name("log");
        await ExecutionApiTests.PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Log
            type: maintenance
            parameters:
              token: { type: secret, required: true }
            steps:
              - id: count
                action: shell
                run: seq 1 4500; printf '\033[31mred\033[0m <script>x</script> %s\n' {{ token }}; echo "warned" >&2
              - id: after
                action: shell
                run: echo "the end"
            """, name);
        var (client, _, _) = await Portal.CreateUserAsync("operator", "Operator");
        var id = await ExecutionApiTests.StartAsync(client, name, new { token = "tok-" + Guid.NewGuid().ToString("N")[..10] });
        Assert.Equal("Succeeded", (await ExecutionApiTests.WaitForEndAsync(client, id, seconds: 60)).GetProperty("status").GetString());
        return (id, client);
    }

    [Fact]
    public async Task Log_IsTheWholeRunsOutputAsText_InOrder_OverSeveralPages_SecretsMasked()
    {
        var (id, client) = await FinishedRunAsync();

        var response = await client.GetAsync($"/api/executions/{id}/log");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("utf-8", response.Content.Headers.ContentType?.CharSet);
        Assert.Equal($"execution-{id.ToString()[..8]}.log", response.Content.Headers.ContentDisposition?.FileNameStar ?? response.Content.Headers.ContentDisposition?.FileName);
        var lines = (await response.Content.ReadAsStringAsync()).Split('\n');
        Assert.Equal("", lines[^1]); // every line ends with a newline
        var fields = lines[..^1].Select(l => l.Split('\t', 4)).ToList();
        Assert.Equal(4503, fields.Count);
        Assert.All(fields, f => Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", f[0]));
        // stdout in the order written (stderr is another pipe: where its line falls among them is the reader's race).
        var stdout = fields.Where(f => f[2] == "stdout").ToList();
        Assert.Equal(Enumerable.Range(1, 4500).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)), stdout.Take(4500).Select(f => f[3]));
        Assert.All(stdout.Take(4501), f => Assert.Equal("count", f[1]));
        Assert.Equal("\u001b[31mred\u001b[0m <script>x</script> ***", stdout[4500][3]); // as written: colours kept, secret masked
        Assert.Equal(("after", "the end"), (stdout[4501][1], stdout[4501][3]));
        Assert.Equal(["count\twarned"], fields.Where(f => f[2] == "stderr").Select(f => $"{f[1]}\t{f[3]}"));
        var times = fields.Select(f => DateTime.Parse(f[0], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(times.Order(), times);
    }

    [Fact]
    public async Task Log_OfOneStep_HasOnlyThatStepsLines_AndAnUnknownStepIs404()
    {
        var (id, client) = await FinishedRunAsync();

        var after = await client.GetStringAsync($"/api/executions/{id}/log?step=after");
        Assert.Equal(["after\tstdout\tthe end"], after.TrimEnd('\n').Split('\n').Select(l => l[(l.IndexOf('\t') + 1)..]));
        var count = (await client.GetStringAsync($"/api/executions/{id}/log?step=count")).TrimEnd('\n').Split('\n');
        Assert.Equal(4502, count.Length);

        var unknown = await client.GetAsync($"/api/executions/{id}/log?step=nope");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("There is no step 'nope'", await unknown.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Log_OfAnUnknownExecution_Is404_AndLikeTheEventsRoute_NeedsASignedInUser()
    {
        var (id, _) = await FinishedRunAsync();

        var missing = await Portal.AdminClient().GetAsync($"/api/executions/{Guid.NewGuid()}/log");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("application/problem+json", missing.Content.Headers.ContentType?.MediaType);

        var anonymous = Portal.CreateClient(token: null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync($"/api/executions/{id}/log")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync($"/api/executions/{id}/events")).StatusCode);

        var (viewer, _, _) = await Portal.CreateUserAsync("auditor", "Auditor");
        Assert.Equal(HttpStatusCode.OK, (await viewer.GetAsync($"/api/executions/{id}/log")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await viewer.GetAsync($"/api/executions/{id}/events")).StatusCode);
    }

    /// <summary>A signed-in person without a role reads nothing: no runbook, no execution, its events, output or approvals.</summary>
    [Fact]
    public async Task ASignedInUserWithoutARole_ReadsNoRunbookExecutionOutputOrApproval()
    {
        var (id, op) = await FinishedRunAsync();
        var name = (await ExecutionApiTests.WaitForEndAsync(op, id)).GetProperty("runbook").GetString();
        var (nobody, _, _) = await Portal.CreateUserAsync("nobody");
        string[] routes =
        [
            "/api/runbooks", $"/api/runbooks/{name}", $"/api/runbooks/{name}/versions/1",
            "/api/executions", $"/api/executions/{id}", $"/api/executions/{id}/events", $"/api/executions/{id}/log",
            $"/api/executions/{id}/log?step=count", "/api/approvals",
        ];
        foreach (var route in routes)
        {
            var response = await nobody.GetAsync(route);
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{route}: {(int)response.StatusCode}");
            Assert.DoesNotContain("seq", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.OK, (await op.GetAsync(route)).StatusCode);
        }
    }
}

public sealed class SqliteExecutionLogApiTests(SqliteEngineFixture fixture) : ExecutionLogApiTests(fixture), IClassFixture<SqliteEngineFixture>;

public sealed class PostgresExecutionLogApiTests(PostgresEngineFixture fixture) : ExecutionLogApiTests(fixture), IClassFixture<PostgresEngineFixture>;
