using Amazon.Runtime;
using RunbookPortal.Engine.Execution.Steps.Aws;
using RunbookPortal.Engine.Tests.Execution.Aws;
using RunbookPortal.Web.Features.Notifications;

namespace RunbookPortal.Web.Tests.Notifications;

/// <summary>The SNS sender against a local endpoint speaking SNS's query protocol, every signature checked.</summary>
public sealed class SnsPublisherTests
{
    private const string Topic = "arn:aws:sns:eu-north-1:123456789012:runbook-events";
    private static readonly HttpClient Client = new() { Timeout = Timeout.InfiniteTimeSpan };

    private static AwsTestEndpoint.Response Published(string id) => new(200, $"""
        <PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
          <PublishResult><MessageId>{id}</MessageId></PublishResult>
          <ResponseMetadata><RequestId>f187a3c1-376f-11df-8963-01868b7c937a</RequestId></ResponseMetadata>
        </PublishResponse>
        """, ContentType: "text/xml");

    private static AwsTestEndpoint.Response Failed(int status, string type, string code, string message) => new(status, $"""
        <ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
          <Error><Type>{type}</Type><Code>{code}</Code><Message>{message}</Message></Error>
          <RequestId>9dd01905-5012-5f99-8663-4b3ecd0dfaef</RequestId>
        </ErrorResponse>
        """, ContentType: "text/xml");

    private static SnsPublisher Publisher(AwsTestEndpoint sns, AWSCredentials? credentials = null) => new(() => Client, new AwsStepSettings
    {
        Region = "us-east-1", // the topic's ARN names its region, and that is the one signed for
        SnsServiceUrl = sns.Url,
        Credentials = credentials ?? new BasicAWSCredentials(AwsTestEndpoint.AccessKey, AwsTestEndpoint.SecretKey),
        ThrottleBaseDelay = TimeSpan.FromMilliseconds(10),
        ThrottleMaxDelay = TimeSpan.FromMilliseconds(50),
    });

    /// <summary>An application/x-www-form-urlencoded body, decoded.</summary>
    private static Dictionary<string, string> Form(string body) => body.Split('&').Select(p => p.Split('=', 2))
        .ToDictionary(p => Decode(p[0]), p => Decode(p[1]), StringComparer.Ordinal);

    private static string Decode(string text) => Uri.UnescapeDataString(text.Replace('+', ' '));

    [Fact]
    public async Task Publish_SendsTheQueryProtocolsForm_SignedForSnsInTheTopicsRegion()
    {
        await using var sns = new AwsTestEndpoint("sns", "eu-north-1", (_, _) => Task.FromResult(Published("94f20ce6-13c5-43a0-9a9e-ca52d816e90b")));
        var message = """{"executionId":"3f2a","runbook":"web-deploy","status":"Failed","error":"step 'verify' failed: 5xx & \"quotes\" ü"}""";

        var id = await Publisher(sns).PublishAsync(Topic, "RunbookPortal: web-deploy v3 failed\nsecond line", message, CancellationToken.None);

        Assert.Equal("94f20ce6-13c5-43a0-9a9e-ca52d816e90b", id);
        Assert.Empty(sns.SignatureProblems);
        var request = Assert.Single(sns.Requests);
        Assert.Equal("POST", request.Method);
        Assert.StartsWith("application/x-www-form-urlencoded", request.Header("Content-Type"), StringComparison.Ordinal);
        var form = Form(request.BodyText);
        Assert.Equal("Publish", form["Action"]);
        Assert.Equal("2010-03-31", form["Version"]);
        Assert.Equal(Topic, form["TopicArn"]);
        Assert.Equal(message, form["Message"]);
        Assert.Equal("RunbookPortal: web-deploy v3 failed second line", form["Subject"]);
    }

    [Fact]
    public async Task Throttling_IsTriedAgain_AndAnUnknownTopicIsAPlainNonRetryableError()
    {
        var calls = 0;
        await using var busy = new AwsTestEndpoint("sns", "eu-north-1", (_, _) => Task.FromResult(Interlocked.Increment(ref calls) <= 2
            ? Failed(400, "Sender", "Throttling", "Rate exceeded")
            : Published("m-1")));
        await using var missing = new AwsTestEndpoint("sns", "eu-north-1", (_, _) => Task.FromResult(Failed(404, "Sender", "NotFound", "Topic does not exist")));

        var id = await Publisher(busy).PublishAsync(Topic, "s", "m", CancellationToken.None);
        var error = await Assert.ThrowsAsync<SnsPublishException>(() => Publisher(missing).PublishAsync(Topic, "s", "m", CancellationToken.None));

        Assert.Equal("m-1", id);
        Assert.Equal(3, busy.Requests.Count);
        Assert.Equal($"the SNS topic {Topic} does not exist (NotFound: Topic does not exist)", error.Message);
        Assert.False(error.Retryable);
    }

    [Fact]
    public async Task AWrongSecret_FailsTheSignatureCheck_AndSaysTheCredentialsWereRefused()
    {
        await using var sns = new AwsTestEndpoint("sns", "eu-north-1", (_, _) => Task.FromResult(Published("never")));

        var error = await Assert.ThrowsAsync<SnsPublishException>(() =>
            Publisher(sns, new BasicAWSCredentials(AwsTestEndpoint.AccessKey, "wrong")).PublishAsync(Topic, "s", "m", CancellationToken.None));

        Assert.NotEmpty(sns.SignatureProblems);
        Assert.Empty(sns.Requests);
        Assert.StartsWith("SNS refused", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Subject_IsOneLineOfPrintableAscii_OfAtMost100Characters()
    {
        Assert.Equal("a b c ?", SnsPublisher.Subject("a\nb\tc ü"));
        Assert.Equal(100, SnsPublisher.Subject(new string('x', 300)).Length);
    }
}
