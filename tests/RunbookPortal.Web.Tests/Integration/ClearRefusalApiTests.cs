using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Runbooks;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Executions;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>
/// What a new user runs into, on both stores: each mistake is a 4xx problem with a sentence that says what to do —
/// never a 500 — and a run that only an optional step failed in resumes past that step.
/// </summary>
public abstract class ClearRefusalApiTests(PortalFixture fixture) : IDisposable
{
    private PortalFactory Portal => fixture.Portal;
    private HttpClient Admin => Portal.AdminClient();
    private readonly string _flags = Directory.CreateTempSubdirectory("rbp-refusal-").FullName;

    public void Dispose()
    {
        Directory.Delete(_flags, recursive: true);
        GC.SuppressFinalize(this);
    }

    private static string Name(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..28];

    private static async Task<JsonElement> ProblemAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"{response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(body).RootElement;
    }

    [Fact]
    public async Task AConcurrencyKeyThatRendersLongerThanItsColumn_Is400AtTheStart_NamingTheParameter()
    {
        var name = Name("longkey");
        await ExecutionApiTests.PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Keyed by a free text
            type: deployment
            parameters:
              environment: { type: string, required: true }
            concurrency: { key: "deploy-{{ environment }}", limit: 1 }
            steps:
              - id: work
                action: shell
                run: echo ran
            """, name);

        var tooLong = new string('e', ConcurrencyPolicy.MaxKeyLength);
        var problem = await ProblemAsync(await Admin.PostAsJsonAsync($"/api/runbooks/{name}/executions", new { parameters = new { environment = tooLong } }), HttpStatusCode.BadRequest);
        Assert.Equal($"The concurrency key of this runbook ('deploy-{{{{ environment }}}}') comes to {ConcurrencyPolicy.MaxKeyLength + 7} characters with these values; "
                     + $"a key may have at most {ConcurrencyPolicy.MaxKeyLength}. Give environment a shorter value.", problem.GetProperty("detail").GetString());
        Assert.Equal(0, (await Admin.GetFromJsonAsync<JsonElement>($"/api/executions?runbook={name}")).GetProperty("total").GetInt32());

        var fits = await ExecutionApiTests.StartAsync(Admin, name, new { environment = tooLong[7..] });
        Assert.Equal("Succeeded", (await ExecutionApiTests.WaitForEndAsync(Admin, fits)).GetProperty("status").GetString());

        // Written out in the YAML, the validator says it at the key.
        var validated = await Admin.PostAsync("/api/runbooks/validate", new StringContent(
            $"apiVersion: runbooks/v1\nname: {name}\ntitle: T\ntype: deployment\nconcurrency: {{ key: {tooLong}-x }}\nsteps:\n  - {{ id: a, action: wait, duration: 1s }}\n",
            System.Text.Encoding.UTF8, "application/yaml"));
        var diagnostic = Assert.Single((await validated.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("diagnostics").EnumerateArray());
        Assert.Equal(("concurrency.key", 5), (diagnostic.GetProperty("path").GetString(), diagnostic.GetProperty("line").GetInt32()));
        Assert.Contains($"a key may have at most {ConcurrencyPolicy.MaxKeyLength}", diagnostic.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/api/runbooks")]
    [InlineData("/api/executions")]
    public async Task PagesOutsideTheListsRange_Are400_NamingTheRule(string list)
    {
        var cases = new (string Query, string Field, string Says)[]
        {
            ("page=99999999999&pageSize=200", "page", "page 99999999999 × pageSize 200 is past the last item a list can reach (a page may start at item 2147483647 at most); ask for an earlier page."),
            ("page=2147483647&pageSize=25", "page", "page 2147483647 × pageSize 25 is past the last item a list can reach"),
            ("page=10737419&pageSize=200", "page", "page 10737419 × pageSize 200 is past the last item a list can reach"),
            ("page=-1", "page", "page counts from 0 (the first page); it was -1."),
            ("pageSize=0", "pageSize", "pageSize must be between 1 and 200; it was 0."),
            ("pageSize=-5", "pageSize", "pageSize must be between 1 and 200; it was -5."),
            ("pageSize=201", "pageSize", "pageSize must be between 1 and 200; it was 201."),
            ("page=1&pageSize=9223372036854775807", "pageSize", "pageSize must be between 1 and 200; it was 9223372036854775807."),
        };
        foreach (var (query, field, says) in cases)
        {
            var problem = await ProblemAsync(await Admin.GetAsync($"{list}?{query}"), HttpStatusCode.BadRequest);
            var message = problem.GetProperty("errors").GetProperty(field)[0].GetString()!;
            Assert.True(message.StartsWith(says, StringComparison.Ordinal), $"{query}: {message}");
            Assert.Equal(message, problem.GetProperty("detail").GetString());
        }

        // Not a number at all (or beyond any): ASP.NET Core refuses it before the route runs, still with a sentence.
        foreach (var query in new[] { "page=abc", "page=99999999999999999999" })
        {
            var problem = await ProblemAsync(await Admin.GetAsync($"{list}?{query}"), HttpStatusCode.BadRequest);
            Assert.StartsWith("A value in the address, the query or a header could not be read as what it must be", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        // The edges of the rule are fine.
        foreach (var query in new[] { "page=0&pageSize=200", "page=10737418&pageSize=200", "pageSize=1", "" })
            Assert.Equal(HttpStatusCode.OK, (await Admin.GetAsync($"{list}?{query}")).StatusCode);
    }

    private async Task<string> PublishOptionalThenRequiredAsync()
    {
        var name = Name("optional");
        await ExecutionApiTests.PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: An optional step fails, then a required one
            type: maintenance
            parameters:
              flag: { type: string, required: true }
            steps:
              - id: prepare
                action: shell
                run: echo prepared
              - id: nice_to_have
                action: shell
                run: echo "no luck"; exit 3
                required: false
              - id: needs_flag
                action: shell
                run: test -f "$RBP_PARAM_FLAG"
              - id: finish
                action: shell
                run: echo finished
            """, name);
        return name;
    }

    private async Task<(Guid Id, string Flag)> FailedAtTheRequiredStepAsync(string name)
    {
        var flag = Path.Combine(_flags, Guid.NewGuid().ToString("N"));
        var id = await ExecutionApiTests.StartAsync(Admin, name, new { flag });
        var failed = await ExecutionApiTests.WaitForEndAsync(Admin, id);
        Assert.Equal(("Failed", "needs_flag", false), (failed.GetProperty("status").GetString(), failed.GetProperty("failedStepId").GetString(), failed.GetProperty("rolledBack").GetBoolean()));
        var steps = failed.GetProperty("steps").EnumerateArray().ToDictionary(s => s.GetProperty("id").GetString()!, s => s.GetProperty("status").GetString());
        Assert.Equal("Failed", steps["nice_to_have"]);
        return (id, flag);
    }

    [Fact]
    public async Task AFailedOptionalStep_DoesNotBlockAResumePastIt_FromTheFailedStepOrANamedOne()
    {
        var name = await PublishOptionalThenRequiredAsync();

        // The default: from the failed required step — which the execution page's Resume… dialog also offers and proposes.
        var (byDefault, flag) = await FailedAtTheRequiredStepAsync(name);
        var (choices, proposed) = await Portal.WithServiceAsync<ExecutionService, (IReadOnlyList<string> Steps, string? Proposed)>(s => s.ResumeChoicesAsync(byDefault));
        Assert.Equal(["prepare", "nice_to_have", "needs_flag"], choices);
        Assert.Equal("needs_flag", proposed);
        await File.WriteAllTextAsync(flag, "");
        var resumed = await Admin.PostAsJsonAsync($"/api/executions/{byDefault}/resume", new { });
        Assert.True(resumed.StatusCode == HttpStatusCode.OK, await resumed.Content.ReadAsStringAsync());
        var done = await ExecutionApiTests.WaitForAsync(Admin, byDefault, e => e.GetProperty("status").GetString() is "Succeeded" or "Failed");
        Assert.Equal("Succeeded", done.GetProperty("status").GetString());
        var steps = done.GetProperty("steps").EnumerateArray().ToDictionary(s => s.GetProperty("id").GetString()!, s => (Status: s.GetProperty("status").GetString(), Attempts: s.GetProperty("attempts").GetInt32()));
        Assert.Equal(("Succeeded", 1), steps["prepare"]); // not run again
        Assert.Equal(("Failed", 1), steps["nice_to_have"]); // not run again either: the run got past it
        Assert.Equal("Succeeded", steps["finish"].Status);
        var resumedAt = (await ExecutionApiTests.EventsAsync(Admin, byDefault)).Single(e => e.GetProperty("kind").GetString() == "execution_resumed");
        Assert.Equal("needs_flag", resumedAt.GetProperty("stepId").GetString());

        // Named explicitly, past the optional step; a step past the failed required one is still refused, naming it.
        var (named, namedFlag) = await FailedAtTheRequiredStepAsync(name);
        var pastRequired = await ProblemAsync(await Admin.PostAsJsonAsync($"/api/executions/{named}/resume", new { fromStep = "finish" }), HttpStatusCode.Conflict);
        Assert.Equal("Steps before 'finish' did not succeed (needs_flag); resume from the first of them.", pastRequired.GetProperty("detail").GetString());
        await File.WriteAllTextAsync(namedFlag, "");
        Assert.Equal(HttpStatusCode.OK, (await Admin.PostAsJsonAsync($"/api/executions/{named}/resume", new { fromStep = "needs_flag" })).StatusCode);
        Assert.Equal("Succeeded", (await ExecutionApiTests.WaitForAsync(Admin, named, e => e.GetProperty("status").GetString() is "Succeeded" or "Failed")).GetProperty("status").GetString());
    }

    [Fact]
    public async Task CancellingARunThatIsNotRunning_Is409_SayingWhyAndWhatToDoInstead()
    {
        var name = Name("notrunning");
        await ExecutionApiTests.PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Ends on its own
            type: maintenance
            parameters:
              outcome: { type: int, required: true }
            steps:
              - id: work
                action: shell
                run: exit {{ outcome }}
            """, name);
        var succeeded = await ExecutionApiTests.StartAsync(Admin, name, new { outcome = 0 });
        var failed = await ExecutionApiTests.StartAsync(Admin, name, new { outcome = 1 });
        await ExecutionApiTests.WaitForEndAsync(Admin, succeeded);
        await ExecutionApiTests.WaitForEndAsync(Admin, failed);

        // A run whose node died: what the lease sweep leaves (TakeoverTests shows the real one).
        var interrupted = await Portal.WithServiceAsync<PortalDbContext, Guid>(async db =>
        {
            var row = await db.Executions.AsNoTracking().Include(e => e.Steps).SingleAsync(e => e.Id == failed);
            row.Id = Guid.NewGuid();
            row.Status = ExecutionStatus.Interrupted;
            row.Reason = "Node node-a stopped renewing its lease.";
            foreach (var step in row.Steps)
                step.ExecutionId = row.Id;
            db.Executions.Add(row);
            await db.SaveChangesAsync();
            return row.Id;
        });

        var cases = new (Guid Id, string Says)[]
        {
            (interrupted, "The execution is not running, so there is nothing to cancel: it was interrupted at step 'work' before it finished (the node running it stopped). Resume it or roll it back instead."),
            (failed, "The execution is not running, so there is nothing to cancel: it already failed at step 'work'. Resume it or roll it back instead."),
            (succeeded, "The execution is not running, so there is nothing to cancel: it already succeeded."),
        };
        foreach (var (id, says) in cases)
        {
            var problem = await ProblemAsync(await Admin.PostAsJsonAsync($"/api/executions/{id}/cancel", new { }), HttpStatusCode.Conflict);
            Assert.Equal(says, problem.GetProperty("detail").GetString());
        }
        Assert.Equal("Interrupted", (await Admin.GetFromJsonAsync<JsonElement>($"/api/executions/{interrupted}")).GetProperty("status").GetString());

        // Cancelled, then cancelled again.
        var rolledBack = await Admin.PostAsJsonAsync($"/api/executions/{interrupted}/rollback", new { });
        Assert.Equal(HttpStatusCode.OK, rolledBack.StatusCode);
        await ExecutionApiTests.WaitForAsync(Admin, interrupted, e => e.GetProperty("status").GetString() is "Cancelled" or "Failed");
        var again = await ProblemAsync(await Admin.PostAsJsonAsync($"/api/executions/{interrupted}/cancel", new { }), HttpStatusCode.Conflict);
        Assert.Equal("The execution is not running, so there is nothing to cancel: it was already cancelled.", again.GetProperty("detail").GetString());
    }
}

public sealed class SqliteClearRefusalApiTests(SqliteEngineFixture fixture) : ClearRefusalApiTests(fixture), IClassFixture<SqliteEngineFixture>;

public sealed class PostgresClearRefusalApiTests(PostgresEngineFixture fixture) : ClearRefusalApiTests(fixture), IClassFixture<PostgresEngineFixture>;
