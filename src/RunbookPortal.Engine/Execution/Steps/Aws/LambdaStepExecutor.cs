using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Amazon.Runtime.Signing;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Execution.Steps.Aws;

/// <summary>
/// Runs a <c>lambda</c> step: Lambda's REST Invoke (<c>POST /2015-03-31/functions/{name}/invocations</c>,
/// RequestResponse), signed with SigV4 for the service <c>lambda</c> over a client from <c>createClient</c> (the host's
/// <c>IHttpClientFactory</c>; its timeout should be infinite, the step's <c>timeout</c> arrives as the token).
/// <list type="bullet">
/// <item>The payload is the step's YAML <c>payload</c> as JSON, each string value rendered and JSON-encoded
/// (<see cref="TemplatedJson"/>); without one the body is empty.</item>
/// <item>The function's answer is the step's output (streamed into the log as stdout, kept for <c>validate</c>,
/// <c>json</c> paths and <c>outputs</c>); with <c>log_type: tail</c> the decoded <c>X-Amz-Log-Result</c> goes to stderr first.</item>
/// <item><c>X-Amz-Function-Error</c> fails the step with the function's <c>errorType</c> and <c>errorMessage</c>; a non-2xx
/// answer fails it with Lambda's error code and message (unknown function, refused credentials said plainly).</item>
/// <item>Throttling (429, TooManyRequestsException) is tried again with exponential backoff and jitter (<see cref="AwsStepSettings"/>);
/// Lambda did not run the function then, so trying again cannot run it twice. Nothing else is retried here: the step's
/// <c>retry</c> decides that.</item>
/// </list>
/// </summary>
public sealed class LambdaStepExecutor(Func<HttpClient> createClient, AwsStepSettings settings, TimeProvider? time = null) : IStepExecutor
{
    /// <summary>The most of an answer read: Lambda's synchronous response limit is 6 MB.</summary>
    private const int MaxResponseBytes = 6 * 1024 * 1024 + 1024;

    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public string Action => StepActions.Lambda;

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var lambda = context.Step.Lambda ?? throw new ArgumentException($"step '{context.Step.Id}' is not a lambda step", nameof(context));

        var function = context.Values.Render(lambda.Function).Trim();
        var qualifier = lambda.Qualifier is { } q ? context.Values.Render(q).Trim() : null;
        if (function.Length == 0)
            return new StepResult(false, "", Error: "the function name is empty once its templates are filled in");
        var payload = lambda.Payload is { } json ? TemplatedJson.RenderUtf8(json, context.Values) : null;
        var uri = InvokeUri(function, qualifier);
        var name = qualifier is { Length: > 0 } ? $"{function}:{qualifier}" : function;

        for (var retry = 0; ; retry++)
        {
            var (credentials, problem) = await settings.ResolveCredentialsAsync().ConfigureAwait(false);
            if (credentials is null)
                return new StepResult(false, "", Error: problem);

            using var request = new HttpRequestMessage(HttpMethod.Post, uri);
            request.Headers.TryAddWithoutValidation("X-Amz-Invocation-Type", "RequestResponse");
            request.Headers.TryAddWithoutValidation("X-Amz-Log-Type", lambda.LogTail ? "Tail" : "None");
            if (payload is not null)
            {
                request.Content = new ByteArrayContent(payload);
                request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            }
            var signed = await AWSSigV4Signer.SignAsync(
                new AWSSigningRequest
                {
                    HttpMethod = request.Method,
                    RequestUri = uri,
                    Content = payload ?? [],
                    Headers =
                    {
                        ["X-Amz-Invocation-Type"] = "RequestResponse",
                        ["X-Amz-Log-Type"] = lambda.LogTail ? "Tail" : "None",
                    },
                },
                new AWSSigV4Parameters
                {
                    Credentials = credentials,
                    Region = settings.RegionEndpoint,
                    Service = "lambda",
                },
                cancellationToken).ConfigureAwait(false);
            foreach (var header in signed.Headers)
            {
                if (!request.Headers.TryAddWithoutValidation(header.Key, header.Value))
                    request.Content?.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }

            HttpResponseMessage response;
            byte[] body;
            try
            {
                response = await createClient().SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
                body = await ReadLimitedAsync(response, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                return new StepResult(false, "", Error: "the HTTP client gave up waiting for Lambda");
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException)
            {
                return new StepResult(false, "", Error: $"the call to Lambda at {settings.LambdaUrl} failed: {ex.Message}");
            }

            using (response)
            {
                var status = (int)response.StatusCode;
                if (!response.IsSuccessStatusCode)
                {
                    var (code, message) = AwsStepSettings.ParseJsonError(Header(response, "x-amzn-ErrorType"), body);
                    if (AwsStepSettings.IsThrottling(response.StatusCode, code) && retry < settings.ThrottleRetries)
                    {
                        var delay = settings.ThrottleDelay(retry + 1, RetryAfter(response));
                        await context.WriteOutputAsync("stderr",
                            $"Lambda throttled the invocation ({code ?? "429"}: {message ?? "rate exceeded"}); trying again in {delay.TotalSeconds:0.0} s ({retry + 1} of {settings.ThrottleRetries})").ConfigureAwait(false);
                        await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
                        continue;
                    }
                    return new StepResult(false, "", Error: Refusal(name, response.StatusCode, code, message, retry), HttpStatus: status);
                }

                if (lambda.LogTail && Header(response, "X-Amz-Log-Result") is { Length: > 0 } log)
                {
                    foreach (var line in Lines(DecodeLog(log)))
                        await context.WriteOutputAsync("stderr", line).ConfigureAwait(false);
                }
                var text = Utf8.GetString(body);
                foreach (var line in Lines(text))
                    await context.WriteOutputAsync("stdout", line).ConfigureAwait(false);
                var kept = Utf8.GetByteCount(text) <= context.MaxOutputBytes ? text : Utf8.GetString(body, 0, context.MaxOutputBytes);

                if (Header(response, "X-Amz-Function-Error") is { Length: > 0 } functionError)
                    return new StepResult(false, kept, Error: FunctionFailed(name, functionError, body), HttpStatus: status);
                return new StepResult(true, kept, HttpStatus: status);
            }
        }
    }

    private Uri InvokeUri(string function, string? qualifier)
    {
        var root = settings.LambdaUrl.ToString().TrimEnd('/');
        var query = qualifier is { Length: > 0 } ? "?Qualifier=" + Uri.EscapeDataString(qualifier) : "";
        return new Uri($"{root}/2015-03-31/functions/{Uri.EscapeDataString(function)}/invocations{query}");
    }

    private static string Refusal(string function, HttpStatusCode status, string? code, string? message, int retries)
    {
        var detail = $"{code ?? ((int)status).ToString(CultureInfo.InvariantCulture)}{(message is null ? "" : ": " + message)}";
        if (code == "ResourceNotFoundException" || (status == HttpStatusCode.NotFound && code is null))
            return $"the Lambda function '{function}' was not found in the configured region and account ({detail})";
        if (AwsStepSettings.IsCredentialError(code) || (status == HttpStatusCode.Forbidden && code is null))
            return AwsStepSettings.CredentialProblem("Lambda", code ?? "403", message);
        if (code == "AccessDeniedException")
            return $"the portal's AWS identity may not invoke '{function}' ({detail})";
        if (AwsStepSettings.IsThrottling(status, code))
            return $"Lambda kept throttling the invocation of '{function}' ({detail}), after {retries} tries again";
        return $"Lambda refused to invoke '{function}': HTTP {(int)status} {detail}";
    }

    /// <summary>The function's own failure: <c>{ errorType, errorMessage }</c> in the body, <c>Handled</c>/<c>Unhandled</c> in the header.</summary>
    private static string FunctionFailed(string function, string kind, byte[] body)
    {
        string? type = null;
        string? message = null;
        try
        {
            using var document = JsonDocument.Parse(body);
            if (document.RootElement.ValueKind == JsonValueKind.Object)
            {
                if (document.RootElement.TryGetProperty("errorType", out var t) && t.ValueKind == JsonValueKind.String)
                    type = t.GetString();
                if (document.RootElement.TryGetProperty("errorMessage", out var m) && m.ValueKind == JsonValueKind.String)
                    message = m.GetString();
            }
        }
        catch (JsonException)
        {
            message = Utf8.GetString(body);
        }
        var what = type is null ? message : message is null ? type : $"{type}: {message}";
        return $"the function '{function}' failed ({kind}){(string.IsNullOrEmpty(what) ? "" : ": " + what)}";
    }

    private static string DecodeLog(string base64)
    {
        try
        {
            return Utf8.GetString(Convert.FromBase64String(base64));
        }
        catch (FormatException)
        {
            return "[the function's log tail could not be decoded]";
        }
    }

    private static IEnumerable<string> Lines(string text)
    {
        if (text.Length == 0)
            yield break;
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        var count = lines.Length > 0 && lines[^1].Length == 0 ? lines.Length - 1 : lines.Length;
        for (var i = 0; i < count; i++)
            yield return lines[i];
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values)
            ? string.Join(",", values)
            : null;

    private static TimeSpan? RetryAfter(HttpResponseMessage response) => response.Headers.RetryAfter switch
    {
        { Delta: { } delta } => delta,
        { Date: { } date } => date - DateTimeOffset.UtcNow,
        _ => null,
    };

    private static async Task<byte[]> ReadLimitedAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            using var buffer = new MemoryStream();
            var chunk = new byte[81920];
            int read;
            while ((read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
            {
                buffer.Write(chunk, 0, Math.Min(read, (int)Math.Max(0, MaxResponseBytes - buffer.Length)));
                if (buffer.Length >= MaxResponseBytes)
                    break;
            }
            return buffer.ToArray();
        }
    }
}
