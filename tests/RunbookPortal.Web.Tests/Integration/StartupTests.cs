using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>First run without bootstrap settings, and the start-up refusals.</summary>
public sealed class StartupTests
{
    private static readonly Dictionary<string, string?> NoBootstrap = new()
    {
        ["Bootstrap:AdminEmail"] = "",
        ["Bootstrap:AdminPassword"] = "",
        ["Bootstrap:ApiToken"] = "",
    };

    [Fact]
    public async Task WithoutUsersOrBootstrap_SetupPageCreatesTheFirstAdmin_ThenDisappears()
    {
        await using var portal = new PortalFactory(TestDatabase.Sqlite(), NoBootstrap);
        var browser = portal.CreateClient(token: null);

        var login = await browser.GetAsync("/account/login");
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        Assert.Equal("/account/setup", login.Headers.Location!.OriginalString.Replace("http://localhost", ""));

        var mismatch = await FormPost.SubmitAsync(browser, "/account/setup", "setup", new Dictionary<string, string>
        {
            ["Input.Email"] = "first@portal.test", ["Input.Password"] = "a long enough password", ["Input.ConfirmPassword"] = "something else entirely",
        });
        Assert.Contains("The two passwords differ.", await mismatch.Content.ReadAsStringAsync());

        var weak = await FormPost.SubmitAsync(browser, "/account/setup", "setup", new Dictionary<string, string>
        {
            ["Input.Email"] = "first@portal.test", ["Input.Password"] = "tiny-pw9", ["Input.ConfirmPassword"] = "tiny-pw9",
        });
        var weakPage = await weak.Content.ReadAsStringAsync();
        Assert.Contains("at least 12 characters", weakPage);
        Assert.DoesNotContain("tiny-pw9", weakPage); // a refused password is not echoed back

        var created = await FormPost.SubmitAsync(browser, "/account/setup", "setup", new Dictionary<string, string>
        {
            ["Input.Email"] = "first@portal.test", ["Input.Password"] = "a long enough password", ["Input.ConfirmPassword"] = "a long enough password",
        });
        Assert.Equal(HttpStatusCode.Redirect, created.StatusCode);
        var me = await browser.GetFromJsonAsync<JsonElement>("/api/me");
        Assert.Equal("first@portal.test", me.GetProperty("email").GetString());
        Assert.Contains("Admin", me.GetProperty("roles").EnumerateArray().Select(r => r.GetString()));

        var again = await portal.CreateClient(token: null).GetAsync("/account/setup");
        Assert.Equal(HttpStatusCode.Redirect, again.StatusCode);
        Assert.StartsWith("/account/login", again.Headers.Location!.OriginalString.Replace("http://localhost", ""));
    }

    [Fact]
    public async Task DatabaseNewerThanTheCode_IsRefusedWithAClearMessage()
    {
        var database = (SqliteTestDatabase)TestDatabase.Sqlite();
        var reopened = (SqliteTestDatabase)TestDatabase.Sqlite();
        await using (var first = new PortalFactory(database))
        {
            _ = first.Server;
            await using var conn = new SqliteConnection($"Data Source={database.FilePath};Pooling=false");
            await conn.OpenAsync();
            await using var cmd = conn.CreateCommand();
            cmd.CommandText = "INSERT INTO __EFMigrationsHistory (MigrationId, ProductVersion) VALUES ('29991231000000_FromTheFuture', '99.0.0'); PRAGMA wal_checkpoint(TRUNCATE);";
            await cmd.ExecuteNonQueryAsync();
            File.Copy(database.FilePath, reopened.FilePath);
        }

        await using var second = new PortalFactory(reopened);
        var error = Assert.ThrowsAny<Exception>(() => second.Server);
        var startup = FindStartupException(error);
        Assert.Contains("newer than this version", startup.Message);
        Assert.Contains("29991231000000_FromTheFuture", startup.Message);
    }

    [Fact]
    public async Task UnreachablePostgres_IsRefusedWithAClearMessage()
    {
        var database = await TestDatabase.PostgresAsync();
        await using var portal = new PortalFactory(database, new Dictionary<string, string?>
        {
            ["ConnectionStrings:Postgres"] = "Host=127.0.0.1;Port=1;Database=nowhere;Username=x;Password=secret-pw;Timeout=2",
        });
        var startup = FindStartupException(Assert.ThrowsAny<Exception>(() => portal.Server));
        Assert.Contains("Cannot", startup.Message);
        Assert.Contains("127.0.0.1", startup.Message);
        Assert.DoesNotContain("secret-pw", startup.Message);
    }

    [Fact]
    public async Task ShortBootstrapToken_IsRefused()
    {
        await using var portal = new PortalFactory(TestDatabase.Sqlite(), new Dictionary<string, string?> { ["Bootstrap:ApiToken"] = "too-short" });
        var startup = FindStartupException(Assert.ThrowsAny<Exception>(() => portal.Server));
        Assert.Contains("at least 32 characters", startup.Message);
    }

    private static StartupException FindStartupException(Exception error)
    {
        for (Exception? e = error; e is not null; e = e.InnerException)
        {
            if (e is StartupException s)
                return s;
            if (e is AggregateException agg && agg.InnerExceptions.OfType<StartupException>().FirstOrDefault() is { } inner)
                return inner;
        }
        throw new Xunit.Sdk.XunitException($"Expected a StartupException, got: {error}");
    }
}
