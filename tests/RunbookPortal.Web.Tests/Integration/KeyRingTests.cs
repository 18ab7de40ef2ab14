using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>
/// The key ring in the database is of no use without the key file: every key in it is encrypted, the file is the portal
/// user's only, a node with another file refuses to start, and keys an earlier version stored in clear are sealed.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class KeyRingTests
{
    private static async Task<List<string>> KeyRowsAsync(PortalFactory portal) =>
        await portal.WithServiceAsync<PortalDbContext, List<string>>(db => db.DataProtectionKeys.Select(k => k.Xml!).ToListAsync());

    /// <summary>Makes the portal create its first key (it does so on its first use) and protects a value with it.</summary>
    private static Task<string> ProtectAsync(PortalFactory portal, string value) =>
        portal.WithServiceAsync<IDataProtectionProvider, string>(p => Task.FromResult(p.CreateProtector("test").Protect(value)));

    [Fact]
    public async Task TheDatabaseHoldsNoKeyInClear_AndTheKeyFileIsThePortalsOnly()
    {
        await using var database = (SqliteTestDatabase)TestDatabase.Sqlite();
        string secret;
        List<string> rows;
        await using (var portal = new PortalFactory(TestDatabase.Shared(database)))
        {
            secret = await ProtectAsync(portal, "s3cr3t");
            rows = await KeyRowsAsync(portal);
        }
        Assert.NotEmpty(rows);
        Assert.All(rows, xml =>
        {
            Assert.DoesNotContain("<masterKey", xml); // the key material is inside the encrypted part only
            Assert.Contains("EncryptedXmlDecryptor", xml);
        });
        var keyFile = Path.Combine(database.Folder, "keyring.pfx");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyFile));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(database.Folder));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(database.FilePath));

        // The next start with the same file reads what the first protected.
        await using var again = new PortalFactory(TestDatabase.Shared(database));
        Assert.Equal("s3cr3t", await again.WithServiceAsync<IDataProtectionProvider, string>(p => Task.FromResult(p.CreateProtector("test").Unprotect(secret))));
    }

    [Fact]
    public async Task ANodeWithAnotherKeyFile_RefusesToStart_SayingWhatToDo()
    {
        await using var database = (SqliteTestDatabase)TestDatabase.Sqlite();
        await using (var first = new PortalFactory(TestDatabase.Shared(database)))
            await ProtectAsync(first, "x");

        var otherFile = Path.Combine(Directory.CreateTempSubdirectory("rbp-other-key-").FullName, "keyring.pfx");
        await using var second = new PortalFactory(TestDatabase.Shared(database), new Dictionary<string, string?> { ["DataProtection:KeyFile"] = otherFile });
        var failure = Assert.ThrowsAny<Exception>(() => second.Server);
        var message = failure.GetBaseException().Message;
        Assert.Contains("encrypted with another certificate", message);
        Assert.Contains(otherFile, message);
    }

    [Fact]
    public async Task KeysAnEarlierVersionStoredInClear_AreEncryptedAtTheNextStart_AndStillWork()
    {
        await using var database = (SqliteTestDatabase)TestDatabase.Sqlite();
        // A key ring as an earlier version wrote it: no encryption at all.
        var folder = Directory.CreateTempSubdirectory("rbp-clear-ring-");
        var clear = DataProtectionProvider.Create(folder, b => b.SetApplicationName("RunbookPortal"));
        var secret = clear.CreateProtector("test").Protect("from before");
        var clearXml = await File.ReadAllTextAsync(Assert.Single(folder.GetFiles("*.xml")).FullName);
        Assert.Contains("<masterKey", clearXml);

        await using (var first = new PortalFactory(TestDatabase.Shared(database)))
        {
            await first.WithServiceAsync<PortalDbContext, int>(db =>
            {
                db.DataProtectionKeys.Add(new Microsoft.AspNetCore.DataProtection.EntityFrameworkCore.DataProtectionKey { FriendlyName = "old", Xml = clearXml });
                return db.SaveChangesAsync();
            });
        }

        await using var next = new PortalFactory(TestDatabase.Shared(database));
        _ = next.Server;
        Assert.All(await KeyRowsAsync(next), xml => Assert.DoesNotContain("<masterKey", xml));
        Assert.Contains(next.Logs, l => l.Contains("stored in clear by an earlier version"));
        Assert.Equal("from before", await next.WithServiceAsync<IDataProtectionProvider, string>(p => Task.FromResult(p.CreateProtector("test").Unprotect(secret))));
    }
}
