using System.Text.Json;
using RunbookPortal.Engine.Execution.Steps;
using RunbookPortal.Web.Tests.Infrastructure;
using static RunbookPortal.Web.Tests.Integration.ExecutionApiTests;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>
/// Engine:RunAs: shell steps run as another user, who can read neither the portal's environment nor its database
/// (which holds the key ring). tests/scripts/test.sh creates that user (rbp-step) when it runs as root, as CI does,
/// and names it in RBP_TEST_RUNAS; not as root, the portal must refuse the setting at start.
/// </summary>
public sealed class RunAsTests
{
    private static string? User => Environment.GetEnvironmentVariable("RBP_TEST_RUNAS") is { Length: > 0 } user ? user : null;

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task AsAnotherUser_AStepCannotReadThePortalsEnvironmentOrDatabase_ButWorksInItsOwnFolderWithItsOwnHome()
    {
        if (!UnixAccount.CanSwitchUser)
        {
            await NotAsRoot_RunAsIsRefusedAtStartAsync();
            return;
        }
        var user = User ?? throw new Xunit.Sdk.XunitException("Running as root, the tests need a throwaway user named in RBP_TEST_RUNAS (tests/scripts/test.sh creates rbp-step).");
        var account = UnixAccount.Find(user) ?? throw new Xunit.Sdk.XunitException($"RBP_TEST_RUNAS names '{user}', and there is no such user.");

        var database = (SqliteTestDatabase)TestDatabase.Sqlite();
        await using var portal = new PortalFactory(database, new Dictionary<string, string?>(EngineSettings.Fast) { ["Engine:RunAs"] = user });
        var admin = portal.AdminClient();
        const string Name = "run-as-check";
        await PublishAsync(portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{Name}}}
            title: What a step can reach
            type: maintenance
            parameters:
              database: { type: string, required: true }
            steps:
              - id: reach
                action: shell
                run: |
                  echo "user=$(id -un) home=$HOME"
                  if cat /proc/$PPID/environ >/dev/null 2>&1; then echo "environ: read"; else echo "environ: refused"; fi
                  if tr '\0' '\n' < /proc/$PPID/environ 2>/dev/null | grep -q Bootstrap; then echo "bootstrap: seen"; else echo "bootstrap: unseen"; fi
                  if head -c 16 {{ database }} >/dev/null 2>&1; then echo "database: read"; else echo "database: refused"; fi
                  if ls "$(dirname {{ database }})" >/dev/null 2>&1; then echo "data folder: listed"; else echo "data folder: refused"; fi
                  touch made-here && echo "own folder: writable"
                  if ls "$(dirname "$0")" >/dev/null 2>&1; then echo "other scripts: listed"; else echo "other scripts: refused"; fi
            """, Name);

        var id = await StartAsync(admin, Name, new { database = database.FilePath });
        var done = await WaitForEndAsync(admin, id);
        var output = string.Join("\n", (await EventsAsync(admin, id))
            .Where(e => e.GetProperty("kind").GetString() == "step_output" && e.GetProperty("data").GetProperty("stream").GetString() == "stdout")
            .Select(e => e.GetProperty("data").GetProperty("text").GetString()));
        Assert.True(done.GetProperty("status").GetString() == "Succeeded", output);
        Assert.Equal(string.Join("\n",
            $"user={user} home={account.Home}",
            "environ: refused",
            "bootstrap: unseen",
            "database: refused",
            "data folder: refused",
            "own folder: writable",
            "other scripts: refused"), output);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(database.FilePath));
    }

    /// <summary>Not root, the portal cannot switch user: it says so and does not start, rather than run steps as itself.</summary>
    private static async Task NotAsRoot_RunAsIsRefusedAtStartAsync()
    {
        var folder = Directory.CreateTempSubdirectory("rbp-runas-").FullName;
        try
        {
            var (exitCode, output) = await PortalNodeProcess.RunUntilExitAsync(new Dictionary<string, string>
            {
                ["Database:DataDirectory"] = folder,
                ["Engine:RunAs"] = Environment.UserName == "nobody" ? "root" : "nobody",
            }, TimeSpan.FromSeconds(60));

            Assert.Equal(1, exitCode);
            Assert.Contains("RunbookPortal cannot start: Engine:RunAs is", output, StringComparison.Ordinal);
            Assert.Contains("the portal does not run as root", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
