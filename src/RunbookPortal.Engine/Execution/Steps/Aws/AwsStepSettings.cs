using System.Net;
using System.Text.Json;
using Amazon;
using Amazon.Runtime;
using Amazon.Runtime.Credentials;

namespace RunbookPortal.Engine.Execution.Steps.Aws;

/// <summary>
/// Where and as whom the AWS steps (<c>ssm</c>, <c>ssm_automation</c>, <c>lambda</c>) call AWS: one instance per node,
/// built by the host from <c>Aws:Region</c>, <c>Aws:ServiceUrl:*</c> and the standard credential chain.
/// </summary>
public sealed class AwsStepSettings
{
    /// <summary>The region steps sign for and, without an endpoint override, call (e.g. <c>eu-west-1</c>).</summary>
    public string Region { get; init; } = "us-east-1";

    /// <summary>The credentials to sign with; <c>null</c>: the SDK's default chain (environment, profile, container, instance role), resolved at each call.</summary>
    public AWSCredentials? Credentials { get; init; }

    /// <summary>Lambda's endpoint (LocalStack, tests); <c>null</c>: <c>https://lambda.{region}.amazonaws.com</c>.</summary>
    public Uri? LambdaServiceUrl { get; init; }

    /// <summary>SSM's endpoint (LocalStack, tests); <c>null</c>: the region's endpoint.</summary>
    public Uri? SsmServiceUrl { get; init; }

    /// <summary>SNS's endpoint (LocalStack, tests); <c>null</c>: <c>https://sns.{region}.amazonaws.com</c>.</summary>
    public Uri? SnsServiceUrl { get; init; }

    /// <summary>How many times the SSM client (the SDK, standard retry mode) tries a throttled or failed call again.</summary>
    public int SdkRetries { get; init; } = 4;

    /// <summary>How many times a throttled call (HTTP 429, TooManyRequestsException) is tried again before the step fails.</summary>
    public int ThrottleRetries { get; init; } = 5;

    /// <summary>The first pause after a throttled call; each next pause doubles, up to <see cref="ThrottleMaxDelay"/>, with jitter.</summary>
    public TimeSpan ThrottleBaseDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    public TimeSpan ThrottleMaxDelay { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>The first pause between two polls of a running SSM command or automation; it grows by half up to <see cref="PollMaxInterval"/>.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan PollMaxInterval { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>After a cancel or timeout, how long the step waits for SSM to report the command or automation stopped.</summary>
    public TimeSpan StopWait { get; init; } = TimeSpan.FromSeconds(10);

    public RegionEndpoint RegionEndpoint => RegionEndpoint.GetBySystemName(Region);

    /// <summary>Lambda's base URL, with the region's DNS suffix (amazonaws.com, amazonaws.com.cn, …) unless overridden.</summary>
    public Uri LambdaUrl => LambdaServiceUrl ?? new Uri($"https://lambda.{Region}.{RegionEndpoint.PartitionDnsSuffix ?? "amazonaws.com"}");

    /// <summary>SNS's base URL for <paramref name="region"/>, unless overridden.</summary>
    public Uri SnsUrl(string region) => SnsServiceUrl ?? new Uri($"https://sns.{region}.{RegionEndpoint.GetBySystemName(region).PartitionDnsSuffix ?? "amazonaws.com"}/");

    /// <summary>The credentials for one call, or the reason there are none, in words a runbook author can act on.</summary>
    public async Task<(AWSCredentials? Credentials, string? Problem)> ResolveCredentialsAsync()
    {
        try
        {
            var source = Credentials ?? await DefaultAWSCredentialsIdentityResolver.GetCredentialsAsync().ConfigureAwait(false);
            var resolved = await source.GetCredentialsAsync().ConfigureAwait(false);
            if (resolved is null || string.IsNullOrEmpty(resolved.AccessKey))
                return (null, NoCredentials("the credential provider gave no access key"));
            return (source, null);
        }
        catch (AmazonClientException ex)
        {
            return (null, NoCredentials(ex.Message));
        }
        catch (AmazonServiceException ex)
        {
            // An assumed role or SSO session refused to give credentials.
            return (null, NoCredentials(ex.Message));
        }
    }

    internal static string NoCredentials(string detail) =>
        "no AWS credentials were found for the portal: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile (AWS_PROFILE), " +
        $"or run the portal with an instance or task role ({detail})";

    /// <summary>
    /// The pause before retry <paramref name="retry"/> (1 for the first) of a throttled call: exponential with "equal jitter"
    /// (half fixed, half random), and never shorter than what the service asked for in <c>Retry-After</c>.
    /// </summary>
    public TimeSpan ThrottleDelay(int retry, TimeSpan? retryAfter)
    {
        var exponential = Math.Min(ThrottleMaxDelay.Ticks, ThrottleBaseDelay.Ticks * Math.Pow(2, retry - 1));
        var jittered = TimeSpan.FromTicks((long)(exponential / 2 + Random.Shared.NextDouble() * exponential / 2));
        return retryAfter is { } asked && asked > jittered ? (asked < ThrottleMaxDelay ? asked : ThrottleMaxDelay) : jittered;
    }

    /// <summary>Whether an AWS error code is a refusal of the credentials or signature (rather than of the request).</summary>
    public static bool IsCredentialError(string? code) => code is "UnrecognizedClientException" or "InvalidSignatureException"
        or "SignatureDoesNotMatch" or "ExpiredTokenException" or "ExpiredToken" or "InvalidClientTokenId" or "IncompleteSignature"
        or "MissingAuthenticationToken" or "InvalidSecurityToken" or "RequestExpired";

    public static bool IsThrottling(HttpStatusCode status, string? code) => status == HttpStatusCode.TooManyRequests
        || code is "TooManyRequestsException" or "ThrottlingException" or "Throttling" or "ThrottledException" or "RequestLimitExceeded"
        or "ProvisionedThroughputExceededException" or "EC2ThrottledException";

    /// <summary>Words for an AWS refusal of the credentials: what to fix.</summary>
    public static string CredentialProblem(string service, string code, string? message) => code switch
    {
        "ExpiredTokenException" or "ExpiredToken" or "RequestExpired" =>
            $"{service} refused the portal's AWS credentials: they have expired ({code}: {message}); renew the session or role credentials",
        _ => $"{service} refused the portal's AWS credentials ({code}: {message}); check the access key, secret and region",
    };

    /// <summary>
    /// The error code and message of a JSON error answer: the code from <c>x-amzn-ErrorType</c> or the body's <c>__type</c>
    /// or <c>code</c> (anything after ':' or '#' is dropped), the message from <c>message</c> or <c>Message</c>.
    /// </summary>
    internal static (string? Code, string? Message) ParseJsonError(string? errorTypeHeader, ReadOnlySpan<byte> body)
    {
        string? code = Clean(errorTypeHeader);
        string? message = null;
        try
        {
            using var document = JsonDocument.Parse(body.ToArray());
            if (document.RootElement.ValueKind == JsonValueKind.Object)
            {
                foreach (var property in document.RootElement.EnumerateObject())
                {
                    if (property.Value.ValueKind != JsonValueKind.String)
                        continue;
                    if (property.NameEquals("message") || property.NameEquals("Message") || property.NameEquals("errorMessage"))
                        message ??= property.Value.GetString();
                    else if (code is null && (property.NameEquals("__type") || property.NameEquals("code") || property.NameEquals("Code")))
                        code = Clean(property.Value.GetString());
                }
            }
        }
        catch (JsonException)
        {
        }
        return (code, message);

        static string? Clean(string? type)
        {
            if (string.IsNullOrWhiteSpace(type))
                return null;
            var text = type.Split(':')[0];
            var hash = text.LastIndexOf('#');
            return (hash >= 0 ? text[(hash + 1)..] : text).Trim();
        }
    }
}
