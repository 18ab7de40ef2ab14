using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace RunbookPortal.Engine.Tests.Execution.Aws;

/// <summary>
/// A local stand-in for an AWS service endpoint: real HTTP/1.1 on 127.0.0.1 (a port the system picks), every request
/// checked for a SigV4 signature recomputed here from the request as it arrived (service, region, access key, time,
/// body hash) before the test's handler answers it. A request that is not signed right gets the 403 AWS gives
/// (<c>InvalidSignatureException</c>) and is listed in <see cref="SignatureProblems"/>.
/// </summary>
internal sealed class AwsTestEndpoint : IAsyncDisposable
{
    public const string AccessKey = "AKIDRUNBOOKPORTALTEST";
    public const string SecretKey = "runbook/portal+test/secret/key/0123456789";

    public sealed record Request(string Method, string Path, string Query, IReadOnlyList<KeyValuePair<string, string>> Headers, byte[] Body)
    {
        public string BodyText => Encoding.UTF8.GetString(Body);

        public string? Header(string name) => Headers.Where(h => h.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(h => h.Value).FirstOrDefault();
    }

    public sealed record Response(int Status, string Body, IReadOnlyDictionary<string, string>? Headers = null, string ContentType = "application/json")
    {
        public byte[] BodyBytes { get; init; } = Encoding.UTF8.GetBytes(Body);
    }

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Func<Request, CancellationToken, Task<Response>> _respond;
    private readonly string _service;
    private readonly string _region;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Request> _requests = [];
    private readonly List<string> _problems = [];
    private readonly Task _loop;

    public AwsTestEndpoint(string service, string region, Func<Request, CancellationToken, Task<Response>> respond)
    {
        _service = service;
        _region = region;
        _respond = respond;
        _listener.Start();
        Url = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");
        _loop = AcceptAsync();
    }

    public Uri Url { get; }

    /// <summary>The requests that were signed right and reached the handler.</summary>
    public IReadOnlyList<Request> Requests
    {
        get
        {
            lock (_requests)
                return [.. _requests];
        }
    }

    public IReadOnlyList<string> SignatureProblems
    {
        get
        {
            lock (_problems)
                return [.. _problems];
        }
    }

    private async Task AcceptAsync()
    {
        var connections = new List<Task>();
        try
        {
            while (true)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                connections.Add(ServeAsync(client));
            }
        }
        catch (Exception ex) when (_stop.IsCancellationRequested
            && ex is OperationCanceledException or InvalidOperationException or SocketException or ObjectDisposedException)
        {
        }
        await Task.WhenAll(connections);
    }

    private async Task ServeAsync(TcpClient client)
    {
        using var _ = client;
        try
        {
            var stream = client.GetStream();
            while (await ReadRequestAsync(stream) is { } request)
            {
                var response = Verify(request) is { } problem
                    ? Problem(problem)
                    : await Handle(request);
                var head = new StringBuilder()
                    .Append(CultureInfo.InvariantCulture, $"HTTP/1.1 {response.Status} {Reason(response.Status)}\r\n")
                    .Append(CultureInfo.InvariantCulture, $"Content-Type: {response.ContentType}\r\n")
                    .Append(CultureInfo.InvariantCulture, $"Content-Length: {response.BodyBytes.Length}\r\n")
                    .Append(CultureInfo.InvariantCulture, $"x-amzn-RequestId: {Guid.NewGuid()}\r\n");
                foreach (var (name, value) in response.Headers ?? new Dictionary<string, string>())
                    head.Append(CultureInfo.InvariantCulture, $"{name}: {value}\r\n");
                head.Append("\r\n");
                await stream.WriteAsync(Encoding.ASCII.GetBytes(head.ToString()), _stop.Token);
                await stream.WriteAsync(response.BodyBytes, _stop.Token);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or SocketException)
        {
            // The client went away (a cancelled step), or the endpoint is stopping.
        }
    }

    private async Task<Response> Handle(Request request)
    {
        lock (_requests)
            _requests.Add(request);
        return await _respond(request, _stop.Token);
    }

    private Response Problem(string problem)
    {
        lock (_problems)
            _problems.Add(problem);
        return new Response(403, $$"""{"__type":"InvalidSignatureException","message":"{{problem.Replace("\"", "'", StringComparison.Ordinal)}}"}""",
            new Dictionary<string, string> { ["x-amzn-ErrorType"] = "InvalidSignatureException" });
    }

    private async Task<Request?> ReadRequestAsync(NetworkStream stream)
    {
        var head = new List<byte>();
        var one = new byte[1];
        while (head.Count < 4 || head[^4] != '\r' || head[^3] != '\n' || head[^2] != '\r' || head[^1] != '\n')
        {
            if (await stream.ReadAsync(one, _stop.Token) == 0)
                return null;
            head.Add(one[0]);
        }
        var lines = Encoding.UTF8.GetString([.. head]).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        var requestLine = lines[0].Split(' ');
        var headers = lines.Skip(1).Select(l => l.Split(':', 2)).Select(p => KeyValuePair.Create(p[0].Trim(), p[1].Trim())).ToList();
        string? Get(string name) => headers.Where(h => h.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(h => h.Value).FirstOrDefault();
        if (Get("Expect") is { } expect && expect.Equals("100-continue", StringComparison.OrdinalIgnoreCase))
            await stream.WriteAsync("HTTP/1.1 100 Continue\r\n\r\n"u8.ToArray(), _stop.Token);
        if (Get("Transfer-Encoding") is not null)
            throw new InvalidOperationException("the test endpoint reads only bodies with a Content-Length");
        var body = new byte[Get("Content-Length") is { } length ? int.Parse(length, CultureInfo.InvariantCulture) : 0];
        await stream.ReadExactlyAsync(body, _stop.Token);
        var target = requestLine[1];
        var question = target.IndexOf('?', StringComparison.Ordinal);
        return new Request(requestLine[0], question < 0 ? target : target[..question], question < 0 ? "" : target[(question + 1)..], headers, body);
    }

    /// <summary>Recomputes the request's SigV4 signature (AWS's "Signature Version 4 signing process"); answers what is wrong, or null.</summary>
    private string? Verify(Request request)
    {
        var authorization = request.Header("Authorization");
        if (authorization is null || !authorization.StartsWith("AWS4-HMAC-SHA256 ", StringComparison.Ordinal))
            return "the request is not signed with AWS4-HMAC-SHA256";
        var parts = authorization["AWS4-HMAC-SHA256 ".Length..].Split(',', StringSplitOptions.TrimEntries)
            .Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);
        var credential = parts["Credential"].Split('/');
        if (credential.Length != 5 || credential[4] != "aws4_request")
            return $"the credential scope {parts["Credential"]} is malformed";
        var (key, date, region, service) = (credential[0], credential[1], credential[2], credential[3]);
        if (key != AccessKey)
            return $"signed with the access key {key}, not the test's";
        if (service != _service)
            return $"signed for the service '{service}', expected '{_service}'";
        if (region != _region)
            return $"signed for the region '{region}', expected '{_region}'";
        var amzDate = request.Header("X-Amz-Date");
        if (amzDate is null || !DateTime.TryParseExact(amzDate, "yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture,
                DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var signedAt))
            return "X-Amz-Date is missing or malformed";
        if (!amzDate.StartsWith(date, StringComparison.Ordinal))
            return "the scope's date is not X-Amz-Date's";
        if (Math.Abs((DateTime.UtcNow - signedAt).TotalMinutes) > 5)
            return $"signed at {amzDate}, more than 5 minutes from now";

        var signedHeaders = parts["SignedHeaders"].Split(';');
        if (!signedHeaders.Contains("host") || !signedHeaders.Contains("x-amz-date"))
            return $"host and x-amz-date must be signed, got {parts["SignedHeaders"]}";
        var payloadHash = Hex(SHA256.HashData(request.Body));
        if (request.Header("X-Amz-Content-SHA256") is { } declared && declared != payloadHash)
            return "X-Amz-Content-SHA256 is not the body's hash";

        var canonical = new StringBuilder()
            .Append(request.Method).Append('\n')
            .Append(CanonicalPath(request.Path)).Append('\n')
            .Append(CanonicalQuery(request.Query)).Append('\n');
        foreach (var name in signedHeaders)
        {
            var values = request.Headers.Where(h => h.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(h => CollapseSpaces(h.Value)).ToList();
            if (values.Count == 0)
                return $"the signed header {name} was not sent";
            canonical.Append(name).Append(':').Append(string.Join(",", values)).Append('\n');
        }
        canonical.Append('\n').Append(parts["SignedHeaders"]).Append('\n').Append(payloadHash);

        var scope = $"{date}/{region}/{service}/aws4_request";
        var toSign = $"AWS4-HMAC-SHA256\n{amzDate}\n{scope}\n{Hex(SHA256.HashData(Encoding.UTF8.GetBytes(canonical.ToString())))}";
        var signingKey = Hmac(Hmac(Hmac(Hmac(Encoding.UTF8.GetBytes("AWS4" + SecretKey), date), region), service), "aws4_request");
        var expected = Hex(Hmac(signingKey, toSign));
        return expected == parts["Signature"] ? null : $"the signature does not match (canonical request:\n{canonical})";
    }

    /// <summary>Every service but S3 signs the path as sent, each segment URI-encoded once more.</summary>
    private static string CanonicalPath(string path) =>
        path.Length == 0 ? "/" : string.Join("/", path.Split('/').Select(UriEncode));

    private static string CanonicalQuery(string query)
    {
        if (query.Length == 0)
            return "";
        return string.Join("&", query.Split('&')
            .Select(p => p.Split('=', 2))
            .Select(p => (Key: UriEncode(Uri.UnescapeDataString(p[0])), Value: UriEncode(Uri.UnescapeDataString(p.Length > 1 ? p[1] : ""))))
            .OrderBy(p => p.Key, StringComparer.Ordinal).ThenBy(p => p.Value, StringComparer.Ordinal)
            .Select(p => $"{p.Key}={p.Value}"));
    }

    /// <summary>RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ as %XX (upper case).</summary>
    private static string UriEncode(string text)
    {
        var builder = new StringBuilder();
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            if (b is >= (byte)'A' and <= (byte)'Z' or >= (byte)'a' and <= (byte)'z' or >= (byte)'0' and <= (byte)'9' or (byte)'-' or (byte)'_' or (byte)'.' or (byte)'~')
                builder.Append((char)b);
            else
                builder.Append(CultureInfo.InvariantCulture, $"%{b:X2}");
        }
        return builder.ToString();
    }

    private static string CollapseSpaces(string value) => string.Join(' ', value.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries));

    private static byte[] Hmac(byte[] key, string data) => HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(data));

    private static string Hex(byte[] bytes) => Convert.ToHexStringLower(bytes);

    private static string Reason(int status) => status switch
    {
        200 => "OK", 400 => "Bad Request", 403 => "Forbidden", 404 => "Not Found", 429 => "Too Many Requests", 500 => "Internal Server Error", _ => "Status",
    };

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _loop;
        _stop.Dispose();
    }
}
