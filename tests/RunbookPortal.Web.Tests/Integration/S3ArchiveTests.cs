using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Runbooks;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>
/// Published runbook versions are copied to S3 (a real s3rver) by the background archiver; a failed upload never blocks
/// publishing, is shown, and is retried.
/// </summary>
public sealed class S3ArchiveTests(S3rverProcess s3, ITestOutputHelper output) : IClassFixture<S3rverProcess>
{
    private static readonly TimeSpan StoredWithin = TimeSpan.FromSeconds(10);
    // A refused connection is retried by the AWS SDK (with back-off) before the archiver records the failure.
    private static readonly TimeSpan FailedWithin = TimeSpan.FromSeconds(30);

    /// <summary>Non-ASCII text, so "byte for byte" also covers the UTF-8 encoding.</summary>
    private static string PublishedYaml(string name) =>
        RunbookApiTests.Yaml(name, title: "Rotate logs — café ✓", run: "echo \"Grüße 🚀\"") + "\n";

    [Fact]
    public async Task PublishedVersion_IsStoredInS3_ByteForByte()
    {
        // A long poll interval: only the approval's wake-up can make the archiver upload within the wait below.
        await using var portal = new PortalFactory(TestDatabase.Sqlite(), ArchiveSettings(s3.ServiceURL, pollInterval: "01:00:00"));
        var (author, _) = await AuthorAsync(portal, "s3-author");
        var name = NewName("archived");
        var yaml = PublishedYaml(name);

        Assert.Equal(HttpStatusCode.Created, (await author.PostAsync("/api/runbooks", YamlBody(yaml))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Act(author, name, 1, "submit")).StatusCode);
        var draftState = (await portal.AdminClient().GetFromJsonAsync<JsonElement>($"/api/runbooks/{name}")).GetProperty("versions")[0].GetProperty("archiveState").GetString();
        Assert.Equal("None", draftState); // only published versions are archived
        Assert.Equal(HttpStatusCode.OK, (await Act(portal.AdminClient(), name, 1, "approve", "Ship it.")).StatusCode);

        var version = await WaitForArchiveStateAsync(portal, name, "Stored", StoredWithin);
        Assert.Equal("Active", version.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, version.GetProperty("archiveError").ValueKind);

        var published = (await author.GetFromJsonAsync<JsonElement>($"/api/runbooks/{name}/versions/1")).GetProperty("yaml").GetString()!;
        Assert.Equal(yaml, published);
        using var client = ReadClient();
        using var stored = await client.GetObjectAsync(s3.Bucket, $"runbooks/{name}/1/runbook.yaml");
        Assert.Equal(Encoding.UTF8.GetBytes(published), await ReadAllAsync(stored.ResponseStream));
        Assert.Equal("application/yaml", stored.Headers.ContentType);
    }

    [Fact]
    public async Task FailedUpload_DoesNotBlockPublishing_IsShown_AndRetried()
    {
        // Bound but never listening: every connection to this port is refused, and nobody else can take the port meanwhile.
        using var closed = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        closed.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var deadUrl = $"http://127.0.0.1:{((IPEndPoint)closed.LocalEndPoint!).Port}";

        // A long poll interval keeps the background loop asleep after its first (failing) attempt; the test drives the retries.
        await using var portal = new PortalFactory(TestDatabase.Sqlite(), ArchiveSettings(deadUrl, pollInterval: "01:00:00"));
        var (author, _) = await AuthorAsync(portal, "s3-failing");
        var name = NewName("unarchived");
        var yaml = PublishedYaml(name);
        var key = $"runbooks/{name}/1/runbook.yaml";

        Assert.Equal(HttpStatusCode.Created, (await author.PostAsync("/api/runbooks", YamlBody(yaml))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Act(author, name, 1, "submit")).StatusCode);
        var approvalStarted = DateTime.UtcNow;
        var approved = await Act(portal.AdminClient(), name, 1, "approve");
        Assert.Equal(HttpStatusCode.OK, approved.StatusCode);
        Assert.Equal("Active", (await Json(approved)).GetProperty("summary").GetProperty("status").GetString());

        // Publishing did not wait for S3: the version is Active and the failure is reported next to it.
        var failed = await WaitForArchiveStateAsync(portal, name, "Failed", FailedWithin);
        Assert.Equal("Active", failed.GetProperty("status").GetString());
        var error = failed.GetProperty("archiveError").GetString();
        Assert.False(string.IsNullOrWhiteSpace(error));
        Assert.Contains($"s3://{s3.Bucket}/{key}", error);
        output.WriteLine($"Failed {DateTime.UtcNow - approvalStarted} after the approval started: {error}");
        var details = await author.GetFromJsonAsync<JsonElement>($"/api/runbooks/{name}");
        Assert.Equal("Active", details.GetProperty("runbook").GetProperty("status").GetString());
        Assert.Equal(1, details.GetProperty("runbook").GetProperty("activeVersion").GetInt32());

        // The runbook page shows it too.
        var page = await SignedInPageAsync(portal, $"/runbooks/{name}");
        Assert.Contains("data-testid=\"archive-failed\"", page);
        Assert.Contains("Version 1 is published but not yet archived to S3", page);
        Assert.Contains(key, page);

        var first = await ArchiveRowAsync(portal, name);
        Assert.Equal(ArchiveState.Failed, first.ArchiveState);
        Assert.Equal(1, first.ArchiveAttempts);
        Assert.NotNull(first.ArchiveNextAttemptAt);
        Assert.True(first.ArchiveNextAttemptAt > DateTime.UtcNow, "A failed upload waits before its next attempt.");
        // The failure was recorded after the approval started, so the first back-off is at most this long.
        var firstDelayAtMost = first.ArchiveNextAttemptAt!.Value - approvalStarted;

        using var s3Client = RunbookArchiver.CreateClient(Options(s3.ServiceURL), portal.Services.GetRequiredService<IHttpClientFactory>());
        using var deadClient = RunbookArchiver.CreateClient(Options(deadUrl), portal.Services.GetRequiredService<IHttpClientFactory>());
        Assert.False(await ExistsAsync(key), "Nothing may be in the bucket before a successful upload.");
        var archiver = portal.Services.GetRequiredService<RunbookArchiver>();

        // Not due yet: a pass does not touch it, even with a working S3.
        Assert.Equal(0, await archiver.ArchivePendingAsync(s3Client, CancellationToken.None));
        Assert.Equal(ArchiveState.Failed, (await ArchiveRowAsync(portal, name)).ArchiveState);
        Assert.False(await ExistsAsync(key));

        // Due and S3 still down: another failure, with a longer back-off.
        await MakeDueAsync(portal, name);
        var before = DateTime.UtcNow;
        Assert.Equal(0, await archiver.ArchivePendingAsync(deadClient, CancellationToken.None));
        var second = await ArchiveRowAsync(portal, name);
        Assert.Equal(ArchiveState.Failed, second.ArchiveState);
        Assert.Equal(2, second.ArchiveAttempts);
        var secondDelayAtLeast = second.ArchiveNextAttemptAt!.Value - DateTime.UtcNow;
        Assert.True(second.ArchiveNextAttemptAt > before);
        output.WriteLine($"First back-off at most {firstDelayAtMost}, second at least {secondDelayAtLeast} (the failing pass took {DateTime.UtcNow - before}).");
        Assert.True(secondDelayAtLeast > firstDelayAtMost, $"The back-off grows: first at most {firstDelayAtMost}, second at least {secondDelayAtLeast}.");
        Assert.False(await ExistsAsync(key));

        // Due and S3 up: stored, the error cleared, the object in the bucket byte for byte.
        await MakeDueAsync(portal, name);
        Assert.Equal(1, await archiver.ArchivePendingAsync(s3Client, CancellationToken.None));
        var stored = await WaitForArchiveStateAsync(portal, name, "Stored", StoredWithin);
        Assert.Equal(JsonValueKind.Null, stored.GetProperty("archiveError").ValueKind);
        Assert.Equal("Active", stored.GetProperty("status").GetString());
        var row = await ArchiveRowAsync(portal, name);
        Assert.Null(row.ArchiveNextAttemptAt);
        Assert.True(await ExistsAsync(key));
        using var client = ReadClient();
        using var obj = await client.GetObjectAsync(s3.Bucket, key);
        Assert.Equal(Encoding.UTF8.GetBytes(yaml), await ReadAllAsync(obj.ResponseStream));
        Assert.DoesNotContain("data-testid=\"archive-failed\"", await SignedInPageAsync(portal, $"/runbooks/{name}"));

        // Nothing is left to do: a further pass stores nothing again.
        Assert.Equal(0, await archiver.ArchivePendingAsync(s3Client, CancellationToken.None));
    }

    private Dictionary<string, string?> ArchiveSettings(string serviceUrl, string pollInterval) => new()
    {
        ["Archive:S3:Bucket"] = s3.Bucket,
        ["Archive:S3:ServiceURL"] = serviceUrl,
        ["Archive:S3:ForcePathStyle"] = "true",
        ["Archive:S3:Region"] = S3rverProcess.Region,
        ["Archive:S3:AccessKey"] = S3rverProcess.AccessKey,
        ["Archive:S3:SecretKey"] = S3rverProcess.SecretKey,
        ["Archive:S3:PollInterval"] = pollInterval,
    };

    /// <summary>Archive options for an endpoint, as configuration binding would build them for the s3rver bucket.</summary>
    private S3ArchiveOptions Options(string serviceUrl) => new()
    {
        Bucket = s3.Bucket,
        ServiceURL = serviceUrl,
        ForcePathStyle = true,
        Region = S3rverProcess.Region,
        AccessKey = S3rverProcess.AccessKey,
        SecretKey = S3rverProcess.SecretKey,
    };

    /// <summary>A client of the test's own (not the product's) for reading the bucket.</summary>
    private AmazonS3Client ReadClient() => new(
        new BasicAWSCredentials(S3rverProcess.AccessKey, S3rverProcess.SecretKey),
        new AmazonS3Config { ServiceURL = s3.ServiceURL, ForcePathStyle = true, AuthenticationRegion = S3rverProcess.Region });

    private async Task<bool> ExistsAsync(string key)
    {
        using var client = ReadClient();
        var listed = await client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = s3.Bucket, Prefix = key });
        return (listed.S3Objects ?? []).Any(o => o.Key == key);
    }

    private static async Task<byte[]> ReadAllAsync(Stream stream)
    {
        using var buffer = new MemoryStream();
        await stream.CopyToAsync(buffer);
        return buffer.ToArray();
    }

    /// <summary>Polls the API (every 50 ms, bounded) until version 1 reaches the archive state; answers that version.</summary>
    private static async Task<JsonElement> WaitForArchiveStateAsync(PortalFactory portal, string name, string state, TimeSpan within)
    {
        var client = portal.AdminClient();
        var waited = Stopwatch.StartNew();
        JsonElement last;
        while (true)
        {
            last = (await client.GetFromJsonAsync<JsonElement>($"/api/runbooks/{name}")).GetProperty("versions")[0];
            if (last.GetProperty("archiveState").GetString() == state)
                return last;
            if (waited.Elapsed > within)
                break;
            await Task.Delay(50);
        }
        var logs = string.Join("\n", portal.Logs.Where(l => l.Contains("RunbookArchiver")));
        throw new Xunit.Sdk.XunitException($"Version 1 of {name} did not become {state} within {within.TotalSeconds} s; last seen: {last}\nArchiver logs:\n{logs}");
    }

    private sealed record ArchiveRow(ArchiveState ArchiveState, string? ArchiveError, int ArchiveAttempts, DateTime? ArchiveNextAttemptAt);

    private static Task<ArchiveRow> ArchiveRowAsync(PortalFactory portal, string name) =>
        portal.WithServiceAsync<PortalDbContext, ArchiveRow>(db => db.RunbookVersions.AsNoTracking()
            .Where(v => v.Runbook!.Name == name && v.Version == 1)
            .Select(v => new ArchiveRow(v.ArchiveState, v.ArchiveError, v.ArchiveAttempts, v.ArchiveNextAttemptAt))
            .SingleAsync());

    /// <summary>Moves the next attempt of version 1 into the past, as if its back-off had elapsed.</summary>
    private static async Task MakeDueAsync(PortalFactory portal, string name)
    {
        var updated = await portal.WithServiceAsync<PortalDbContext, int>(async db =>
        {
            var version = await db.RunbookVersions.SingleAsync(v => v.Runbook!.Name == name && v.Version == 1);
            Assert.Equal(ArchiveState.Failed, version.ArchiveState);
            version.ArchiveNextAttemptAt = DateTime.UtcNow.AddMinutes(-1);
            return await db.SaveChangesAsync();
        });
        Assert.Equal(1, updated);
    }

    private static async Task<string> SignedInPageAsync(PortalFactory portal, string path)
    {
        var browser = portal.CreateClient(token: null);
        var signIn = await FormPost.SubmitAsync(browser, "/account/login", "login",
            new Dictionary<string, string> { ["Input.Email"] = PortalFactory.AdminEmail, ["Input.Password"] = PortalFactory.AdminPassword });
        Assert.Equal(HttpStatusCode.Redirect, signIn.StatusCode);
        var page = await browser.GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        return await page.Content.ReadAsStringAsync();
    }

    private static string NewName(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..30];

    private static StringContent YamlBody(string yaml) => new(yaml, Encoding.UTF8, "application/yaml");

    private static async Task<JsonElement> Json(HttpResponseMessage response) => await response.Content.ReadFromJsonAsync<JsonElement>();

    private static Task<HttpResponseMessage> Act(HttpClient client, string name, int version, string action, string? comment = null) =>
        client.PostAsJsonAsync($"/api/runbooks/{name}/versions/{version}/{action}", new { comment });

    private static async Task<(HttpClient Client, string Email)> AuthorAsync(PortalFactory portal, string who)
    {
        var email = $"{who}-{Guid.NewGuid():N}"[..24] + "@portal.test";
        var admin = portal.AdminClient();
        Assert.Equal(HttpStatusCode.Created, (await admin.PostAsJsonAsync("/api/admin/users", new { email, password = "a long enough password", roles = new[] { "Author" } })).StatusCode);
        var token = await admin.PostAsJsonAsync($"/api/admin/users/{email}/tokens", new { name = "t" });
        return (portal.CreateClient((await Json(token)).GetProperty("token").GetString()), email);
    }
}

/// <summary>The archiver's S3 client, which lives as long as the archiver, takes its HTTP clients from IHttpClientFactory.</summary>
public sealed class S3ArchiveClientTests
{
    [Fact]
    public async Task EveryS3Request_TakesANewClientOfTheArchiveFromTheFactory()
    {
        var factory = new RecordingFactory();
        using var s3 = RunbookArchiver.CreateClient(new S3ArchiveOptions
        {
            Bucket = "runbooks",
            ServiceURL = "http://s3.example.invalid",
            ForcePathStyle = true,
            AccessKey = "key",
            SecretKey = "secret",
        }, factory);

        foreach (var key in new[] { "one", "two" })
            await s3.PutObjectAsync(new PutObjectRequest { BucketName = "runbooks", Key = key, ContentBody = key, UseChunkEncoding = false });

        // The host does not exist: both requests were answered by the factory's client, one client each.
        Assert.Equal(["/runbooks/one", "/runbooks/two"], factory.Paths);
        Assert.Equal([RunbookArchiver.HttpClientName, RunbookArchiver.HttpClientName], factory.Names);
    }

    private sealed class RecordingFactory : IHttpClientFactory
    {
        public List<string> Names { get; } = [];
        public List<string> Paths { get; } = [];

        public HttpClient CreateClient(string name)
        {
            lock (Names)
                Names.Add(name);
            return new HttpClient(new Answering(Paths));
        }
    }

    private sealed class Answering(List<string> paths) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            lock (paths)
                paths.Add(request.RequestUri!.AbsolutePath);
            var answer = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent([]) };
            answer.Headers.ETag = new System.Net.Http.Headers.EntityTagHeaderValue("\"etag\"");
            return Task.FromResult(answer);
        }
    }
}
