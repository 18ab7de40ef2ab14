using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>The runbook routes of the REST API on both stores: catalog, versions and the review lifecycle.</summary>
public abstract class RunbookApiTests(PortalFixture fixture)
{
    private PortalFactory Portal => fixture.Portal;

    internal static string Yaml(string name, string title = "Rotate logs", string run = "echo rotating", string tags = "[maintenance, logs]") => $"""
        apiVersion: runbooks/v1
        name: {name}
        title: {title}
        description: Rotates and compresses application logs on every host.
        type: maintenance
        tags: {tags}
        owner: team-ops
        prerequisites:
          - Disk usage alert acknowledged
        parameters:
          environment: {"{"} type: string, required: true, allowed: [staging, production] {"}"}
        steps:
          - id: rotate
            name: Rotate the logs
            action: shell
            run: {run}
        """;

    private static string NewName(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..30];

    private static StringContent YamlBody(string yaml) => new(yaml, Encoding.UTF8, "application/yaml");

    private async Task<(HttpClient Client, string Email)> AuthorAsync(string who)
    {
        var (client, email, _) = await Portal.CreateUserAsync(who, "Author");
        return (client, email);
    }

    private static async Task<JsonElement> Json(HttpResponseMessage response) => await response.Content.ReadFromJsonAsync<JsonElement>();

    private static Task<HttpResponseMessage> Act(HttpClient client, string name, int version, string action, string? comment = null) =>
        client.PostAsJsonAsync($"/api/runbooks/{name}/versions/{version}/{action}", new { comment });

    [Fact]
    public async Task Validate_AnswersDiagnosticsWithLineColumnAndPath()
    {
        var (author, _) = await AuthorAsync("validator");
        var bad = Yaml("bad-one").Replace("action: shell", "action: shel");
        var response = await author.PostAsync("/api/runbooks/validate", YamlBody(bad));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await Json(response);
        Assert.False(body.GetProperty("valid").GetBoolean());
        var d = body.GetProperty("diagnostics")[0];
        Assert.Equal(15, d.GetProperty("line").GetInt32());
        Assert.Equal(13, d.GetProperty("column").GetInt32());
        Assert.Equal("steps[0].action", d.GetProperty("path").GetString());
        Assert.Equal("error", d.GetProperty("severity").GetString());

        var good = await Json(await author.PostAsync("/api/runbooks/validate", YamlBody(Yaml("good-one"))));
        Assert.True(good.GetProperty("valid").GetBoolean());
    }

    [Fact]
    public async Task Create_Then_Duplicate_Is409_And_Invalid_Is400WithDiagnostics()
    {
        var (author, email) = await AuthorAsync("creator");
        var name = NewName("create");
        var created = await author.PostAsync("/api/runbooks", YamlBody(Yaml(name)));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal(1, (await Json(created)).GetProperty("version").GetInt32());

        var dup = await author.PostAsync("/api/runbooks", YamlBody(Yaml(name)));
        Assert.Equal(HttpStatusCode.Conflict, dup.StatusCode);
        Assert.Contains(name, (await Json(dup)).GetProperty("detail").GetString());

        var invalid = await author.PostAsync("/api/runbooks", YamlBody("apiVersion: runbooks/v1\nname: x\n"));
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.Equal("application/problem+json", invalid.Content.Headers.ContentType?.MediaType);
        Assert.True((await Json(invalid)).GetProperty("diagnostics").GetArrayLength() > 0);

        var details = await author.GetFromJsonAsync<JsonElement>($"/api/runbooks/{name}");
        Assert.Equal("Draft", details.GetProperty("runbook").GetProperty("status").GetString());
        Assert.Equal(email, details.GetProperty("versions")[0].GetProperty("author").GetString());
        var version = await author.GetFromJsonAsync<JsonElement>($"/api/runbooks/{name}/versions/1");
        Assert.Equal(Yaml(name), version.GetProperty("yaml").GetString());
        Assert.Equal(Yaml(name), await author.GetStringAsync($"/api/runbooks/{name}/versions/1/yaml"));
    }

    [Fact]
    public async Task UnknownRunbookOrVersion_Is404()
    {
        var (author, _) = await AuthorAsync("lost");
        Assert.Equal(HttpStatusCode.NotFound, (await author.GetAsync("/api/runbooks/no-such-runbook")).StatusCode);
        var name = NewName("found");
        await author.PostAsync("/api/runbooks", YamlBody(Yaml(name)));
        Assert.Equal(HttpStatusCode.NotFound, (await author.GetAsync($"/api/runbooks/{name}/versions/9")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Act(author, name, 9, "submit")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await author.PutAsync("/api/runbooks/no-such-runbook", YamlBody(Yaml("no-such-runbook")))).StatusCode);
    }

    [Fact]
    public async Task ReviewLifecycle_SelfApprovalRefused_OtherAuthorPublishes_PreviousIsSuperseded()
    {
        var (alice, aliceEmail) = await AuthorAsync("alice");
        var (bob, _) = await AuthorAsync("bob");
        var name = NewName("lifecycle");
        Assert.Equal(HttpStatusCode.Created, (await alice.PostAsync("/api/runbooks", YamlBody(Yaml(name)))).StatusCode);

        // Saving again while it is a draft updates version 1.
        var resaved = await alice.PutAsync($"/api/runbooks/{name}", YamlBody(Yaml(name, run: "echo rotate v1b")));
        Assert.Equal(1, (await Json(resaved)).GetProperty("version").GetInt32());

        Assert.Equal(HttpStatusCode.OK, (await Act(alice, name, 1, "submit")).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await alice.PutAsync($"/api/runbooks/{name}", YamlBody(Yaml(name, run: "echo while in review")))).StatusCode);

        var self = await Act(alice, name, 1, "approve");
        Assert.Equal(HttpStatusCode.Forbidden, self.StatusCode);
        Assert.Contains("another Author or Admin", (await Json(self)).GetProperty("detail").GetString());

        Assert.Equal(HttpStatusCode.BadRequest, (await Act(bob, name, 1, "reject")).StatusCode); // a comment is required
        Assert.Equal(HttpStatusCode.OK, (await Act(bob, name, 1, "reject", "Add a verification step.")).StatusCode);
        var afterReject = await alice.GetFromJsonAsync<JsonElement>($"/api/runbooks/{name}");
        Assert.Equal("Draft", afterReject.GetProperty("versions")[0].GetProperty("status").GetString());
        Assert.Contains(afterReject.GetProperty("history").EnumerateArray(), h => h.GetProperty("comment").GetString() == "Add a verification step.");

        Assert.Equal(HttpStatusCode.OK, (await Act(alice, name, 1, "submit")).StatusCode);
        var approved = await Act(bob, name, 1, "approve", "Looks good.");
        Assert.Equal(HttpStatusCode.OK, approved.StatusCode);
        Assert.Equal("Active", (await Json(approved)).GetProperty("summary").GetProperty("status").GetString());

        // A published version never changes: editing makes version 2.
        var v2 = await alice.PutAsync($"/api/runbooks/{name}", YamlBody(Yaml(name, title: "Rotate logs safely", run: "echo rotate v2")));
        Assert.Equal(2, (await Json(v2)).GetProperty("version").GetInt32());
        Assert.Contains("echo rotate v1b", (await alice.GetFromJsonAsync<JsonElement>($"/api/runbooks/{name}/versions/1")).GetProperty("yaml").GetString());

        Assert.Equal(HttpStatusCode.OK, (await Act(alice, name, 2, "submit")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Act(Portal.AdminClient(), name, 2, "approve")).StatusCode);

        var details = await alice.GetFromJsonAsync<JsonElement>($"/api/runbooks/{name}");
        var statuses = details.GetProperty("versions").EnumerateArray().ToDictionary(v => v.GetProperty("version").GetInt32(), v => v.GetProperty("status").GetString());
        Assert.Equal("Active", statuses[2]);
        Assert.Equal("Superseded", statuses[1]);
        Assert.Equal(2, details.GetProperty("runbook").GetProperty("activeVersion").GetInt32());
        Assert.Equal("Rotate logs safely", details.GetProperty("runbook").GetProperty("title").GetString());

        Assert.Equal(HttpStatusCode.Conflict, (await Act(alice, name, 2, "submit")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Act(alice, name, 2, "deprecate", "Replaced by the new log pipeline.")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Act(alice, name, 2, "archive")).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await Act(alice, name, 2, "deprecate")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Act(alice, name, 2, "explode")).StatusCode);

        var audit = await Portal.AdminClient().GetFromJsonAsync<JsonElement>($"/api/audit?action=runbook.*&limit=1000");
        var mine = audit.EnumerateArray().Where(r => r.GetProperty("target").GetString()!.StartsWith(name + " ")).Select(r => r.GetProperty("action").GetString()).ToList();
        Assert.Contains("runbook.rejected", mine);
        Assert.Contains("runbook.approved", mine);
        Assert.Contains("runbook.archived", mine);
        Assert.DoesNotContain(aliceEmail, audit.EnumerateArray().Where(r => r.GetProperty("action").GetString() == "runbook.approved" && r.GetProperty("target").GetString()!.StartsWith(name)).Select(r => r.GetProperty("actor").GetString()));
    }

    [Fact]
    public async Task NonAuthor_CannotWriteRunbooks_ButCanReadTheCatalog()
    {
        var (op, _, _) = await Portal.CreateUserAsync("op", "Operator");

        Assert.Equal(HttpStatusCode.Forbidden, (await op.PostAsync("/api/runbooks", YamlBody(Yaml(NewName("nope"))))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await op.GetAsync("/api/runbooks")).StatusCode);
    }

    [Fact]
    public async Task Catalog_SearchesNameTitleDescriptionAndTags_WithFacets()
    {
        var (author, _) = await AuthorAsync("searcher");
        var marker = "zq" + Guid.NewGuid().ToString("N")[..8];
        var a = NewName("srch-a");
        var b = NewName("srch-b");
        await author.PostAsync("/api/runbooks", YamlBody(Yaml(a, title: $"Flush {marker} caches")));
        await author.PostAsync("/api/runbooks", YamlBody(Yaml(b, tags: $"[{marker}, caches]")));

        var byTitle = await author.GetFromJsonAsync<JsonElement>($"/api/runbooks?search={marker}");
        Assert.Equal(2, byTitle.GetProperty("total").GetInt32());
        var byTag = await author.GetFromJsonAsync<JsonElement>($"/api/runbooks?tag={marker}");
        Assert.Equal(b, byTag.GetProperty("items")[0].GetProperty("name").GetString());
        Assert.Equal(1, byTag.GetProperty("total").GetInt32());
        var both = await author.GetFromJsonAsync<JsonElement>($"/api/runbooks?search={marker}%20flush");
        Assert.Equal(a, both.GetProperty("items")[0].GetProperty("name").GetString());
        var facets = byTitle.GetProperty("facets");
        Assert.Contains(facets.GetProperty("types").EnumerateArray(), f => f.GetProperty("value").GetString() == "maintenance" && f.GetProperty("count").GetInt32() == 2);
        Assert.Contains(facets.GetProperty("tags").EnumerateArray(), f => f.GetProperty("value").GetString() == marker);
        var none = await author.GetFromJsonAsync<JsonElement>($"/api/runbooks?search={marker}&status=Active");
        Assert.Equal(0, none.GetProperty("total").GetInt32());
    }

    [Fact]
    public async Task Import_ReportsEachFile_AndSamplesLoad()
    {
        var (author, _) = await AuthorAsync("importer");
        var good = NewName("imported");
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent(Yaml(good)) { Headers = { ContentType = new MediaTypeHeaderValue("application/yaml") } }, "files", "good.yaml");
        form.Add(new StringContent("apiVersion: runbooks/v1\nname: broken\n"), "files", "broken.yaml");
        form.Add(new StringContent("hello"), "files", "notes.txt");
        var response = await author.PostAsync("/api/runbooks/import", form);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var results = (await Json(response)).EnumerateArray().ToList();
        Assert.Equal(3, results.Count);
        Assert.True(results[0].GetProperty("imported").GetBoolean());
        Assert.Equal(good, results[0].GetProperty("name").GetString());
        Assert.False(results[1].GetProperty("imported").GetBoolean());
        Assert.True(results[1].GetProperty("diagnostics").GetArrayLength() > 0);
        Assert.False(results[2].GetProperty("imported").GetBoolean());

        var samples = await author.GetFromJsonAsync<JsonElement>("/api/runbooks/samples");
        Assert.True(samples.GetArrayLength() >= 6);
        var types = samples.EnumerateArray().Select(s => s.GetProperty("type").GetString()).ToHashSet();
        Assert.Equal(6, types.Count);
        Assert.Contains(samples.EnumerateArray(), s => s.GetProperty("name").GetString() == "web-app-deploy");
    }

    [Fact]
    public async Task Schema_IsServed()
    {
        var (author, _) = await AuthorAsync("schema");
        var schema = await author.GetFromJsonAsync<JsonElement>("/schemas/runbook-v1.json");
        Assert.True(schema.TryGetProperty("properties", out var props));
        Assert.True(props.TryGetProperty("steps", out _));
    }
}

public sealed class SqliteRunbookApiTests(SqlitePortalFixture fixture) : RunbookApiTests(fixture), IClassFixture<SqlitePortalFixture>;

public sealed class PostgresRunbookApiTests(PostgresPortalFixture fixture) : RunbookApiTests(fixture), IClassFixture<PostgresPortalFixture>;
