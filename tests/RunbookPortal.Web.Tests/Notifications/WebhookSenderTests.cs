using System.Net;
using System.Net.Sockets;
using System.Text;
using RunbookPortal.Web.Features.Notifications;

namespace RunbookPortal.Web.Tests.Notifications;

/// <summary>The webhook sender against a real local receiver (HttpListener) that checks the HMAC as a receiver would.</summary>
public sealed class WebhookSenderTests
{
    private static readonly HttpClient Client = new() { Timeout = TimeSpan.FromSeconds(30) };

    private sealed record Received(byte[] Body, string? Signature, string? Timestamp, string? ContentType);

    /// <summary>A receiver on 127.0.0.1 answering each POST with the next of <paramref name="statuses"/> (the last one repeats).</summary>
    private static (HttpListener Listener, Uri Url, List<Received> Seen, Task Loop) Receiver(params int[] statuses)
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        var seen = new List<Received>();
        var loop = Task.Run(async () =>
        {
            try
            {
                while (listener.IsListening)
                {
                    var context = await listener.GetContextAsync();
                    using var body = new MemoryStream();
                    await context.Request.InputStream.CopyToAsync(body);
                    int status;
                    lock (seen)
                    {
                        seen.Add(new(body.ToArray(), context.Request.Headers[WebhookSender.SignatureHeader], context.Request.Headers[WebhookSender.TimestampHeader], context.Request.ContentType));
                        status = statuses[Math.Min(seen.Count - 1, statuses.Length - 1)];
                    }
                    context.Response.StatusCode = status;
                    context.Response.Close();
                }
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
            }
        });
        return (listener, new Uri($"http://127.0.0.1:{port}/hooks/ops"), seen, loop);
    }

    [Fact]
    public async Task Deliver_SignsTheBodyWithTheSecret_AndSaysWhenItWasSent()
    {
        var (listener, url, seen, loop) = Receiver(204);
        var body = Encoding.UTF8.GetBytes("""{"event":"execution_failed","runbook":"web-deploy","error":"5xx & \"quotes\" ü","sentAt":1764700000}""");

        await new WebhookSender(() => Client).DeliverAsync(url, "the-webhook-secret", body, DateTimeOffset.FromUnixTimeSeconds(1764700000), CancellationToken.None);
        listener.Stop();
        await loop;

        var received = Assert.Single(seen);
        Assert.Equal(body, received.Body);
        Assert.Equal("1764700000", received.Timestamp);
        Assert.StartsWith("application/json", received.ContentType, StringComparison.Ordinal);
        Assert.True(WebhookSender.Verify("the-webhook-secret", received.Body, received.Signature));
        Assert.False(WebhookSender.Verify("another-secret", received.Body, received.Signature));
        Assert.False(WebhookSender.Verify("the-webhook-secret", [.. received.Body, (byte)' '], received.Signature));
        // The documented form, recomputed here: sha256= and the lowercase hex HMAC-SHA256 of the body.
        Assert.Equal("sha256=" + Convert.ToHexStringLower(System.Security.Cryptography.HMACSHA256.HashData("the-webhook-secret"u8.ToArray(), body)), received.Signature);
    }

    [Fact]
    public async Task AReceiverThatFails_IsARetryableError_AndA4xxIsNot()
    {
        var (listener, url, _, loop) = Receiver(503, 400);
        var sender = new WebhookSender(() => Client);

        var unavailable = await Assert.ThrowsAsync<WebhookDeliveryException>(() => sender.DeliverAsync(url, null, "{}"u8.ToArray(), DateTimeOffset.UnixEpoch, CancellationToken.None));
        var refused = await Assert.ThrowsAsync<WebhookDeliveryException>(() => sender.DeliverAsync(url, null, "{}"u8.ToArray(), DateTimeOffset.UnixEpoch, CancellationToken.None));
        listener.Stop();
        await loop;

        Assert.True(unavailable.Retryable);
        Assert.Equal($"the webhook {url} answered 503 Service Unavailable", unavailable.Message);
        Assert.False(refused.Retryable);
    }
}
