using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using RunbookPortal.Web.Data;

namespace RunbookPortal.Web.Features.Runbooks;

/// <summary>Section "Archive:S3": where published runbook versions are copied. Off while Bucket is empty.</summary>
public sealed class S3ArchiveOptions
{
    public const string Section = "Archive:S3";
    public string? Bucket { get; set; }
    public string? ServiceURL { get; set; }
    public bool ForcePathStyle { get; set; }
    public string Region { get; set; } = "us-east-1";
    public string? AccessKey { get; set; }
    public string? SecretKey { get; set; }
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(30);

    public bool Enabled => !string.IsNullOrWhiteSpace(Bucket);

    public static string KeyFor(string name, int version) => $"runbooks/{name}/{version}/runbook.yaml";
}

/// <summary>Marks published versions for archiving and wakes the archiver; publishing never waits for S3.</summary>
public sealed class RunbookArchiveQueue(IOptions<S3ArchiveOptions> options)
{
    private readonly SemaphoreSlim _signal = new(0);

    public bool Enabled => options.Value.Enabled;

    public void MarkPending(RunbookVersion version)
    {
        if (!Enabled)
            return;
        version.ArchiveState = ArchiveState.Pending;
        version.ArchiveError = null;
        version.ArchiveNextAttemptAt = null;
    }

    public void Notify()
    {
        if (Enabled && _signal.CurrentCount == 0)
            _signal.Release();
    }

    internal Task<bool> WaitAsync(TimeSpan timeout, CancellationToken ct) => _signal.WaitAsync(timeout, ct);
}

/// <summary>
/// Uploads pending versions to runbooks/{name}/{version}/runbook.yaml; a failure is recorded on the version
/// (shown on the runbook page) and retried with growing delays.
/// </summary>
public sealed class RunbookArchiver(
    IServiceScopeFactory scopes,
    RunbookArchiveQueue queue,
    IOptions<S3ArchiveOptions> options,
    IHttpClientFactory httpClients,
    TimeProvider time,
    ILogger<RunbookArchiver> logger) : BackgroundService
{
    /// <summary>The <c>IHttpClientFactory</c> client of the S3 archive.</summary>
    public const string HttpClientName = "s3-archive";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Value.Enabled)
            return;
        using var s3 = CreateClient(options.Value, httpClients);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await ArchivePendingAsync(s3, stoppingToken);
                await queue.WaitAsync(options.Value.PollInterval, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                logger.LogError(ex, "The runbook archiver failed; it tries again shortly.");
                await Task.Delay(TimeSpan.FromSeconds(5), time, stoppingToken);
            }
        }
    }

    /// <summary>One pass over everything due; answers how many versions were stored.</summary>
    internal async Task<int> ArchivePendingAsync(IAmazonS3 s3, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var now = time.GetUtcNow().UtcDateTime;
        var due = await db.RunbookVersions.Include(v => v.Runbook)
            .Where(v => v.ArchiveState == ArchiveState.Pending || (v.ArchiveState == ArchiveState.Failed && v.ArchiveNextAttemptAt <= now))
            .OrderBy(v => v.PublishedAt).Take(50).ToListAsync(ct);
        var stored = 0;
        foreach (var version in due)
        {
            var key = S3ArchiveOptions.KeyFor(version.Runbook!.Name, version.Version);
            try
            {
                await s3.PutObjectAsync(new PutObjectRequest
                {
                    BucketName = options.Value.Bucket,
                    Key = key,
                    ContentBody = version.Yaml,
                    ContentType = "application/yaml",
                    UseChunkEncoding = false,
                }, ct);
                version.ArchiveState = ArchiveState.Stored;
                version.ArchiveError = null;
                version.ArchiveNextAttemptAt = null;
                stored++;
                logger.LogInformation("Archived {Runbook} v{Version} to s3://{Bucket}/{Key}", version.Runbook.Name, version.Version, options.Value.Bucket, key);
            }
            // Whatever went wrong with this version (credentials, network, the bucket) is recorded on it and retried.
            catch (Exception ex) when (!ct.IsCancellationRequested)
            {
                version.ArchiveAttempts++;
                version.ArchiveState = ArchiveState.Failed;
                version.ArchiveError = $"Upload to s3://{options.Value.Bucket}/{key} failed: {ex.GetBaseException().Message}";
                var delay = TimeSpan.FromSeconds(Math.Min(600, 5 * Math.Pow(2, Math.Min(version.ArchiveAttempts, 7))));
                version.ArchiveNextAttemptAt = time.GetUtcNow().UtcDateTime + delay;
                logger.LogWarning("Archiving {Runbook} v{Version} failed (attempt {Attempt}); next try in {Delay}: {Error}", version.Runbook.Name, version.Version, version.ArchiveAttempts, delay, ex.GetBaseException().Message);
            }
            await db.SaveChangesAsync(ct);
        }
        return stored;
    }

    /// <summary>
    /// An S3 client that lives as long as the archiver, and takes an HTTP client from <paramref name="httpClients"/> for
    /// every request (<see cref="FactoryClients"/>) rather than keeping the SDK's own for ever.
    /// </summary>
    public static IAmazonS3 CreateClient(S3ArchiveOptions o, IHttpClientFactory httpClients)
    {
        var config = new AmazonS3Config
        {
            ForcePathStyle = o.ForcePathStyle,
            AuthenticationRegion = o.Region,
            HttpClientFactory = new FactoryClients(httpClients),
        };
        if (!string.IsNullOrWhiteSpace(o.ServiceURL))
            config.ServiceURL = o.ServiceURL;
        else
            config.RegionEndpoint = Amazon.RegionEndpoint.GetBySystemName(o.Region);
        return string.IsNullOrEmpty(o.AccessKey)
            ? new AmazonS3Client(config)
            : new AmazonS3Client(new BasicAWSCredentials(o.AccessKey, o.SecretKey), config);
    }

    /// <summary>
    /// The AWS SDK's hook for HTTP clients, handing out <see cref="HttpClientName"/> clients of <c>IHttpClientFactory</c>:
    /// one per request, not cached by the SDK, so the factory's pooled handlers are renewed (a DNS change is seen).
    /// </summary>
    private sealed class FactoryClients(IHttpClientFactory httpClients) : Amazon.Runtime.HttpClientFactory
    {
        public override HttpClient CreateHttpClient(IClientConfig clientConfig)
        {
            var client = httpClients.CreateClient(HttpClientName);
            if (clientConfig.Timeout is { } timeout)
                client.Timeout = timeout;
            return client;
        }

        public override bool UseSDKHttpClientCaching(IClientConfig clientConfig) => false;

        /// <summary>Disposing a factory's client leaves its pooled handler alone.</summary>
        public override bool DisposeHttpClientsAfterUse(IClientConfig clientConfig) => true;
    }
}
