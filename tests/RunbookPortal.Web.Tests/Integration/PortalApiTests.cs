using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Account;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>The foundation's promises, run against SQLite and against a real PostgreSQL (the two subclasses below).</summary>
public abstract class PortalApiTests(PortalFixture fixture)
{
    protected PortalFactory Portal => fixture.Portal;

    private static string UniqueEmail(string who) => $"{who}-{Guid.NewGuid():N}@portal.test"[..Math.Min(60, who.Length + 45)];

    [Theory]
    [InlineData("GET", "/api/admin/users")]
    [InlineData("POST", "/api/admin/users")]
    [InlineData("GET", "/api/audit")]
    [InlineData("GET", "/api/audit/verify")]
    [InlineData("GET", "/api/tokens")]
    [InlineData("POST", "/api/tokens")]
    [InlineData("GET", "/api/me")]
    [InlineData("GET", "/api/approvals")]
    [InlineData("POST", "/api/approvals/00000000-0000-0000-0000-000000000001/approve")]
    [InlineData("POST", "/api/executions/00000000-0000-0000-0000-000000000001/steps/verify/continue")]
    [InlineData("GET", "/api/does-not-exist")]
    [InlineData("GET", "/openapi/v1.json")]
    public async Task AnonymousApiRequest_Gets401ProblemDetails(string method, string path)
    {
        var response = await Portal.CreateClient(token: null).SendAsync(new HttpRequestMessage(new HttpMethod(method), path));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(401, problem.GetProperty("status").GetInt32());
    }

    [Theory]
    [InlineData("/")]
    [InlineData("/runbooks")]
    [InlineData("/executions")]
    [InlineData("/approvals")]
    [InlineData("/audit")]
    [InlineData("/admin/users")]
    [InlineData("/admin/tokens")]
    [InlineData("/account/tokens")]
    [InlineData("/api-docs")]
    public async Task AnonymousPageRequest_RedirectsToSignIn(string path)
    {
        var response = await Portal.CreateClient(token: null).GetAsync(path);

        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.StartsWith("/account/login", response.Headers.Location!.PathAndQuery);
    }

    [Theory]
    [InlineData("/healthz")]
    [InlineData("/readyz")]
    [InlineData("/account/login")]
    public async Task OpenRoutes_AnswerWithoutSignIn(string path)
    {
        var response = await Portal.CreateClient(token: null).GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Readyz_ReportsTheDatabaseReachable()
    {
        var body = await Portal.CreateClient(token: null).GetFromJsonAsync<JsonElement>("/readyz");
        Assert.Equal("Healthy", body.GetProperty("status").GetString());
        Assert.Equal("database", body.GetProperty("checks")[0].GetProperty("name").GetString());
    }

    [Fact]
    public async Task BootstrapAdminToken_ListsUsers()
    {
        var users = await Portal.AdminClient().GetFromJsonAsync<JsonElement>("/api/admin/users");
        var admin = users.EnumerateArray().Single(u => u.GetProperty("email").GetString() == PortalFactory.AdminEmail);
        Assert.Contains("Admin", admin.GetProperty("roles").EnumerateArray().Select(r => r.GetString()));
    }

    [Fact]
    public async Task UserWithoutAdminRole_Gets403OnAdminRoutes()
    {
        var operatorToken = await CreateUserWithTokenAsync(UniqueEmail("operator"), ["Operator"]);
        var client = Portal.CreateClient(operatorToken);

        var response = await client.GetAsync("/api/admin/users");
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);

        Assert.Equal(HttpStatusCode.Forbidden, (await client.GetAsync("/api/audit")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/me")).StatusCode);
    }

    [Fact]
    public async Task Auditor_ReadsTheAuditTrail_ButNotAdminRoutes()
    {
        var client = Portal.CreateClient(await CreateUserWithTokenAsync(UniqueEmail("auditor"), ["Auditor"]));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/audit")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await client.GetAsync("/api/admin/tokens")).StatusCode);
    }

    [Fact]
    public async Task RevokedToken_StopsWorkingAtOnce()
    {
        var email = UniqueEmail("ci");
        var token = await CreateUserWithTokenAsync(email, ["Operator"]);
        var client = Portal.CreateClient(token);
        var mine = await client.GetFromJsonAsync<JsonElement>("/api/tokens");
        var id = mine.EnumerateArray().Single().GetProperty("id").GetString();

        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/me")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/api/tokens/{id}")).StatusCode);

        var after = await client.GetAsync("/api/me");
        Assert.Equal(HttpStatusCode.Unauthorized, after.StatusCode);
        Assert.Equal("application/problem+json", after.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task AdminRevokesAnotherUsersToken_AndItStops()
    {
        var token = await CreateUserWithTokenAsync(UniqueEmail("victim"), ["Operator"]);
        var all = await Portal.AdminClient().GetFromJsonAsync<JsonElement>("/api/admin/tokens");
        var prefix = token[..token.IndexOf('.')]; // the token's public id
        var id = all.EnumerateArray().Single(t => t.GetProperty("prefix").GetString() == prefix).GetProperty("id").GetString();

        Assert.Equal(HttpStatusCode.NoContent, (await Portal.AdminClient().DeleteAsync($"/api/admin/tokens/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Portal.CreateClient(token).GetAsync("/api/me")).StatusCode);
    }

    [Fact]
    public async Task ATokensShownPrefix_IsAPublicIdApartFromItsSecret_AndTheBootstrapTokenShowsNoneOfIt()
    {
        var token = await CreateUserWithTokenAsync(UniqueEmail("prefix"), ["Operator"]);
        var all = (await Portal.AdminClient().GetFromJsonAsync<JsonElement>("/api/admin/tokens")).EnumerateArray().ToList();
        var parts = token.Split('.');
        Assert.Equal(2, parts.Length);
        Assert.Matches("^rbp_[A-Za-z0-9_-]{8}$", parts[0]);
        Assert.Equal(43, parts[1].Length); // 256 random bits, none of them shown anywhere
        var shown = Assert.Single(all, t => t.GetProperty("prefix").GetString() == parts[0]);
        Assert.DoesNotContain(parts[1][..6], shown.GetRawText());

        var bootstrap = all.Where(t => t.GetProperty("prefix").GetString() == "bootstrap").ToList();
        Assert.NotEmpty(bootstrap);
        Assert.All(all, t => Assert.DoesNotContain(Portal.AdminToken[^12..], t.GetRawText())); // its random end (it begins "bootstrap-")
    }

    [Fact]
    public async Task Token_IsNeverStoredOrLoggedInClear_AndRecordsLastUse()
    {
        var email = UniqueEmail("secret");
        var token = await CreateUserWithTokenAsync(email, []);
        Assert.StartsWith(ApiTokenService.TokenPrefix, token);
        Assert.Equal(HttpStatusCode.OK, (await Portal.CreateClient(token).GetAsync("/api/me")).StatusCode);

        var (stored, audit, lastUsed) = await Portal.WithServiceAsync<PortalDbContext, (List<string>, List<string>, DateTime?)>(async db =>
        {
            var row = await db.ApiTokens.Include(t => t.User).SingleAsync(t => t.User!.Email == email);
            var columns = new List<string> { row.TokenHash, row.Prefix, row.Name, row.CreatedBy };
            var records = await db.AuditRecords.Select(r => r.Actor + r.Action + r.Target + r.Details).ToListAsync();
            return (columns, records, row.LastUsedAt);
        });

        Assert.Contains(ApiTokenService.Hash(token), stored);
        Assert.DoesNotContain(stored, v => v.Contains(token));
        Assert.DoesNotContain(audit, v => v.Contains(token));
        Assert.DoesNotContain(Portal.Logs, line => line.Contains(token));
        Assert.DoesNotContain(Portal.Logs, line => line.Contains(Portal.AdminToken));
        Assert.NotNull(lastUsed);
    }

    [Fact]
    public async Task CreateUser_ValidatesInput_AndRefusesDuplicates()
    {
        var admin = Portal.AdminClient();
        var bad = await admin.PostAsJsonAsync("/api/admin/users", new { email = "not-an-email", password = "short", roles = new[] { "Wizard" } });
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        var problem = await bad.Content.ReadFromJsonAsync<JsonElement>();
        var errors = problem.GetProperty("errors");
        Assert.True(errors.TryGetProperty("email", out _));
        Assert.Contains("Wizard", errors.GetProperty("roles")[0].GetString());

        var email = UniqueEmail("dup");
        var weak = await admin.PostAsJsonAsync("/api/admin/users", new { email, password = "short", roles = Array.Empty<string>() });
        Assert.Equal(HttpStatusCode.BadRequest, weak.StatusCode);
        Assert.Contains("12", (await weak.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors").GetProperty("password")[0].GetString());

        Assert.Equal(HttpStatusCode.Created, (await admin.PostAsJsonAsync("/api/admin/users", new { email, password = "a long enough password", roles = new[] { "author" } })).StatusCode);
        var again = await admin.PostAsJsonAsync("/api/admin/users", new { email, password = "a long enough password", roles = Array.Empty<string>() });
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        Assert.Equal("application/problem+json", again.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task MalformedJson_Gets400ProblemDetails()
    {
        var response = await Portal.AdminClient().PostAsync("/api/admin/users", new StringContent("{ not json", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task SetRoles_ChangesAccess_AndIsAudited()
    {
        var email = UniqueEmail("promoted");
        var token = await CreateUserWithTokenAsync(email, ["Operator"]);
        Assert.Equal(HttpStatusCode.Forbidden, (await Portal.CreateClient(token).GetAsync("/api/audit")).StatusCode);

        var put = await Portal.AdminClient().PutAsJsonAsync($"/api/admin/users/{email}/roles", new { roles = new[] { "Operator", "Auditor" } });
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Portal.CreateClient(token).GetAsync("/api/audit")).StatusCode);

        var records = await Portal.AdminClient().GetFromJsonAsync<JsonElement>($"/api/audit?action=user.roles-changed&actor={PortalFactory.AdminEmail}");
        Assert.Contains(records.EnumerateArray(), r => r.GetProperty("target").GetString() == email);

        Assert.Equal(HttpStatusCode.NotFound, (await Portal.AdminClient().PutAsJsonAsync("/api/admin/users/nobody@portal.test/roles", new { roles = new[] { "Operator" } })).StatusCode);
    }

    [Fact]
    public async Task DisabledUser_TokenStopsWorking_UntilEnabled()
    {
        var email = UniqueEmail("disabled");
        var token = await CreateUserWithTokenAsync(email, ["Operator"]);
        Assert.Equal(HttpStatusCode.OK, (await Portal.AdminClient().PostAsync($"/api/admin/users/{email}/disable", null)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Portal.CreateClient(token).GetAsync("/api/me")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Portal.AdminClient().PostAsync($"/api/admin/users/{email}/enable", null)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Portal.CreateClient(token).GetAsync("/api/me")).StatusCode);
    }

    [Fact]
    public async Task LastAdministrator_CannotLoseTheAdminRole()
    {
        var response = await Portal.AdminClient().PutAsJsonAsync($"/api/admin/users/{PortalFactory.AdminEmail}/roles", new { roles = new[] { "Auditor" } });
        // Other test classes never add admins to this fixture's database, so the bootstrap admin is the only one.
        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
    }

    [Fact]
    public async Task SignIn_WithPassword_SetsTheCookie_AndIsAudited()
    {
        var email = UniqueEmail("person");
        await CreateUserWithTokenAsync(email, ["Operator"]);
        var browser = Portal.CreateClient(token: null);

        var response = await FormPost.SubmitAsync(browser, "/account/login?returnUrl=%2Fexecutions", "login",
            new Dictionary<string, string> { ["Input.Email"] = email, ["Input.Password"] = Password });

        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/executions", response.Headers.Location!.OriginalString.Replace("http://localhost", ""));
        var me = await browser.GetFromJsonAsync<JsonElement>("/api/me");
        Assert.Equal(email, me.GetProperty("email").GetString());

        var records = await Portal.AdminClient().GetFromJsonAsync<JsonElement>($"/api/audit?action=auth.signin&actor={Uri.EscapeDataString(email)}");
        Assert.Single(records.EnumerateArray());
    }

    [Fact]
    public async Task SignIn_LocksOutAfterConfiguredFailures_AndAuditsIt()
    {
        var email = UniqueEmail("locked");
        await CreateUserWithTokenAsync(email, ["Operator"]);
        var browser = Portal.CreateClient(token: null);
        var wrong = new Dictionary<string, string> { ["Input.Email"] = email, ["Input.Password"] = "not the password at all" };

        for (var attempt = 1; attempt < PortalFactory.MaxFailedAttempts; attempt++)
        {
            var failed = await FormPost.SubmitAsync(browser, "/account/login", "login", wrong);
            Assert.Equal(HttpStatusCode.OK, failed.StatusCode);
            Assert.Contains("Invalid email or password", await failed.Content.ReadAsStringAsync());
        }
        var locking = await FormPost.SubmitAsync(browser, "/account/login", "login", wrong);
        Assert.Contains("locked", await locking.Content.ReadAsStringAsync());

        // Even the right password is refused while locked out.
        var right = await FormPost.SubmitAsync(browser, "/account/login", "login",
            new Dictionary<string, string> { ["Input.Email"] = email, ["Input.Password"] = Password });
        Assert.Equal(HttpStatusCode.OK, right.StatusCode);
        Assert.Contains("locked", await right.Content.ReadAsStringAsync());

        var lockouts = await Portal.AdminClient().GetFromJsonAsync<JsonElement>($"/api/audit?action=auth.lockout&actor={Uri.EscapeDataString(email)}");
        Assert.Single(lockouts.EnumerateArray());
        var failures = await Portal.AdminClient().GetFromJsonAsync<JsonElement>($"/api/audit?action=auth.signin-failed&actor={Uri.EscapeDataString(email)}");
        Assert.Equal(PortalFactory.MaxFailedAttempts, failures.GetArrayLength()); // n-1 wrong passwords + 1 attempt while locked
    }

    [Fact]
    public async Task SignInPage_NeverRedirectsOffSite()
    {
        var email = UniqueEmail("redirect");
        await CreateUserWithTokenAsync(email, []);
        var response = await FormPost.SubmitAsync(Portal.CreateClient(token: null), "/account/login?returnUrl=https%3A%2F%2Fevil.example%2F", "login",
            new Dictionary<string, string> { ["Input.Email"] = email, ["Input.Password"] = Password });
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.DoesNotContain("evil", response.Headers.Location!.OriginalString);
    }

    [Fact]
    public async Task SignIn_WithAReturnUrlOfAnyCharacters_RedirectsWithoutAnError()
    {
        var email = UniqueEmail("unicode");
        await CreateUserWithTokenAsync(email, ["Operator"]);
        var response = await FormPost.SubmitAsync(Portal.CreateClient(token: null), "/account/login?returnUrl=" + Uri.EscapeDataString("/runbooks/déploiement-日本"), "login",
            new Dictionary<string, string> { ["Input.Email"] = email, ["Input.Password"] = Password });
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/runbooks/d%C3%A9ploiement-%E6%97%A5%E6%9C%AC", response.Headers.Location!.OriginalString.Replace("http://localhost", ""));
    }

    [Theory]
    [InlineData("Origin", "https://evil.example")]
    [InlineData("Origin", "http://localhost.evil.example")]
    [InlineData("Sec-Fetch-Site", "cross-site")]
    [InlineData("Sec-Fetch-Site", "same-site")]
    public async Task ACookiePost_FromAnotherSitesPage_IsRefused_ButNotTheSameSitesOrATokens(string header, string value)
    {
        var email = UniqueEmail("csrf");
        var token = await CreateUserWithTokenAsync(email, ["Author"]);
        var browser = Portal.CreateClient(token: null);
        var signedIn = await FormPost.SubmitAsync(browser, "/account/login", "login",
            new Dictionary<string, string> { ["Input.Email"] = email, ["Input.Password"] = Password });
        Assert.Equal(HttpStatusCode.Redirect, signedIn.StatusCode);
        HttpRequestMessage Import(string name, params (string Header, string Value)[] headers)
        {
            var form = new MultipartFormDataContent();
            form.Add(new StringContent($"""
                apiVersion: runbooks/v1
                name: {name}
                title: Imported
                type: maintenance
                steps:
                  - id: a
                    action: shell
                    run: echo hi
                """), "files", $"{name}.yaml");
            var request = new HttpRequestMessage(HttpMethod.Post, "/api/runbooks/import") { Content = form };
            foreach (var (h, v) in headers)
                request.Headers.TryAddWithoutValidation(h, v);
            return request;
        }

        var refused = await browser.SendAsync(Import($"csrf-{Guid.NewGuid():N}"[..20], (header, value)));
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Contains("another site", await refused.Content.ReadAsStringAsync());
        var start = new HttpRequestMessage(HttpMethod.Post, "/account/logout");
        start.Headers.TryAddWithoutValidation(header, value);
        Assert.Equal(HttpStatusCode.Forbidden, (await browser.SendAsync(start)).StatusCode); // sign-out too: no one signs you out from their page

        // The portal's own pages, and a pipeline with a token (whatever Origin it sends), pass.
        var sameSite = await browser.SendAsync(Import($"csrf-{Guid.NewGuid():N}"[..20], ("Sec-Fetch-Site", "same-origin"), ("Origin", "http://localhost")));
        Assert.Equal(HttpStatusCode.OK, sameSite.StatusCode);
        var sameOrigin = await browser.SendAsync(Import($"csrf-{Guid.NewGuid():N}"[..20], ("Origin", "http://localhost")));
        Assert.Equal(HttpStatusCode.OK, sameOrigin.StatusCode);
        var withToken = Portal.CreateClient(token);
        var tokenRequest = await withToken.SendAsync(Import($"csrf-{Guid.NewGuid():N}"[..20], (header, value)));
        Assert.Equal(HttpStatusCode.OK, tokenRequest.StatusCode);
    }

    [Fact]
    public async Task ACookieCopiedBeforeSignOut_StopsWorkingAtOnce_AndSoDoTheOtherSessions()
    {
        var email = UniqueEmail("signout");
        await CreateUserWithTokenAsync(email, ["Operator"]);
        async Task<HttpClient> SignedInAsync()
        {
            var browser = Portal.CreateClient(token: null);
            var signedIn = await FormPost.SubmitAsync(browser, "/account/login", "login",
                new Dictionary<string, string> { ["Input.Email"] = email, ["Input.Password"] = Password });
            Assert.Equal(HttpStatusCode.Redirect, signedIn.StatusCode);
            return browser;
        }
        var laptop = await SignedInAsync();
        var phone = await SignedInAsync(); // a second session — and what a cookie copied from the laptop would be
        Assert.Equal(HttpStatusCode.OK, (await laptop.GetAsync("/api/me")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await phone.GetAsync("/api/me")).StatusCode);

        Assert.Equal(HttpStatusCode.Redirect, (await laptop.PostAsync("/account/logout", null)).StatusCode);

        Assert.Equal(HttpStatusCode.Unauthorized, (await laptop.GetAsync("/api/me")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await phone.GetAsync("/api/me")).StatusCode); // signing out ends every session at once
        var again = await SignedInAsync();
        Assert.Equal(HttpStatusCode.OK, (await again.GetAsync("/api/me")).StatusCode);
    }

    [Fact]
    public async Task AuditChain_Verifies_AndNamesTheFirstAlteredRecord()
    {
        // This test alters the trail, so it runs on a portal and database of its own.
        await using var portal = new PortalFactory(Portal.Database.Provider == "Sqlite" ? TestDatabase.Sqlite() : await TestDatabase.PostgresAsync());
        var admin = portal.AdminClient();
        for (var i = 0; i < 3; i++)
            Assert.Equal(HttpStatusCode.Created, (await admin.PostAsJsonAsync("/api/admin/users", new { email = $"chain{i}@portal.test", password = Password, roles = new[] { "Operator" } })).StatusCode);

        var ok = await admin.GetFromJsonAsync<JsonElement>("/api/audit/verify");
        Assert.True(ok.GetProperty("valid").GetBoolean());
        var count = ok.GetProperty("recordsChecked").GetInt64();
        Assert.True(count >= 5, $"expected the bootstrap and three user records, got {count}");

        var victim = await portal.WithServiceAsync<PortalDbContext, long>(async db =>
        {
            var target = await db.AuditRecords.Where(r => r.Action == "user.created" && r.Target == "chain1@portal.test").Select(r => r.Seq).SingleAsync();
            await db.Database.ExecuteSqlRawAsync("UPDATE \"AuditRecords\" SET \"Actor\" = 'mallory@portal.test' WHERE \"Seq\" = {0}", target);
            return target;
        });

        var broken = await admin.GetFromJsonAsync<JsonElement>("/api/audit/verify");
        Assert.False(broken.GetProperty("valid").GetBoolean());
        Assert.Equal(victim, broken.GetProperty("firstBrokenSeq").GetInt64());
        Assert.Equal(victim - 1, broken.GetProperty("recordsChecked").GetInt64());
    }

    [Fact]
    public async Task AuditApi_FiltersAndPagesInOrder()
    {
        var email = UniqueEmail("filter");
        await CreateUserWithTokenAsync(email, ["Operator"]);
        var admin = Portal.AdminClient();

        var byTarget = await admin.GetFromJsonAsync<JsonElement>($"/api/audit?action=token.*&actor={PortalFactory.AdminEmail}");
        Assert.All(byTarget.EnumerateArray(), r => Assert.StartsWith("token.", r.GetProperty("action").GetString()));

        var first = await admin.GetFromJsonAsync<JsonElement>("/api/audit?limit=2");
        Assert.Equal(2, first.GetArrayLength());
        var lastSeq = first[1].GetProperty("seq").GetInt64();
        var next = await admin.GetFromJsonAsync<JsonElement>($"/api/audit?after={lastSeq}&limit=2");
        Assert.True(next[0].GetProperty("seq").GetInt64() > lastSeq);

        Assert.Equal(HttpStatusCode.BadRequest, (await admin.GetAsync("/api/audit?limit=0")).StatusCode);
        var csv = await admin.GetStringAsync($"/api/audit/export?actor={Uri.EscapeDataString(email)}");
        Assert.StartsWith("seq,at,actor,action,target,details,hash", csv);
    }

    [Fact]
    public async Task OpenApiDocument_DescribesTheApi()
    {
        var doc = await Portal.AdminClient().GetStringAsync("/openapi/v1.json");
        Assert.Contains("/api/admin/users", doc);
        Assert.Contains("/api/audit", doc);
        Assert.Contains("/api/approvals/{id}/approve", doc);
        Assert.Contains("/api/approvals/{id}/reject", doc);
        Assert.Contains("/api/executions/{id}/steps/{stepId}/continue", doc);
        Assert.Contains("/api/executions/{id}/steps/{stepId}/abort", doc);
    }

    protected const string Password = PortalFactory.UserPassword;

    /// <summary>Creates a user with this exact email through the admin API and gives them a fresh API token; answers the token.</summary>
    protected async Task<string> CreateUserWithTokenAsync(string email, string[] roles)
    {
        var admin = Portal.AdminClient();
        var created = await admin.PostAsJsonAsync("/api/admin/users", new { email, password = Password, roles });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var token = await admin.PostAsJsonAsync($"/api/admin/users/{email}/tokens", new { name = "test" });
        Assert.Equal(HttpStatusCode.OK, token.StatusCode);
        return (await token.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString()!;
    }
}

public sealed class SqlitePortalApiTests(SqlitePortalFixture fixture) : PortalApiTests(fixture), IClassFixture<SqlitePortalFixture>;

public sealed class PostgresPortalApiTests(PostgresPortalFixture fixture) : PortalApiTests(fixture), IClassFixture<PostgresPortalFixture>;
