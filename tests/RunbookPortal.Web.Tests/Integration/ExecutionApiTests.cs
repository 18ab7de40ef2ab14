using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Executions;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>Executions through the REST API, run by the real worker with real bash processes, on both stores.</summary>
public abstract class ExecutionApiTests(PortalFixture fixture)
{
    private PortalFactory Portal => fixture.Portal;
    private HttpClient Admin => Portal.AdminClient();

    internal static readonly string[] Terminal = ["Succeeded", "Failed", "Cancelled", "Interrupted", "Rejected", "Expired"];

    /// <summary>Creates and publishes a runbook (an author writes it, the admin approves it).</summary>
    internal static async Task PublishAsync(PortalFactory portal, string yaml, string name)
    {
        var admin = portal.AdminClient();
        var (author, _, _) = await portal.CreateUserAsync("author", "Author");
        var created = await author.PostAsync("/api/runbooks", new StringContent(yaml, Encoding.UTF8, "application/yaml"));
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, (await author.PostAsJsonAsync($"/api/runbooks/{name}/versions/1/submit", new { })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsJsonAsync($"/api/runbooks/{name}/versions/1/approve", new { })).StatusCode);
    }

    internal static async Task<Guid> StartAsync(HttpClient client, string name, object parameters, bool dryRun = false)
    {
        var response = await client.PostAsJsonAsync($"/api/runbooks/{name}/executions", new { parameters, dryRun });
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
    }

    /// <summary>
    /// A row of <paramref name="template"/>'s runbook version, put straight into the database, in
    /// <paramref name="status"/>; a Running one is held by another node, whose lease lasts for minutes.
    /// </summary>
    private static Execution RowLike(Execution template, ExecutionStatus status, DateTime queuedAt, string? concurrencyKey = null)
    {
        var held = status == ExecutionStatus.Running;
        return new Execution
        {
            Id = Guid.NewGuid(),
            RunbookVersionId = template.RunbookVersionId,
            RunbookName = template.RunbookName,
            Version = template.Version,
            Status = status,
            RequestedBy = template.RequestedBy,
            RequestedAt = queuedAt,
            QueuedAt = queuedAt,
            StartedAt = held ? queuedAt : null,
            ParametersJson = template.ParametersJson,
            ConcurrencyKey = concurrencyKey,
            ConcurrencyLimit = concurrencyKey is null ? 0 : 1,
            LeaseOwner = held ? "another-node#claim" : null,
            LeaseExpiresAt = held ? DateTime.UtcNow.AddMinutes(10) : null,
        };
    }

    /// <summary>Polls the execution until <paramref name="done"/> holds (the worker runs on its own; this waits on its state).</summary>
    internal static async Task<JsonElement> WaitForAsync(HttpClient client, Guid id, Func<JsonElement, bool> done, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var execution = await client.GetFromJsonAsync<JsonElement>($"/api/executions/{id}");
            if (done(execution))
                return execution;
            if (DateTime.UtcNow > deadline)
                throw new Xunit.Sdk.XunitException($"Execution {id} did not reach the expected state in {seconds} s: {execution}");
            await Task.Delay(50);
        }
    }

    internal static Task<JsonElement> WaitForEndAsync(HttpClient client, Guid id, int seconds = 30) =>
        WaitForAsync(client, id, e => Terminal.Contains(e.GetProperty("status").GetString()), seconds);

    internal static async Task<List<JsonElement>> EventsAsync(HttpClient client, Guid id, long after = 0) =>
        (await client.GetFromJsonAsync<JsonElement>($"/api/executions/{id}/events?after={after}")).EnumerateArray().ToList();

    private static string Name(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..28];

    [Fact]
    public async Task ShellRunbook_RunsToSuccess_PassingOutputsOn_WithGapFreeOrderedEvents()
    {
        var name = Name("ok");
        await PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Two steps
            type: maintenance
            parameters:
              greeting: { type: string, required: true }
            steps:
              - id: first
                name: Say hello
                action: shell
                run: echo "version=1.2.3"; echo {{ greeting }}
                outputs: { version: 'version=(\S+)' }
              - id: second
                name: Use the output
                action: shell
                run: echo "got {{ steps.first.outputs.version }}"
                validate: { output_contains: "got 1.2.3" }
            """, name);

        var id = await StartAsync(Admin, name, new { greeting = "hi there" });
        var done = await WaitForEndAsync(Admin, id);

        Assert.Equal("Succeeded", done.GetProperty("status").GetString());
        Assert.All(done.GetProperty("steps").EnumerateArray(), s => Assert.Equal("Succeeded", s.GetProperty("status").GetString()));
        var events = await EventsAsync(Admin, id);
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.GetProperty("seq").GetInt64()));
        Assert.Contains(events, e => e.GetProperty("kind").GetString() == "step_output" && e.GetProperty("data").GetRawText().Contains("hi there"));
        Assert.Equal("execution_finished", events[^1].GetProperty("kind").GetString());

        var tail = await EventsAsync(Admin, id, after: 3);
        Assert.Equal(events.Skip(3).Select(e => e.GetProperty("seq").GetInt64()), tail.Select(e => e.GetProperty("seq").GetInt64()));
    }

    [Fact]
    public async Task AStepThatPrintsFast_HasEveryLineAsAnEvent_InOrder_BeforeItsEnd()
    {
        var name = Name("loud");
        await PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Loud step
            type: maintenance
            steps:
              - id: loud
                action: shell
                run: for i in $(seq 1 3000); do echo "out $i"; echo "err $i" >&2; done
              - id: after
                action: shell
                run: echo "after"
            """, name);

        var id = await StartAsync(Admin, name, new { });
        var done = await WaitForEndAsync(Admin, id, seconds: 120);

        Assert.Equal("Succeeded", done.GetProperty("status").GetString());
        var events = new List<JsonElement>();
        while (events.Count == 0 || events[^1].GetProperty("kind").GetString() != "execution_finished")
            events.AddRange(await EventsAsync(Admin, id, after: events.Count == 0 ? 0 : events[^1].GetProperty("seq").GetInt64()));
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.GetProperty("seq").GetInt64()));
        string[] Lines(string stream) => [.. events
            .Where(e => e.GetProperty("kind").GetString() == "step_output" && e.GetProperty("stepId").GetString() == "loud" && e.GetProperty("data").GetProperty("stream").GetString() == stream)
            .Select(e => e.GetProperty("data").GetProperty("text").GetString()!)];
        Assert.Equal(Enumerable.Range(1, 3000).Select(i => $"out {i}"), Lines("stdout"));
        Assert.Equal(Enumerable.Range(1, 3000).Select(i => $"err {i}"), Lines("stderr"));
        var kinds = events.Select(e => (Kind: e.GetProperty("kind").GetString(), Step: e.GetProperty("stepId").GetString())).ToList();
        Assert.True(kinds.FindLastIndex(k => k is ("step_output", "loud")) < kinds.IndexOf(("step_succeeded", "loud")),
            "an output line of 'loud' was recorded after the step's end");
    }

    [Fact]
    public async Task NewlinesAndLeadingDashes_OnlyWhereTheRunbookAllowsThem_AndThenStillInert()
    {
        var name = Name("flags");
        var marker = Path.Combine(Path.GetTempPath(), $"rbp-pwned-{Guid.NewGuid():N}");
        await PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Free text
            type: maintenance
            parameters:
              note: { type: string, required: true, multiline: true, allow_leading_dash: true }
            steps:
              - id: echo
                action: shell
                run: printf '[%s]\n' {{ note }}
            """, name);
        foreach (var value in new[] { $"line one\ntouch {marker}", "--version" })
        {
            var id = await StartAsync(Admin, name, new { note = value });
            Assert.Equal("Succeeded", (await WaitForEndAsync(Admin, id)).GetProperty("status").GetString());
            var output = string.Join("\n", (await EventsAsync(Admin, id)).Where(e => e.GetProperty("kind").GetString() == "step_output")
                .Select(e => e.GetProperty("data").GetProperty("text").GetString()));
            Assert.Contains("[" + value.Split('\n')[0], output); // one argument, printed back
            Assert.False(File.Exists(marker), $"the value {value} ran as code");
        }
        var tab = await Admin.PostAsJsonAsync($"/api/runbooks/{name}/executions", new { parameters = new { note = "a\tb" } });
        Assert.Equal(HttpStatusCode.BadRequest, tab.StatusCode); // multiline allows newlines, never other control characters
    }

    [Fact]
    public async Task ParameterValues_NeverBecomeCode_AndSecretsNeverLeak()
    {
        var name = Name("inject");
        var marker = Path.Combine(Path.GetTempPath(), $"rbp-pwned-{Guid.NewGuid():N}");
        var secret = $"s3cr3t-{Guid.NewGuid():N}";
        await PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Injection
            type: maintenance
            parameters:
              target: { type: string, required: true }
              password: { type: secret, required: true }
            steps:
              - id: echo
                name: Echo the values
                action: shell
                run: printf '[%s]\n' {{ target }}; echo "pw={{ password }}"
            """, name);

        // A newline or a leading dash is refused as a value of a plain string (400 naming the field), before anything runs.
        foreach (var refusedValue in new[] { $"a\ntouch {marker}", "--flag", "tab\there", "esc\u001b[31m" })
        {
            var refused = await Admin.PostAsJsonAsync($"/api/runbooks/{name}/executions", new { parameters = new { target = refusedValue, password = secret } });
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            var problem = await refused.Content.ReadAsStringAsync();
            Assert.Contains("parameters.target", problem);
            Assert.DoesNotContain(secret, problem);
        }

        foreach (var value in new[] { $"x; touch {marker}", $"$(touch {marker})", $"`touch {marker}`" })
        {
            var id = await StartAsync(Admin, name, new { target = value, password = secret });
            var done = await WaitForEndAsync(Admin, id);
            Assert.Equal("Succeeded", done.GetProperty("status").GetString());
            Assert.False(File.Exists(marker), $"the value {value} ran as code");
            var events = await EventsAsync(Admin, id);
            var output = string.Join("\n", events.Where(e => e.GetProperty("kind").GetString() == "step_output").Select(e => e.GetProperty("data").GetProperty("text").GetString()));
            Assert.Contains("[" + value.Split('\n')[0], output); // printed back as one argument

            var everything = done.GetRawText() + string.Join("", events.Select(e => e.GetRawText()));
            Assert.DoesNotContain(secret, everything);
            Assert.Contains("pw=***", output);
            Assert.Equal("***", done.GetProperty("parameters").GetProperty("password").GetString());
        }

        var stored = await Portal.WithServiceAsync<PortalDbContext, string>(async db =>
            string.Join("", await db.Executions.Select(e => e.ParametersJson + e.ProtectedSecrets + e.Reason).ToListAsync())
            + string.Join("", await db.ExecutionEvents.Select(e => e.DataJson).ToListAsync())
            + string.Join("", await db.AuditRecords.Select(a => a.Details ?? "").ToListAsync()));
        Assert.DoesNotContain(secret, stored);
        Assert.DoesNotContain(Portal.Logs, line => line.Contains(secret));
    }

    [Fact]
    public async Task RequiredFailure_RollsBackSucceededStepsInReverseOrder()
    {
        var name = Name("rollback");
        await PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Rollback
            type: deployment
            steps:
              - id: one
                action: shell
                run: echo one
                rollback: { action: shell, run: echo undo one }
              - id: two
                action: shell
                run: echo two
                rollback: { action: shell, run: echo undo two }
              - id: optional
                action: shell
                run: exit 3
                required: false
              - id: three
                action: shell
                run: echo three; exit 1
                rollback: { action: shell, run: echo undo three }
            """, name);

        var id = await StartAsync(Admin, name, new { });
        var done = await WaitForEndAsync(Admin, id);

        Assert.Equal("Failed", done.GetProperty("status").GetString());
        Assert.True(done.GetProperty("rolledBack").GetBoolean());
        Assert.Equal("three", done.GetProperty("failedStepId").GetString());
        var events = await EventsAsync(Admin, id);
        var rolledBack = events.Where(e => e.GetProperty("kind").GetString() == "rollback_step_started")
            .Select(e => e.GetProperty("stepId").GetString()!.Replace(".rollback", "")).ToList();
        Assert.Equal(["two", "one"], rolledBack);
        var steps = done.GetProperty("steps").EnumerateArray().ToDictionary(s => s.GetProperty("id").GetString()!, s => s.GetProperty("status").GetString());
        Assert.Equal("RolledBack", steps["one"]);
        Assert.Equal("RolledBack", steps["two"]);
        Assert.Equal("Failed", steps["optional"]);
        Assert.Equal("Failed", steps["three"]);
    }

    [Fact]
    public async Task BadParameterValues_Are400_ListingEveryField()
    {
        var name = Name("params");
        await PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Typed parameters
            type: scaling
            parameters:
              environment: { type: string, required: true, allowed: [staging, production] }
              count: { type: int, min: 1, max: 10, default: 2 }
              version: { type: string, required: true, pattern: '^\d+\.\d+\.\d+$' }
            steps:
              - id: s
                action: shell
                run: echo {{ environment }} {{ count }} {{ version }}
            """, name);

        var response = await Admin.PostAsJsonAsync($"/api/runbooks/{name}/executions", new { parameters = new { environment = "moon", count = 99, version = "latest", extra = "x" } });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var errors = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors");
        foreach (var field in new[] { "parameters.environment", "parameters.count", "parameters.version", "parameters.extra" })
            Assert.True(errors.TryGetProperty(field, out _), $"no error for {field}: {errors}");

        var missing = await Admin.PostAsJsonAsync($"/api/runbooks/{name}/executions", new { parameters = new { } });
        var missingErrors = (await missing.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors");
        Assert.True(missingErrors.TryGetProperty("parameters.environment", out _));
        Assert.False(missingErrors.TryGetProperty("parameters.count", out _)); // it has a default
    }

    [Fact]
    public async Task OnlyTheActiveVersionRuns_AndOperatorsNeedTheRole()
    {
        Assert.Equal(HttpStatusCode.NotFound, (await Admin.PostAsJsonAsync("/api/runbooks/nothing-here/executions", new { })).StatusCode);
        var (auditor, _, _) = await Portal.CreateUserAsync("aud", "Auditor");
        Assert.Equal(HttpStatusCode.Forbidden, (await auditor.PostAsJsonAsync("/api/runbooks/nothing-here/executions", new { })).StatusCode);

        var name = Name("draft");
        var created = await Admin.PostAsync("/api/runbooks", new StringContent($"""
            apiVersion: runbooks/v1
            name: {name}
            title: Only a draft
            type: maintenance
            steps:
              - id: s
                action: shell
                run: echo would run
            """, Encoding.UTF8, "application/yaml"));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await Admin.PostAsJsonAsync($"/api/runbooks/{name}/executions", new { })).StatusCode);

        // An author may dry-run the draft.
        var dry = await Admin.PostAsJsonAsync($"/api/runbooks/{name}/executions", new { dryRun = true, version = 1 });
        Assert.Equal(HttpStatusCode.Accepted, dry.StatusCode);
        var id = (await dry.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        var done = await WaitForEndAsync(Admin, id);
        Assert.Equal("Succeeded", done.GetProperty("status").GetString());
        Assert.Equal("Skipped", done.GetProperty("steps")[0].GetProperty("status").GetString());
    }

    [Fact]
    public async Task Cancel_StopsTheRunningStep()
    {
        var name = Name("cancel");
        await PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Long
            type: maintenance
            steps:
              - id: long
                action: shell
                run: echo started; sleep 60
            """, name);
        var id = await StartAsync(Admin, name, new { });
        await WaitForAsync(Admin, id, e => e.GetProperty("steps")[0].GetProperty("status").GetString() == "Running");

        var cancel = await Admin.PostAsJsonAsync($"/api/executions/{id}/cancel", new { rollback = false });
        Assert.True(cancel.StatusCode == HttpStatusCode.OK, string.Join("\n", Portal.Logs.Where(l => l.StartsWith("Error") || l.StartsWith("Critical"))));
        var done = await WaitForEndAsync(Admin, id, seconds: 15);
        Assert.True(done.GetProperty("status").GetString() == "Cancelled", string.Join("\n", (await EventsAsync(Admin, id)).Select(e => e.GetRawText())));
        Assert.Equal(HttpStatusCode.Conflict, (await Admin.PostAsJsonAsync($"/api/executions/{id}/cancel", new { })).StatusCode);

        var audit = await Admin.GetFromJsonAsync<JsonElement>("/api/audit?action=execution.*&limit=1000");
        Assert.Contains(audit.EnumerateArray(), r => r.GetProperty("action").GetString() == "execution.cancelled" && r.GetProperty("details").GetString()!.Contains(id.ToString()));
    }

    [Fact]
    public async Task ASecondCancel_ThatAsksOtherwiseAboutRollback_IsRefused_WhileTheSameOneIsAccepted()
    {
        var name = Name("recancel");
        await PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Held elsewhere
            type: maintenance
            steps:
              - id: work
                action: shell
                run: echo ran
            """, name);
        var template = await StartAsync(Admin, name, new { });
        await WaitForEndAsync(Admin, template);

        // A run that another node is running (its lease holds for minutes): the cancel is recorded for that node to act on.
        Guid id;
        await using (var scope = Portal.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
            var row = RowLike(await db.Executions.AsNoTracking().SingleAsync(e => e.Id == template), ExecutionStatus.Running, DateTime.UtcNow);
            id = row.Id;
            db.Executions.Add(row);
            await db.SaveChangesAsync();
        }
        try
        {
            Assert.Equal(HttpStatusCode.OK, (await Admin.PostAsJsonAsync($"/api/executions/{id}/cancel", new { rollback = true })).StatusCode);
            var other = await Admin.PostAsJsonAsync($"/api/executions/{id}/cancel", new { rollback = false });
            Assert.Equal(HttpStatusCode.Conflict, other.StatusCode);
            Assert.Contains("with rollback is already under way", await other.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.OK, (await Admin.PostAsJsonAsync($"/api/executions/{id}/cancel", new { rollback = true })).StatusCode);

            var requested = (await EventsAsync(Admin, id)).Where(e => e.GetProperty("kind").GetString() == "execution_cancel_requested").ToList();
            Assert.True(Assert.Single(requested).GetProperty("data").GetProperty("rollback").GetBoolean());
            Assert.Equal("Running", (await Admin.GetFromJsonAsync<JsonElement>($"/api/executions/{id}")).GetProperty("status").GetString());
        }
        finally
        {
            await using var scope = Portal.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
            await db.Executions.Where(e => e.Id == id).ExecuteDeleteAsync();
        }
    }

    [Fact]
    public async Task FailedRun_ResumesFromTheFailedStep()
    {
        var name = Name("resume");
        var flag = Path.Combine(Path.GetTempPath(), $"rbp-flag-{Guid.NewGuid():N}");
        await PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Resume
            type: maintenance
            parameters:
              flag: { type: string, required: true }
            steps:
              - id: prepare
                action: shell
                run: echo "token=abc"
                outputs: { token: 'token=(\w+)' }
              - id: flaky
                action: shell
                run: test -f "$RBP_PARAM_FLAG" && echo "using {{ steps.prepare.outputs.token }}"
              - id: finish
                action: shell
                run: echo done
            """, name);
        var id = await StartAsync(Admin, name, new { flag });
        var failed = await WaitForEndAsync(Admin, id);
        Assert.Equal("Failed", failed.GetProperty("status").GetString());
        Assert.Equal("flaky", failed.GetProperty("failedStepId").GetString());

        await File.WriteAllTextAsync(flag, "");
        try
        {
            Assert.Equal(HttpStatusCode.OK, (await Admin.PostAsJsonAsync($"/api/executions/{id}/resume", new { })).StatusCode);
            var done = await WaitForAsync(Admin, id, e => e.GetProperty("status").GetString() == "Succeeded");
            var steps = done.GetProperty("steps").EnumerateArray().ToList();
            Assert.Equal(1, steps[0].GetProperty("attempts").GetInt32()); // not run again
            var events = await EventsAsync(Admin, id);
            Assert.Contains(events, e => e.GetProperty("kind").GetString() == "step_output" && e.GetProperty("data").GetRawText().Contains("using abc"));
            Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.GetProperty("seq").GetInt64()));
        }
        finally
        {
            File.Delete(flag);
        }
    }

    [Fact]
    public async Task RunsWaitingOnAFullConcurrencyKey_DoNotKeepANewerRunnableRunWaiting()
    {
        var name = Name("starve");
        await PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Keyed
            type: deployment
            parameters:
              environment: { type: string, required: true }
            concurrency: { key: "starve-{{ environment }}", limit: 1 }
            steps:
              - id: work
                action: shell
                run: echo ran
            """, name);
        var first = await StartAsync(Admin, name, new { environment = "seed" });
        await WaitForEndAsync(Admin, first);

        // More runs than one claiming pass looks at wait, oldest first, on a key that another node holds.
        var blocked = "starve-" + Guid.NewGuid().ToString("N")[..8];
        var inserted = new List<Guid>();
        await using (var scope = Portal.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
            var template = await db.Executions.AsNoTracking().SingleAsync(e => e.Id == first);
            var now = DateTime.UtcNow;
            Execution Copy(ExecutionStatus status, DateTime queuedAt) => RowLike(template, status, queuedAt, concurrencyKey: blocked);
            var rows = new List<Execution> { Copy(ExecutionStatus.Running, now.AddHours(-2)) };
            rows.AddRange(Enumerable.Range(0, ExecutionWorker.ClaimWindow + 5).Select(i => Copy(ExecutionStatus.Queued, now.AddHours(-1).AddSeconds(i))));
            db.Executions.AddRange(rows);
            await db.SaveChangesAsync();
            inserted.AddRange(rows.Select(r => r.Id));
        }
        try
        {
            var runnable = await StartAsync(Admin, name, new { environment = "free" });
            Assert.Equal("Succeeded", (await WaitForEndAsync(Admin, runnable, seconds: 30)).GetProperty("status").GetString());
            var waiting = await Admin.GetFromJsonAsync<JsonElement>($"/api/executions/{inserted[1]}");
            Assert.Equal("Queued", waiting.GetProperty("status").GetString());
        }
        finally
        {
            await using var scope = Portal.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
            await db.Executions.Where(e => inserted.Contains(e.Id)).ExecuteDeleteAsync();
        }
    }

    [Fact]
    public async Task ConcurrencyKeyLimit_HoldsUnderTwentySimultaneousRequests()
    {
        var name = Name("limit");
        await PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Limited
            type: deployment
            parameters:
              environment: { type: string, required: true }
            concurrency: { key: "deploy-{{ environment }}", limit: 2 }
            steps:
              - id: work
                action: shell
                run: sleep 0.2
            """, name);

        var env = Guid.NewGuid().ToString("N")[..8];
        var ids = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => StartAsync(Admin, name, new { environment = env })));
        foreach (var id in ids)
            Assert.Equal("Succeeded", (await WaitForEndAsync(Admin, id, seconds: 60)).GetProperty("status").GetString());

        var intervals = new List<(DateTime Start, DateTime End)>();
        foreach (var id in ids)
        {
            var events = await EventsAsync(Admin, id);
            intervals.Add((events.First(e => e.GetProperty("kind").GetString() == "execution_claimed").GetProperty("at").GetDateTime(),
                           events.Last().GetProperty("at").GetDateTime()));
        }
        // The most runs at any one moment: at each start, count the runs that had started and not yet ended.
        var mostAtOnce = intervals.Max(i => intervals.Count(o => o.Start <= i.Start && i.Start < o.End));
        Assert.True(mostAtOnce <= 2, $"{mostAtOnce} executions with one concurrency key ran at once:\n"
            + string.Join("\n", intervals.OrderBy(i => i.Start).Select(i => $"{i.Start:HH:mm:ss.ffffff} - {i.End:HH:mm:ss.ffffff}")));
    }
}

public sealed class SqliteExecutionApiTests(SqliteEngineFixture fixture) : ExecutionApiTests(fixture), IClassFixture<SqliteEngineFixture>;

public sealed class PostgresExecutionApiTests(PostgresEngineFixture fixture) : ExecutionApiTests(fixture), IClassFixture<PostgresEngineFixture>;
