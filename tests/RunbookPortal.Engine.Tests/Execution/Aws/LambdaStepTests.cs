using System.Text;
using System.Text.Json;
using Amazon.Runtime;
using RunbookPortal.Engine.Execution;

namespace RunbookPortal.Engine.Tests.Execution.Aws;

/// <summary><c>lambda</c> steps against a local endpoint speaking Lambda's REST Invoke and checking every SigV4 signature.</summary>
public sealed class LambdaStepTests : ScratchFolder
{
    private static AwsTestEndpoint Lambda(Func<AwsTestEndpoint.Request, CancellationToken, Task<AwsTestEndpoint.Response>> respond) =>
        new("lambda", AwsEngine.Region, respond);

    private static AwsTestEndpoint Answering(int status, string body, Dictionary<string, string>? headers = null) =>
        Lambda((_, _) => Task.FromResult(new AwsTestEndpoint.Response(status, body, headers)));

    private Task<(ExecutionOutcome Outcome, EventLog Log)> RunAsync(AwsTestEndpoint lambda, string steps, string parameters = "",
        IReadOnlyDictionary<string, string>? values = null, AWSCredentials? credentials = null, string region = AwsEngine.Region) =>
        AwsEngine.RunAsync(AwsEngine.Runner(AwsEngine.Settings(lambda: lambda.Url, credentials: credentials, region: region), Folder), steps, parameters, values);

    [Fact]
    public async Task Invoke_SendsASignedRequestResponseCall_WithThePayloadsValuesJsonEncoded_AndTheAnswerIsTheOutput()
    {
        await using var lambda = Answering(200, """{"status":"healthy","version":"1.4.2","checks":[{"name":"db","ok":true}]}""");
        var tricky = "say \"hi\"\\n\\ \nline two\tund Grüße 🚀 \u2028 '}{\"injected\": true";

        var (outcome, log) = await RunAsync(lambda, """
            - id: check
              action: lambda
              function: health-check
              qualifier: live
              payload:
                environment: "{{ environment }}"
                note: "{{ note }}"
                nested: { list: ["{{ note }}", 3, true, null] }
              validate:
                json: { path: "$.checks[0].ok", equals: "true" }
              outputs:
                version: '"version":"([^"]+)"'
            """,
            """
            environment: { type: string }
            note: { type: string, multiline: true }
            """,
            new Dictionary<string, string> { ["environment"] = "staging", ["note"] = tricky });

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Empty(lambda.SignatureProblems);
        var request = Assert.Single(lambda.Requests);
        Assert.Equal("POST", request.Method);
        Assert.Equal("/2015-03-31/functions/health-check/invocations", request.Path);
        Assert.Equal("Qualifier=live", request.Query);
        Assert.Equal("RequestResponse", request.Header("X-Amz-Invocation-Type"));
        Assert.Equal("None", request.Header("X-Amz-Log-Type"));

        using var payload = JsonDocument.Parse(request.Body); // valid JSON, whatever the value held
        Assert.Equal(["environment", "note", "nested"], payload.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal("staging", payload.RootElement.GetProperty("environment").GetString());
        Assert.Equal(tricky, payload.RootElement.GetProperty("note").GetString());
        var list = payload.RootElement.GetProperty("nested").GetProperty("list");
        Assert.Equal(tricky, list[0].GetString());
        Assert.Equal(JsonValueKind.Number, list[1].ValueKind);
        Assert.Equal(JsonValueKind.True, list[2].ValueKind);
        Assert.Equal(JsonValueKind.Null, list[3].ValueKind);
        Assert.True(Encoding.UTF8.GetString(request.Body).Contains("Grüße", StringComparison.Ordinal) || request.BodyText.Contains("\\u00FC", StringComparison.OrdinalIgnoreCase));

        Assert.Equal("1.4.2", log.All<StepSucceeded>().Single().Outputs["version"]);
        Assert.Contains("\"status\":\"healthy\"", log.Output("check", "stdout"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task FunctionError_FailsTheStep_WithTheFunctionsErrorMessage_AndItsPayloadInTheLog()
    {
        await using var lambda = Answering(200, """{"errorType":"DatabaseError","errorMessage":"the orders database is unreachable","trace":[]}""",
            new() { ["X-Amz-Function-Error"] = "Unhandled", ["X-Amz-Executed-Version"] = "$LATEST" });

        var (outcome, log) = await RunAsync(lambda, """
            - id: migrate
              action: lambda
              function: migrate-orders
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        var failed = log.All<StepFailed>().Single();
        Assert.Contains("the function 'migrate-orders' failed (Unhandled): DatabaseError: the orders database is unreachable", failed.Reason, StringComparison.Ordinal);
        Assert.Contains("errorMessage", log.Output("migrate"), StringComparison.Ordinal);
        Assert.Empty(Assert.Single(lambda.Requests).Body); // no payload: an empty body
        Assert.Empty(lambda.SignatureProblems);
    }

    [Fact]
    public async Task UnknownFunction_FailsWithAPlainMessage_AndIsNotRetriedByTheExecutor()
    {
        await using var lambda = Answering(404,
            """{"Type":"User","message":"Function not found: arn:aws:lambda:eu-west-1:123456789012:function:no-such-fn"}""",
            new() { ["x-amzn-ErrorType"] = "ResourceNotFoundException:http://internal.amazon.com/coral/com.amazon.coral.service/" });

        var (outcome, log) = await RunAsync(lambda, """
            - id: call
              action: lambda
              function: no-such-fn
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        var reason = log.All<StepFailed>().Single().Reason;
        Assert.Contains("the Lambda function 'no-such-fn' was not found", reason, StringComparison.Ordinal);
        Assert.Contains("Function not found: arn:aws:lambda:eu-west-1:123456789012:function:no-such-fn", reason, StringComparison.Ordinal);
        Assert.Single(lambda.Requests);
    }

    [Fact]
    public async Task Throttling_IsTriedAgainWithBackoff_UntilLambdaTakesTheCall()
    {
        var calls = 0;
        await using var lambda = Lambda((_, _) => Task.FromResult(Interlocked.Increment(ref calls) <= 2
            ? new AwsTestEndpoint.Response(429, """{"Reason":"ReservedFunctionConcurrentInvocationLimitExceeded","Type":"User","message":"Rate Exceeded."}""",
                new Dictionary<string, string> { ["x-amzn-ErrorType"] = "TooManyRequestsException" })
            : new AwsTestEndpoint.Response(200, "\"done\"")));

        var (outcome, log) = await RunAsync(lambda, """
            - id: call
              action: lambda
              function: busy-fn
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal(3, lambda.Requests.Count);
        Assert.Equal(2, log.All<StepOutput>().Count(o => o.Stream == "stderr" && o.Text.Contains("Lambda throttled the invocation (TooManyRequestsException: Rate Exceeded.)", StringComparison.Ordinal)));
        Assert.Equal("\"done\"", log.Output("call", "stdout"));
        Assert.Single(log.All<StepStarted>()); // the executor's own retries, not the step's
        Assert.Empty(lambda.SignatureProblems);
        // Each try is signed anew (a new date, a new signature would be needed after minutes of backoff).
        Assert.Equal(3, lambda.Requests.Select(r => r.Header("Authorization")).Count());
    }

    [Fact]
    public async Task Throttling_ThatNeverEnds_FailsTheStep_AfterTheConfiguredRetries()
    {
        await using var lambda = Answering(429, """{"message":"Rate Exceeded."}""", new() { ["x-amzn-ErrorType"] = "TooManyRequestsException" });

        var (outcome, log) = await RunAsync(lambda, """
            - id: call
              action: lambda
              function: busy-fn
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Equal(1 + AwsEngine.Settings().ThrottleRetries, lambda.Requests.Count);
        Assert.Contains("Lambda kept throttling the invocation of 'busy-fn'", log.All<StepFailed>().Single().Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LogTypeTail_AsksForTheLogTail_AndDecodesItIntoTheLog()
    {
        var tail = "START RequestId: 8f5e Version: $LATEST\nchecking 3 targets\nall healthy ✓\nEND RequestId: 8f5e\n";
        await using var lambda = Answering(200, """{"ok":true}""", new() { ["X-Amz-Log-Result"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(tail)) });

        var (outcome, log) = await RunAsync(lambda, """
            - id: check
              action: lambda
              function: arn:aws:lambda:eu-west-1:123456789012:function:health
              log_type: tail
              payload: { probe: true }
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        var request = Assert.Single(lambda.Requests);
        Assert.Equal("Tail", request.Header("X-Amz-Log-Type"));
        Assert.Equal("/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3Ahealth/invocations", request.Path);
        Assert.Equal(tail.TrimEnd('\n'), log.Output("check", "stderr"));
        Assert.Equal("""{"ok":true}""", log.Output("check", "stdout"));
        Assert.Empty(lambda.SignatureProblems);
    }

    [Fact]
    public async Task WrongSecret_OrRegion_IsRefusedByTheSignatureCheck_AndTheStepSaysTheCredentialsWereRefused()
    {
        await using var lambda = Answering(200, "{}");

        var (badSecret, secretLog) = await RunAsync(lambda, """
            - id: call
              action: lambda
              function: fn
            """, credentials: new BasicAWSCredentials(AwsTestEndpoint.AccessKey, "not-the-secret"));
        var (badRegion, _) = await RunAsync(lambda, """
            - id: call
              action: lambda
              function: fn
            """, region: "us-west-2");

        Assert.Equal(ExecutionStatus.Failed, badSecret.Status);
        Assert.Equal(ExecutionStatus.Failed, badRegion.Status);
        Assert.Contains("Lambda refused the portal's AWS credentials (InvalidSignatureException", secretLog.All<StepFailed>().Single().Reason, StringComparison.Ordinal);
        Assert.Equal(2, lambda.SignatureProblems.Count);
        Assert.StartsWith("the signature does not match", lambda.SignatureProblems[0], StringComparison.Ordinal);
        Assert.Equal("signed for the region 'us-west-2', expected 'eu-west-1'", lambda.SignatureProblems[1]);
        Assert.Empty(lambda.Requests);
    }

    [Fact]
    public async Task MissingCredentials_FailTheStepBeforeAnyCall_SayingHowToProvideThem()
    {
        await using var lambda = Answering(200, "{}");

        var (outcome, log) = await RunAsync(lambda, """
            - id: call
              action: lambda
              function: fn
            """, credentials: new UnavailableCredentials());

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        var reason = log.All<StepFailed>().Single().Reason;
        Assert.Contains("no AWS credentials were found for the portal", reason, StringComparison.Ordinal);
        Assert.Contains("AWS_ACCESS_KEY_ID", reason, StringComparison.Ordinal);
        Assert.Empty(lambda.Requests);
        Assert.Empty(lambda.SignatureProblems);
    }

    [Fact]
    public async Task SlowFunction_PastTheStepsTimeout_FailsTimedOut()
    {
        await using var lambda = Lambda(async (_, stop) =>
        {
            await Task.Delay(TimeSpan.FromSeconds(20), stop);
            return new AwsTestEndpoint.Response(200, "{}");
        });

        var (outcome, log) = await RunAsync(lambda, """
            - id: call
              action: lambda
              function: slow-fn
              timeout: 1s
            """);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        var failed = log.All<StepFailed>().Single();
        Assert.True(failed.TimedOut);
        Assert.Contains("timed out after 1s", failed.Reason, StringComparison.Ordinal);
    }

    /// <summary>What the SDK's providers raise when a source has no credentials (an unset profile, no role).</summary>
    private sealed class UnavailableCredentials : AWSCredentials
    {
        public override ImmutableCredentials GetCredentials() =>
            throw new AmazonClientException("Failed to resolve AWS credentials. The credential providers used to search for credentials returned no credentials.");
    }
}
