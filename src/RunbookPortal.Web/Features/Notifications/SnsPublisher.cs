using System.Net;
using System.Text;
using System.Xml.Linq;
using Amazon.Runtime.Signing;
using RunbookPortal.Engine.Execution.Steps.Aws;

namespace RunbookPortal.Web.Features.Notifications;

/// <summary>
/// Publishes to an SNS topic without AWSSDK.SimpleNotificationService (not served here): SNS's query protocol — a form
/// POST <c>Action=Publish&amp;Version=2010-03-31&amp;TopicArn=…&amp;Subject=…&amp;Message=…</c> — signed with SigV4 for the service
/// <c>sns</c> in the topic's region (from its ARN), over a client of the host's <c>IHttpClientFactory</c>.
/// Throttling is tried again with backoff and jitter; any other refusal is a <see cref="SnsPublishException"/> saying
/// what SNS said. This is the sender only: queuing and retrying deliveries durably is the caller's.
/// </summary>
public sealed class SnsPublisher(Func<HttpClient> createClient, AwsStepSettings settings, TimeProvider? time = null)
{
    /// <summary>SNS takes a subject of at most 100 printable ASCII characters, on one line.</summary>
    public const int MaxSubjectLength = 100;

    private static readonly XNamespace Sns = "http://sns.amazonaws.com/doc/2010-03-31/";
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>Publishes <paramref name="message"/>; answers SNS's MessageId.</summary>
    public async Task<string> PublishAsync(string topicArn, string subject, string message, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(topicArn);
        ArgumentNullException.ThrowIfNull(message);
        var region = RegionOf(topicArn) ?? settings.Region;
        var form = new Dictionary<string, string>
        {
            ["Action"] = "Publish",
            ["Version"] = "2010-03-31",
            ["TopicArn"] = topicArn,
            ["Message"] = message,
        };
        if (Subject(subject) is { Length: > 0 } cleaned)
            form["Subject"] = cleaned;
        var body = await new FormUrlEncodedContent(form).ReadAsByteArrayAsync(cancellationToken);
        var uri = settings.SnsUrl(region);

        for (var retry = 0; ; retry++)
        {
            var (credentials, problem) = await settings.ResolveCredentialsAsync();
            if (credentials is null)
                throw new SnsPublishException(problem!, retryable: true);
            using var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new ByteArrayContent(body) };
            request.Content.Headers.TryAddWithoutValidation("Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
            var signed = await AWSSigV4Signer.SignAsync(
                new AWSSigningRequest
                {
                    HttpMethod = HttpMethod.Post,
                    RequestUri = uri,
                    Content = body,
                    Headers = { ["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8" },
                },
                new AWSSigV4Parameters { Credentials = credentials, Region = Amazon.RegionEndpoint.GetBySystemName(region), Service = "sns" },
                cancellationToken);
            foreach (var header in signed.Headers)
            {
                if (!request.Headers.TryAddWithoutValidation(header.Key, header.Value))
                    request.Content.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }

            using var response = await createClient().SendAsync(request, cancellationToken);
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            if (response.IsSuccessStatusCode)
            {
                var id = TryParse(text)?.Descendants(Sns + "MessageId").FirstOrDefault()?.Value;
                return id ?? throw new SnsPublishException($"SNS answered {(int)response.StatusCode} without a MessageId", retryable: true);
            }
            var error = TryParse(text)?.Descendants(Sns + "Error").FirstOrDefault();
            var code = error?.Element(Sns + "Code")?.Value;
            var said = error?.Element(Sns + "Message")?.Value;
            if (AwsStepSettings.IsThrottling(response.StatusCode, code) && retry < settings.ThrottleRetries)
            {
                await Task.Delay(settings.ThrottleDelay(retry + 1, response.Headers.RetryAfter?.Delta), _time, cancellationToken);
                continue;
            }
            var detail = $"{code ?? ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture)}{(said is null ? "" : ": " + said)}";
            throw code switch
            {
                _ when AwsStepSettings.IsCredentialError(code) => new SnsPublishException(AwsStepSettings.CredentialProblem("SNS", code!, said), retryable: true),
                "NotFound" => new SnsPublishException($"the SNS topic {topicArn} does not exist ({detail})", retryable: false),
                "AuthorizationError" => new SnsPublishException($"the portal's AWS identity may not publish to {topicArn} ({detail})", retryable: false),
                _ => new SnsPublishException($"SNS refused the message for {topicArn}: HTTP {(int)response.StatusCode} {detail}",
                    retryable: response.StatusCode >= HttpStatusCode.InternalServerError || AwsStepSettings.IsThrottling(response.StatusCode, code)),
            };
        }
    }

    /// <summary>One line of printable ASCII, at most <see cref="MaxSubjectLength"/> characters (SNS refuses anything else).</summary>
    public static string Subject(string? subject)
    {
        var builder = new StringBuilder();
        foreach (var c in subject ?? "")
            builder.Append(c is >= ' ' and <= '~' ? c : c is '\r' or '\n' or '\t' ? ' ' : '?');
        var text = builder.ToString().Trim();
        return text.Length <= MaxSubjectLength ? text : text[..(MaxSubjectLength - 1)] + "~";
    }

    /// <summary>The region of <c>arn:aws:sns:REGION:ACCOUNT:NAME</c>.</summary>
    private static string? RegionOf(string topicArn)
    {
        var parts = topicArn.Split(':');
        return parts.Length >= 6 && parts[0] == "arn" && parts[2] == "sns" && parts[3].Length > 0 ? parts[3] : null;
    }

    private static XDocument? TryParse(string text)
    {
        try
        {
            return XDocument.Parse(text);
        }
        catch (System.Xml.XmlException)
        {
            return null;
        }
    }
}

/// <summary>SNS did not take a message; <see cref="Retryable"/> says whether trying later may help.</summary>
public sealed class SnsPublishException(string message, bool retryable) : Exception(message)
{
    public bool Retryable { get; } = retryable;
}
