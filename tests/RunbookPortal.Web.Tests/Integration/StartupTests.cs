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

    // The refusals run the real portal process: what a person sees is its exit code and the line it prints.
    private static readonly TimeSpan RefusalTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task DatabaseNewerThanTheCode_IsRefusedWithAClearMessage()
    {
        var database = (SqliteTestDatabase)TestDatabase.Sqlite();
        await using var owner = database;
        await using (var first = new PortalFactory(TestDatabase.Shared(database)))
        {
            _ = first.Server;
        }
        await using (var conn = new SqliteConnection($"Data Source={database.FilePath};Pooling=false"))
        {
            await conn.OpenAsync();
            await using var cmd = conn.CreateCommand();
            cmd.CommandText = "INSERT INTO __EFMigrationsHistory (MigrationId, ProductVersion) VALUES ('29991231000000_FromTheFuture', '99.0.0'); PRAGMA wal_checkpoint(TRUNCATE);";
            await cmd.ExecuteNonQueryAsync();
        }

        var (exitCode, output) = await PortalNodeProcess.RunUntilExitAsync(new Dictionary<string, string>
        {
            ["Database:Provider"] = "Sqlite",
            ["Database:DataDirectory"] = database.Folder,
        }, RefusalTimeout);

        Assert.Equal(1, exitCode);
        Assert.Contains("RunbookPortal cannot start:", output);
        Assert.Contains("newer than this version", output);
        Assert.Contains("29991231000000_FromTheFuture", output);
    }

    [Fact]
    public async Task UnreachablePostgres_IsRefusedWithAClearMessage()
    {
        var (exitCode, output) = await PortalNodeProcess.RunUntilExitAsync(new Dictionary<string, string>
        {
            ["Database:Provider"] = "Postgres",
            ["ConnectionStrings:Postgres"] = "Host=127.0.0.1;Port=1;Database=nowhere;Username=x;Password=secret-pw;Timeout=2",
        }, RefusalTimeout);

        Assert.Equal(1, exitCode);
        Assert.Contains("RunbookPortal cannot start: Cannot reach the Postgres database at '127.0.0.1:1/nowhere'", output);
        Assert.DoesNotContain("secret-pw", output);
    }

    [Fact]
    public async Task ALeaseTooShortToStopAStepIn_IsRefused()
    {
        var folder = Directory.CreateTempSubdirectory("rbp-refuse-").FullName;
        try
        {
            var (exitCode, output) = await PortalNodeProcess.RunUntilExitAsync(new Dictionary<string, string>
            {
                ["Database:DataDirectory"] = folder,
                ["Engine:LeaseDuration"] = "00:00:10",
                ["Engine:KillGrace"] = "00:00:06",
            }, RefusalTimeout);

            Assert.Equal(1, exitCode);
            Assert.Contains("RunbookPortal cannot start: Engine:LeaseDuration (00:00:10) must be at least twice Engine:KillGrace (00:00:06)", output);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task ShortBootstrapToken_IsRefused()
    {
        var folder = Directory.CreateTempSubdirectory("rbp-refuse-").FullName;
        try
        {
            var (exitCode, output) = await PortalNodeProcess.RunUntilExitAsync(new Dictionary<string, string>
            {
                ["Database:DataDirectory"] = folder,
                ["Bootstrap:AdminEmail"] = "admin@portal.test",
                ["Bootstrap:AdminPassword"] = "a long enough password",
                ["Bootstrap:ApiToken"] = "too-short",
            }, RefusalTimeout);

            Assert.Equal(1, exitCode);
            Assert.Contains("RunbookPortal cannot start: Bootstrap:ApiToken must be at least 32 characters long.", output);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(folder, recursive: true);
        }
    }

    public static TheoryData<string, string, string> BadEngineSettings => new()
    {
        { "Engine:MaxOutputBytesPerStep", "0", "Engine:MaxOutputBytesPerStep is '0'; it must be from 1024 to 67108864." },
        { "Engine:MaxOutputBytesPerStep", "1073741824", "Engine:MaxOutputBytesPerStep is '1073741824'; it must be from 1024 to 67108864." },
        { "Engine:MaxOutputBytesPerStep", "99999999999", "Failed to convert configuration value '99999999999' at 'Engine:MaxOutputBytesPerStep' to type 'System.Int32'." },
        { "Engine:RetryJitterFraction", "2", "Engine:RetryJitterFraction is '2'; it must be from 0 to 1." },
        { "Engine:MaxRetryDelay", "-00:00:05", "Engine:MaxRetryDelay is '-00:00:05'; it must be from 00:00:01 to 1.00:00:00." },
        { "Engine:DefaultStepTimeout", "0", "Engine:DefaultStepTimeout is '0'; it must be from 00:00:01 to 7.00:00:00." },
        { "Engine:DefaultStepTimeout", "3650.00:00:00", "Engine:DefaultStepTimeout is '3650.00:00:00'; it must be from 00:00:01 to 7.00:00:00." },
        { "Engine:RegexTimeout", "00:00:00", "Engine:RegexTimeout is '00:00:00'; it must be from 00:00:00.010 to 00:01:00." },
        { "Engine:KillGrace", "ten seconds", "Failed to convert configuration value 'ten seconds' at 'Engine:KillGrace' to type 'System.TimeSpan'." },
        { "Engine:KillGrace", "-00:00:10", "Engine:KillGrace is '-00:00:10'; it must be from 00:00:01 to 00:10:00." },
        { "Engine:LeaseDuration", "00:00:00", "Engine:LeaseDuration is '00:00:00'; it must be from 00:00:01 to 01:00:00." },
        { "Engine:PollInterval", "00:00:00.001", "Engine:PollInterval is '00:00:00.001'; it must be from 00:00:00.050 to 00:05:00." },
        { "Engine:ShutdownGrace", "-00:00:01", "Engine:ShutdownGrace is '-00:00:01'; it must be from 00:00:00 to 01:00:00." },
        { "Engine:MaxConcurrentExecutions", "0", "Engine:MaxConcurrentExecutions is '0'; it must be from 1 to 1000." },
    };

    [Theory]
    [MemberData(nameof(BadEngineSettings))]
    public async Task AnEngineSettingOfTheWrongTypeOrOutOfRange_IsRefused_NamingTheSetting(string setting, string value, string message)
    {
        await using var portal = new PortalFactory(TestDatabase.Sqlite(), new Dictionary<string, string?> { [setting] = value });

        var refused = Assert.Throws<StartupException>(() => portal.Server);

        Assert.StartsWith(message, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnEngineSettingOutOfRange_StopsThePortalProcess_WithOneLineAndNoStackTrace()
    {
        var folder = Directory.CreateTempSubdirectory("rbp-refuse-").FullName;
        try
        {
            var (exitCode, output) = await PortalNodeProcess.RunUntilExitAsync(new Dictionary<string, string>
            {
                ["Database:DataDirectory"] = folder,
                ["Engine:MaxRetryDelay"] = "00:00:00",
            }, RefusalTimeout);

            Assert.Equal(1, exitCode);
            Assert.Equal("RunbookPortal cannot start: Engine:MaxRetryDelay is '00:00:00'; it must be from 00:00:01 to 1.00:00:00.", output.Trim());
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(folder, recursive: true);
        }
    }
}
