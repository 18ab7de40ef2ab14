using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>
/// <c>POST /api/runbooks/{name}/executions</c> with an <c>Idempotency-Key</c>, on both stores: a pipeline that retries
/// a start (after a timeout, say) gets the execution its first try started, never a second one.
/// </summary>
public abstract class IdempotencyApiTests(PortalFixture fixture)
{
    private PortalFactory Portal => fixture.Portal;
    private HttpClient Admin => Portal.AdminClient();

    private static string Key() => $"ci-{Guid.NewGuid()}";

    private async Task<string> PublishAsync()
    {
        var name = $"idem-{Guid.NewGuid():N}"[..28];
        await ExecutionApiTests.PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Safe to retry
            type: deployment
            parameters:
              target: { type: string, required: true }
              replicas: { type: int, default: 2 }
              token: { type: secret }
            steps:
              - id: deploy
                action: shell
                run: echo "deploying {{ target }} x{{ replicas }}"
            """, name);
        return name;
    }

    internal static async Task<HttpResponseMessage> PostStartAsync(HttpClient client, string name, object parameters, string? key, bool dryRun = false)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/runbooks/{name}/executions") { Content = JsonContent.Create(new { parameters, dryRun }) };
        if (key is not null)
            request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        return await client.SendAsync(request);
    }

    private static async Task<(HttpStatusCode Status, Guid Id, string? Replayed)> StartWithKeyAsync(HttpClient client, string name, object parameters, string key)
    {
        var response = await PostStartAsync(client, name, parameters, key);
        Assert.True(response.StatusCode is HttpStatusCode.Accepted or HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.False(string.IsNullOrEmpty(body.GetProperty("status").GetString()));
        return (response.StatusCode, body.GetProperty("id").GetGuid(), response.Headers.TryGetValues("Idempotent-Replayed", out var v) ? v.Single() : null);
    }

    private async Task<int> ExecutionsOfAsync(string name) =>
        (await Admin.GetFromJsonAsync<JsonElement>($"/api/executions?runbook={name}")).GetProperty("total").GetInt32();

    private static async Task<string> DetailAsync(HttpResponseMessage response) =>
        (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString()!;

    [Fact]
    public async Task TheSameKeyTwice_AnswersTheFirstExecution_With200_AndStartsNothingMore()
    {
        var name = await PublishAsync();
        var key = Key();
        var parameters = new { target = "web", token = "t0ken" };

        var first = await StartWithKeyAsync(Admin, name, parameters, key);
        Assert.Equal((HttpStatusCode.Accepted, null), (first.Status, first.Replayed));
        var done = await ExecutionApiTests.WaitForEndAsync(Admin, first.Id);

        // The retry may spell the values otherwise (a default given, a number as text): it is the same request.
        var again = await StartWithKeyAsync(Admin, name, new { target = "web", replicas = "2", token = "t0ken" }, key);
        Assert.Equal((HttpStatusCode.OK, first.Id, "true"), (again.Status, again.Id, again.Replayed));
        var retried = await PostStartAsync(Admin, name, parameters, key);
        Assert.Equal(done.GetProperty("status").GetString(), (await retried.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("status").GetString());

        Assert.Equal(1, await ExecutionsOfAsync(name));
        var audit = await Admin.GetFromJsonAsync<JsonElement>("/api/audit?action=execution.started&limit=1000");
        Assert.Single(audit.EnumerateArray(), r => r.GetProperty("details").GetString()!.Contains(first.Id.ToString()));
    }

    [Fact]
    public async Task ConcurrentStartsWithOneKey_StartOneExecution()
    {
        var name = await PublishAsync();
        var key = Key();
        var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => StartWithKeyAsync(Admin, name, new { target = "web" }, key)));

        Assert.Single(answers.Select(a => a.Id).Distinct());
        Assert.Single(answers, a => a.Status == HttpStatusCode.Accepted);
        Assert.All(answers.Where(a => a.Status == HttpStatusCode.OK), a => Assert.Equal("true", a.Replayed));
        Assert.Equal(1, await ExecutionsOfAsync(name));
        await ExecutionApiTests.WaitForEndAsync(Admin, answers[0].Id);

        // The store itself refuses a second execution with the same requester and key.
        var refused = await Assert.ThrowsAsync<DbUpdateException>(() => Portal.WithServiceAsync<PortalDbContext, int>(async db =>
        {
            var row = await db.Executions.AsNoTracking().SingleAsync(e => e.Id == answers[0].Id);
            row.Id = Guid.NewGuid();
            row.Steps = [];
            db.Executions.Add(row);
            return await db.SaveChangesAsync();
        }));
        Assert.NotNull(refused);
    }

    [Fact]
    public async Task DifferentKeys_StartTwoExecutions_AndNoKeyStartsOneEachTime()
    {
        var name = await PublishAsync();
        var one = await StartWithKeyAsync(Admin, name, new { target = "web" }, Key());
        var two = await StartWithKeyAsync(Admin, name, new { target = "web" }, Key());
        var plain = await ExecutionApiTests.StartAsync(Admin, name, new { target = "web" });

        Assert.Equal((HttpStatusCode.Accepted, HttpStatusCode.Accepted), (one.Status, two.Status));
        Assert.Equal(3, new[] { one.Id, two.Id, plain }.Distinct().Count());
        Assert.Equal(3, await ExecutionsOfAsync(name));
        foreach (var id in new[] { one.Id, two.Id, plain })
            await ExecutionApiTests.WaitForEndAsync(Admin, id);
    }

    [Fact]
    public async Task TheSameKeyFromAnotherUser_StartsTheirOwnExecution()
    {
        var name = await PublishAsync();
        var key = Key();
        var (op, _, _) = await Portal.CreateUserAsync("op", "Operator");

        var mine = await StartWithKeyAsync(Admin, name, new { target = "web" }, key);
        var theirs = await StartWithKeyAsync(op, name, new { target = "web" }, key);
        var theirsAgain = await StartWithKeyAsync(op, name, new { target = "web" }, key);

        Assert.Equal((HttpStatusCode.Accepted, HttpStatusCode.Accepted), (mine.Status, theirs.Status));
        Assert.NotEqual(mine.Id, theirs.Id);
        Assert.Equal((HttpStatusCode.OK, theirs.Id), (theirsAgain.Status, theirsAgain.Id));
        Assert.Equal(2, await ExecutionsOfAsync(name));
        await ExecutionApiTests.WaitForEndAsync(Admin, mine.Id);
        await ExecutionApiTests.WaitForEndAsync(Admin, theirs.Id);
    }

    [Fact]
    public async Task AKeyReusedForAnotherRequest_Is422_SayingItWasUsedForAnotherRequest()
    {
        var name = await PublishAsync();
        var other = await PublishAsync();
        var key = Key();
        var first = await StartWithKeyAsync(Admin, name, new { target = "web", token = "t0ken" }, key);

        var cases = new (string Why, Func<Task<HttpResponseMessage>> Send, string Says)[]
        {
            ("other parameter values", () => PostStartAsync(Admin, name, new { target = "api", token = "t0ken" }, key), "with other parameter values"),
            ("another secret", () => PostStartAsync(Admin, name, new { target = "web", token = "another" }, key), "with other parameter values"),
            ("a bad value", () => PostStartAsync(Admin, name, new { target = "web", replicas = "many" }, key), "with other parameter values"),
            ("another runbook", () => PostStartAsync(Admin, other, new { target = "web", token = "t0ken" }, key), $"for the runbook '{name}', not '{other}'"),
            ("a dry run", () => PostStartAsync(Admin, name, new { target = "web", token = "t0ken" }, key, dryRun: true), "as a real run, and this request is a dry run"),
        };
        foreach (var (why, send, says) in cases)
        {
            var refused = await send();
            Assert.True(refused.StatusCode == HttpStatusCode.UnprocessableEntity, $"{why}: {refused.StatusCode} {await refused.Content.ReadAsStringAsync()}");
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
            var detail = await DetailAsync(refused);
            Assert.StartsWith($"This Idempotency-Key was already used for another request: you started execution {first.Id} ({name} v1) with it at ", detail, StringComparison.Ordinal);
            Assert.Contains(says, detail, StringComparison.Ordinal);
            Assert.EndsWith("send a new key for a new request.", detail, StringComparison.Ordinal);
            Assert.DoesNotContain("t0ken", detail, StringComparison.Ordinal);
        }
        Assert.Equal(1, await ExecutionsOfAsync(name));
        Assert.Equal(0, await ExecutionsOfAsync(other));
        await ExecutionApiTests.WaitForEndAsync(Admin, first.Id);
    }

    [Fact]
    public async Task AKeyOlderThan24Hours_StartsANewExecution_WhichTheKeyThenAnswers()
    {
        var name = await PublishAsync();
        var key = Key();
        var first = await StartWithKeyAsync(Admin, name, new { target = "web" }, key);
        await ExecutionApiTests.WaitForEndAsync(Admin, first.Id);
        await Portal.WithServiceAsync<PortalDbContext, int>(db => db.Executions.Where(e => e.Id == first.Id)
            .ExecuteUpdateAsync(u => u.SetProperty(e => e.RequestedAt, DateTime.UtcNow.AddHours(-25))));

        // Even with other values: the key no longer stands for the old request.
        var fresh = await StartWithKeyAsync(Admin, name, new { target = "api" }, key);
        var retried = await StartWithKeyAsync(Admin, name, new { target = "api" }, key);

        Assert.Equal(HttpStatusCode.Accepted, fresh.Status);
        Assert.NotEqual(first.Id, fresh.Id);
        Assert.Equal((HttpStatusCode.OK, fresh.Id), (retried.Status, retried.Id));
        Assert.Equal(2, await ExecutionsOfAsync(name));
        await ExecutionApiTests.WaitForEndAsync(Admin, fresh.Id);
    }

    [Theory] // (an empty header is refused the same way; the in-process test server drops empty headers before the portal sees them)
    [InlineData("   ", "The Idempotency-Key header is empty.")]
    [InlineData("tab\there", "The Idempotency-Key may only hold printable ASCII characters (letters, digits, punctuation and spaces); character 4 is U+0009.")]
    [InlineData("del\u007f", "The Idempotency-Key may only hold printable ASCII characters (letters, digits, punctuation and spaces); character 4 is U+007F.")]
    [InlineData("LONG", "The Idempotency-Key is 201 characters long; it may have at most 200.")]
    public async Task ABadKey_Is400_SayingWhatIsWrongWithIt(string key, string says)
    {
        var name = await PublishAsync();
        var response = await PostStartAsync(Admin, name, new { target = "web" }, key == "LONG" ? new string('k', 201) : key);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.StartsWith(says, problem.GetProperty("errors").GetProperty("Idempotency-Key")[0].GetString(), StringComparison.Ordinal);
        Assert.Equal(0, await ExecutionsOfAsync(name));

        var longest = await StartWithKeyAsync(Admin, name, new { target = "web" }, Key().PadRight(199, 'k') + "~");
        Assert.Equal(HttpStatusCode.Accepted, longest.Status);
        await ExecutionApiTests.WaitForEndAsync(Admin, longest.Id);
    }

    [Fact]
    public async Task AStartWhoseAuditRecordCannotBeWritten_StartsNothing_AndItsRetryStartsOnce()
    {
        var name = await PublishAsync();
        var (op, email, _) = await Portal.CreateUserAsync("audited", "Operator");
        var trigger = $"refuse_audit_{Guid.NewGuid():N}";
        var postgres = Portal.Database.Provider == "Postgres";
        await SqlAsync(postgres
            ? $$"""
               CREATE FUNCTION {{trigger}}() RETURNS trigger LANGUAGE plpgsql AS $f$
               BEGIN IF NEW."Actor" = '{{email}}' THEN RAISE EXCEPTION 'the audit store refused the record'; END IF; RETURN NEW; END $f$;
               CREATE TRIGGER {{trigger}} BEFORE INSERT ON "AuditRecords" FOR EACH ROW EXECUTE FUNCTION {{trigger}}();
               """
            : $"""
               CREATE TRIGGER {trigger} BEFORE INSERT ON "AuditRecords" WHEN NEW."Actor" = '{email}'
               BEGIN SELECT RAISE(ABORT, 'the audit store refused the record'); END;
               """);
        var key = Key();
        try
        {
            var failed = await PostStartAsync(op, name, new { target = "web" }, key);
            Assert.False(failed.IsSuccessStatusCode, await failed.Content.ReadAsStringAsync());
            Assert.Equal(0, await ExecutionsOfAsync(name)); // the execution went with its audit record
        }
        finally
        {
            await SqlAsync(postgres ? $"DROP TRIGGER {trigger} ON \"AuditRecords\"; DROP FUNCTION {trigger}();" : $"DROP TRIGGER {trigger};");
        }

        var retried = await StartWithKeyAsync(op, name, new { target = "web" }, key);
        Assert.Equal(HttpStatusCode.Accepted, retried.Status);
        Assert.Equal(1, await ExecutionsOfAsync(name));
        await ExecutionApiTests.WaitForEndAsync(Admin, retried.Id);
        Assert.True((await Admin.GetFromJsonAsync<JsonElement>("/api/audit/verify")).GetProperty("valid").GetBoolean());
    }

    private Task<int> SqlAsync(string sql) => Portal.WithServiceAsync<PortalDbContext, int>(db => db.Database.ExecuteSqlRawAsync(sql));
}

public sealed class SqliteIdempotencyApiTests(SqliteEngineFixture fixture) : IdempotencyApiTests(fixture), IClassFixture<SqliteEngineFixture>;

public sealed class PostgresIdempotencyApiTests(PostgresEngineFixture fixture) : IdempotencyApiTests(fixture), IClassFixture<PostgresEngineFixture>;
