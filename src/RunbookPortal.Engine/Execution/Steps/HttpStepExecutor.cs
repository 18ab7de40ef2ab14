using System.Buffers;
using System.Net.Http.Headers;
using System.Text;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Execution.Steps;

/// <summary>
/// Runs an <c>http</c> step with a client it asks <c>createClient</c> for at each attempt, never one it keeps: the host
/// hands out clients of <c>IHttpClientFactory</c>, whose pooled handlers are renewed (DNS changes are seen) only when
/// nobody holds a client for ever. A client's own timeout should be infinite: the step's <c>timeout</c> arrives as the
/// cancellation token. The executor does not dispose the clients (a factory's client owns no handler).
/// <list type="bullet">
/// <item>Templates in the URL are URL-encoded once the URL's scheme and host are written (path, query, fragment);
/// before that (a template that gives the base URL) they are used as they are.</item>
/// <item>Templates in headers and a text body are rendered as plain text; in a structured body (sent as JSON)
/// each string value is rendered and JSON-escaped.</item>
/// <item>The answer's body is the step's output, streamed line by line; the first
/// <see cref="StepContext.MaxOutputBytes"/> bytes are kept for <c>validate</c> and <c>outputs</c>.</item>
/// <item>The status must be one of <c>expect_status</c>, or any 2xx when none is given.</item>
/// </list>
/// </summary>
public sealed class HttpStepExecutor(Func<HttpClient> createClient) : IStepExecutor
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    public string Action => StepActions.Http;

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var http = context.Step.Http ?? throw new ArgumentException($"step '{context.Step.Id}' is not an http step", nameof(context));

        HttpRequestMessage request;
        try
        {
            request = BuildRequest(http, context.Values);
        }
        catch (StepTemplateException ex)
        {
            return new StepResult(false, "", Error: ex.Message);
        }
        catch (RequestException ex)
        {
            return new StepResult(false, "", Error: ex.Message);
        }

        var client = createClient();
        var kept = new ArrayBufferWriter<byte>();
        var status = (int?)null;
        try
        {
            using (request)
            using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false))
            {
                status = (int)response.StatusCode;
                await ReadBodyAsync(response, context, kept, cancellationToken).ConfigureAwait(false);
                var output = Utf8.GetString(kept.WrittenSpan);
                var accepted = http.ExpectStatus.Count == 0 ? status is >= 200 and <= 299 : http.ExpectStatus.Contains(status.Value);
                var error = accepted ? null
                    : $"the server answered {status} {response.ReasonPhrase}, expected {(http.ExpectStatus.Count == 0 ? "2xx" : string.Join(" or ", http.ExpectStatus))}";
                return new StepResult(accepted, output, Error: error, HttpStatus: status);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new StepResult(false, Utf8.GetString(kept.WrittenSpan), Error: $"the HTTP client gave up after {client.Timeout}", HttpStatus: status);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException) // IOException: the connection broke while the body was read
        {
            return new StepResult(false, Utf8.GetString(kept.WrittenSpan), Error: $"the request failed: {ex.Message}", HttpStatus: status);
        }
    }

    private static async Task ReadBodyAsync(HttpResponseMessage response, StepContext context, ArrayBufferWriter<byte> kept, CancellationToken cancellationToken)
    {
        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            var decoder = Utf8.GetDecoder();
            var splitter = new LineSplitter();
            var lines = new List<string>();
            var bytes = new byte[8192];
            var chars = new char[Utf8.GetMaxCharCount(bytes.Length + 4)];
            while (true)
            {
                var read = await stream.ReadAsync(bytes, cancellationToken).ConfigureAwait(false);
                var keep = Math.Min(read, context.MaxOutputBytes - kept.WrittenCount);
                if (keep > 0)
                    kept.Write(bytes.AsSpan(0, keep));
                var count = decoder.GetChars(bytes, 0, read, chars, 0, flush: read == 0);
                splitter.Append(chars.AsSpan(0, count), lines);
                if (read == 0 && splitter.Flush() is { } last)
                    lines.Add(last);
                foreach (var line in lines)
                    await context.WriteOutputAsync("stdout", line).ConfigureAwait(false);
                lines.Clear();
                if (read == 0)
                    return;
            }
        }
    }

    private static HttpRequestMessage BuildRequest(HttpAction http, StepTemplateValues values)
    {
        var url = RenderUrl(http.Url, values);
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            throw new RequestException($"the URL {url} is not an absolute http:// or https:// URL");

        var request = new HttpRequestMessage(new HttpMethod(http.Method), uri);
        if (http.JsonBody is { } json)
            request.Content = new StringContent(TemplatedJson.Render(json, values), Utf8, "application/json");
        else if (http.Body is { } body)
            request.Content = new StringContent(values.Render(body), Utf8, "text/plain");

        foreach (var (name, template) in http.Headers)
        {
            var value = values.Render(template);
            if (value.AsSpan().ContainsAny('\r', '\n'))
                throw new RequestException($"the header {name} contains a line break, which HTTP headers cannot hold");
            if (name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase) && request.Content is not null)
            {
                request.Content.Headers.ContentType = MediaTypeHeaderValue.TryParse(value, out var type)
                    ? type
                    : throw new RequestException($"the header Content-Type: {value} is not a media type");
                continue;
            }
            if (!request.Headers.TryAddWithoutValidation(name, value) && !(request.Content?.Headers.TryAddWithoutValidation(name, value) ?? false))
                throw new RequestException($"the header {name} cannot be sent{(request.Content is null ? " (it belongs to a body, and the request has none)" : "")}");
        }
        return request;
    }

    /// <summary>Templates before the end of <c>scheme://host[:port]</c> stay as they are; after it they are URL-encoded.</summary>
    private static string RenderUrl(string url, StepTemplateValues values)
    {
        var builder = new StringBuilder(url.Length);
        var position = 0;
        foreach (var reference in TemplateReferences.Find(url))
        {
            builder.Append(url, position, reference.Index - position);
            var value = reference.Kind is TemplateReferenceKind.Parameter or TemplateReferenceKind.StepOutput or TemplateReferenceKind.Literal
                ? values.Resolve(reference)
                : reference.Text(url);
            builder.Append(reference.Kind != TemplateReferenceKind.Literal && PastAuthority(builder) ? Uri.EscapeDataString(value) : value);
            position = reference.Index + reference.Length;
        }
        builder.Append(url, position, url.Length - position);
        return builder.ToString();
    }

    private static bool PastAuthority(StringBuilder prefix)
    {
        var text = prefix.ToString();
        var scheme = text.IndexOf("://", StringComparison.Ordinal);
        return scheme >= 0 && text.IndexOfAny(['/', '?', '#'], scheme + 3) >= 0;
    }

    private sealed class RequestException(string message) : Exception(message);
}
