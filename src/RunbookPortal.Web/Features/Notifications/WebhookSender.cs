using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;

namespace RunbookPortal.Web.Features.Notifications;

/// <summary>
/// POSTs a notification's JSON to a webhook (<c>Notifications:Webhook:Url</c>, or a runbook's <c>notify:</c> target):
/// <list type="bullet">
/// <item><c>X-RunbookPortal-Signature: sha256=&lt;hex HMAC-SHA256 of the body with the secret&gt;</c> when a secret is set
/// (<c>Notifications:Webhook:Secret</c>);</item>
/// <item><c>X-RunbookPortal-Timestamp</c>: when it was sent, in Unix seconds. The caller puts the same instant in the
/// body (the seed's message has a sent-at field), so it is covered by the signature: a receiver refuses a body whose
/// time is not the header's or is minutes old, and so a replayed one.</item>
/// </list>
/// Any 2xx is delivered; anything else is a <see cref="WebhookDeliveryException"/> (retryable unless 4xx other than 408
/// and 429). This is the sender only: queuing and retrying deliveries durably is the caller's.
/// </summary>
public sealed class WebhookSender(Func<HttpClient> createClient)
{
    public const string SignatureHeader = "X-RunbookPortal-Signature";
    public const string TimestampHeader = "X-RunbookPortal-Timestamp";

    /// <summary><c>sha256=</c> and the lowercase hex HMAC-SHA256 of <paramref name="body"/>'s UTF-8 bytes.</summary>
    public static string Signature(string secret, byte[] body) =>
        "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body));

    /// <summary>
    /// Checks a received body against its signature header in constant time (what a receiver does; the portal's
    /// tests and its own trigger route can share it).
    /// </summary>
    public static bool Verify(string secret, byte[] body, string? signatureHeader) =>
        signatureHeader is not null && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Signature(secret, body)), Encoding.ASCII.GetBytes(signatureHeader));

    public async Task DeliverAsync(Uri url, string? secret, byte[] body, DateTimeOffset sentAt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(url);
        ArgumentNullException.ThrowIfNull(body);
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        request.Headers.TryAddWithoutValidation(TimestampHeader, sentAt.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture));
        if (!string.IsNullOrEmpty(secret))
            request.Headers.TryAddWithoutValidation(SignatureHeader, Signature(secret, body));
        HttpResponseMessage response;
        try
        {
            response = await createClient().SendAsync(request, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw new WebhookDeliveryException($"the webhook {url.GetLeftPart(UriPartial.Path)} could not be reached: {ex.Message}", retryable: true);
        }
        using (response)
        {
            if (response.IsSuccessStatusCode)
                return;
            var status = (int)response.StatusCode;
            throw new WebhookDeliveryException($"the webhook {url.GetLeftPart(UriPartial.Path)} answered {status} {response.ReasonPhrase}",
                retryable: status is >= 500 or 408 or 429);
        }
    }
}

/// <summary>A webhook did not take a notification; <see cref="Retryable"/> says whether trying later may help.</summary>
public sealed class WebhookDeliveryException(string message, bool retryable) : Exception(message)
{
    public bool Retryable { get; } = retryable;
}
