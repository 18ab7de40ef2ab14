using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Execution.Steps;

namespace RunbookPortal.Engine.Tests.Execution;

/// <summary>
/// A real HTTP/1.1 server on 127.0.0.1 (a TCP listener on a port the system picks, so parallel tests never collide):
/// it answers each request with what the test says and remembers every request.
/// </summary>
internal sealed class TestHttpServer : IAsyncDisposable
{
    public sealed record Request(string Method, string RawUrl, IReadOnlyDictionary<string, string> Headers, string Body);

    public sealed record Response(int Status, string Body, string ContentType = "application/json");

    private static readonly Dictionary<int, string> Reasons = new()
    {
        [200] = "OK", [201] = "Created", [202] = "Accepted", [404] = "Not Found", [500] = "Internal Server Error", [503] = "Service Unavailable",
    };

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Func<Request, Task<Response>> _respond;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Request> _requests = [];
    private readonly Task _loop;

    public TestHttpServer(Func<Request, Task<Response>> respond)
    {
        _respond = respond;
        _listener.Start();
        Url = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/";
        _loop = AcceptAsync();
    }

    public string Url { get; }

    public IReadOnlyList<Request> Requests
    {
        get
        {
            lock (_requests)
                return [.. _requests];
        }
    }

    public static TestHttpServer Answering(int status, string body, string contentType = "application/json") =>
        new(_ => Task.FromResult(new Response(status, body, contentType)));

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
            // Stopping: the listener may have stopped before the next accept began ("Not listening").
        }
        await Task.WhenAll(connections);
    }

    private async Task ServeAsync(TcpClient client)
    {
        using var _ = client;
        try
        {
            var stream = client.GetStream();
            var head = new StringBuilder();
            var one = new byte[1];
            while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
            {
                if (await stream.ReadAsync(one, _stop.Token) == 0)
                    return;
                head.Append((char)one[0]);
            }
            var lines = head.ToString().Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
            var requestLine = lines[0].Split(' ');
            var headers = lines.Skip(1).Select(l => l.Split(':', 2)).ToDictionary(p => p[0].Trim(), p => p[1].Trim(), StringComparer.OrdinalIgnoreCase);
            var body = new byte[headers.TryGetValue("Content-Length", out var length) ? int.Parse(length, System.Globalization.CultureInfo.InvariantCulture) : 0];
            await stream.ReadExactlyAsync(body, _stop.Token);
            var request = new Request(requestLine[0], requestLine[1], headers, Encoding.UTF8.GetString(body));
            lock (_requests)
                _requests.Add(request);

            var response = await _respond(request).WaitAsync(_stop.Token);
            var content = Encoding.UTF8.GetBytes(response.Body);
            var responseHead = $"HTTP/1.1 {response.Status} {Reasons.GetValueOrDefault(response.Status, "Status")}\r\n" +
                $"Content-Type: {response.ContentType}\r\nContent-Length: {content.Length}\r\nConnection: close\r\n\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(responseHead), _stop.Token);
            await stream.WriteAsync(content, _stop.Token);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or SocketException)
        {
            // The client went away (a timeout test), or the server is stopping.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _loop;
        _stop.Dispose();
    }
}

/// <summary>http steps against a real local server.</summary>
public sealed class HttpStepTests : ScratchFolder
{
    private async Task<(ExecutionOutcome Outcome, EventLog Log)> RunAsync(string steps, string parameters = "", IReadOnlyDictionary<string, string>? values = null)
    {
        var log = new EventLog();
        using var control = new ExecutionControl();
        var outcome = await Engine.Runner(Folder)
            .RunAsync(Engine.Plan(Engine.Runbook(steps, parameters), values), log, control, CancellationToken.None)
            .WaitAsync(EventLog.Patience);
        return (outcome, log);
    }

    [Fact]
    public async Task JsonValidation_ChecksThePathsValue_AndOutputsAreReadFromTheBody()
    {
        await using var server = TestHttpServer.Answering(200, """
            {
              "release": { "state": "accepted", "id": "r-42" },
              "items": [ { "ok": true }, { "count": 3 } ]
            }
            """);

        var (outcome, log) = await RunAsync($"""
            - id: release
              action: http
              url: {server.Url}releases
              validate:
                json:
                  path: "$.release.state"
                  equals: accepted
              outputs:
                id: '"id": "([^"]+)"'
            - id: second-item
              action: http
              url: {server.Url}releases
              validate:
                json:
                  path: "$.items[1].count"
                  equals: "3"
            - id: flag
              action: http
              url: {server.Url}releases
              validate:
                json:
                  path: "$.items[0].ok"
                  equals: "true"
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal("r-42", log.All<StepSucceeded>()[0].Outputs["id"]);
        Assert.Contains("\"state\": \"accepted\"", log.Output("release"), StringComparison.Ordinal);
        Assert.Equal(4, log.All<StepOutput>().Count(o => o.StepId == "release")); // the body, line by line
    }

    [Fact]
    public async Task JsonValidation_FailsWhenTheValueDiffers_OrThePathIsMissing_OrTheBodyIsNotJson()
    {
        await using var json = TestHttpServer.Answering(200, """{ "release": { "state": "pending" } }""");
        await using var text = TestHttpServer.Answering(200, "plain text", "text/plain");

        var (outcome, log) = await RunAsync($"""
            - id: differs
              action: http
              url: {json.Url}
              required: false
              validate:
                json:
                  path: "$.release.state"
                  equals: accepted
            - id: missing
              action: http
              url: {json.Url}
              required: false
              validate:
                json:
                  path: "$.release.owner"
            - id: not-json
              action: http
              url: {text.Url}
              required: false
              validate:
                json:
                  path: "$.state"
            """);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal(
            [
                "$.release.state is \"pending\", and validate expects \"accepted\"",
                "the JSON output has no value at $.release.owner",
                "the output is not JSON, so $.state cannot be checked",
            ],
            log.All<StepFailed>().Select(f => f.Reason));
    }

    [Fact]
    public async Task TheStatus_MustBeAnExpectedOne_OrAny2xx()
    {
        await using var error = TestHttpServer.Answering(503, "down");
        await using var ok = TestHttpServer.Answering(200, "fine");

        var (_, log) = await RunAsync($"""
            - id: any-2xx
              action: http
              url: {error.Url}
              required: false
            - id: listed
              action: http
              url: {ok.Url}
              expect_status: [201, 202]
              required: false
            - id: accepted
              action: http
              url: {error.Url}
              expect_status: 503
            """);

        var failures = log.All<StepFailed>();
        Assert.Equal(["the server answered 503 Service Unavailable, expected 2xx", "the server answered 200 OK, expected 201 or 202"], failures.Select(f => f.Reason));
        Assert.Equal([503, 200], failures.Select(f => f.HttpStatus));
        Assert.Null(failures[0].ExitCode);
        Assert.Equal(503, failures[0].Data().GetProperty("httpStatus").GetInt32());
        Assert.Equal("accepted", Assert.Single(log.All<StepSucceeded>()).StepId);
    }

    [Fact]
    public async Task TheRequest_CarriesMethodHeadersAndBody_WithTemplatesRendered_AndUrlValuesEncoded()
    {
        await using var server = TestHttpServer.Answering(201, "{}");
        var value = "a b&c=d/é?#\"quoted\"";

        var (outcome, _) = await RunAsync("""
            - id: post
              action: http
              method: POST
              url: "SERVERservices/{{ name }}/releases?note={{ name }}&env={{ env }}"
              headers:
                X-Environment: "{{ env }}"
                Content-Type: application/vnd.test+json
              body:
                name: "{{ name }}"
                note: "release of {{ name }} to {{ env }}"
                count: 3
                tags: [a, "{{ env }}"]
            - id: put
              action: http
              method: PUT
              url: "SERVERtext"
              body: "plain {{ env }}"
            """.Replace("SERVER", server.Url, StringComparison.Ordinal), "name: { type: string }\nenv: { type: string }",
            new Dictionary<string, string> { ["name"] = value, ["env"] = "prod" });

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        var post = server.Requests.Single(r => r.Method == "POST");
        var encoded = Uri.EscapeDataString(value);
        Assert.Equal($"/services/{encoded}/releases?note={encoded}&env=prod", post.RawUrl);
        Assert.Equal("prod", post.Headers["X-Environment"]);
        Assert.StartsWith("application/vnd.test+json", post.Headers["Content-Type"], StringComparison.Ordinal);
        using var body = JsonDocument.Parse(post.Body);
        Assert.Equal(value, body.RootElement.GetProperty("name").GetString());
        Assert.Equal($"release of {value} to prod", body.RootElement.GetProperty("note").GetString());
        Assert.Equal(3, body.RootElement.GetProperty("count").GetInt32());
        Assert.Equal("prod", body.RootElement.GetProperty("tags")[1].GetString());
        var put = server.Requests.Single(r => r.Method == "PUT");
        Assert.Equal("plain prod", put.Body);
    }

    [Fact]
    public async Task AHeaderValueWithALineBreak_IsRefused_NotSent()
    {
        await using var server = TestHttpServer.Answering(200, "{}");
        var (outcome, log) = await RunAsync("""
            - id: inject
              action: http
              url: "SERVER"
              headers: { X-Value: "{{ value }}" }
            """.Replace("SERVER", server.Url, StringComparison.Ordinal), "value: { type: string }",
            new Dictionary<string, string> { ["value"] = "ok\r\nX-Injected: yes" });

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Equal("the header X-Value contains a line break, which HTTP headers cannot hold", Assert.Single(log.All<StepFailed>()).Reason);
        Assert.Empty(server.Requests);
    }

    [Fact]
    public async Task Timeout_AbandonsASlowServer()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = new TestHttpServer(async _ =>
        {
            arrived.TrySetResult();
            await release.Task;
            return new TestHttpServer.Response(200, "late");
        });
        var time = new FakeTimeProvider();
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook($"""
            - id: slow
              action: http
              url: {server.Url}
              timeout: 30s
            """);

        var running = Engine.Runner(Folder, time).RunAsync(Engine.Plan(runbook), log, control, CancellationToken.None);
        await arrived.Task.WaitAsync(EventLog.Patience);
        time.Advance(TimeSpan.FromSeconds(30));
        var outcome = await running.WaitAsync(EventLog.Patience);
        release.SetResult();

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        var failed = Assert.Single(log.All<StepFailed>());
        Assert.True(failed.TimedOut);
        Assert.Equal("timed out after 30s", failed.Reason);
    }

    [Fact]
    public async Task EveryAttempt_AsksForAClient_TheExecutorKeepsNone()
    {
        await using var server = TestHttpServer.Answering(503, "down");
        using var client = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        var asked = 0;
        var runner = new ExecutionRunner([new HttpStepExecutor(() => { Interlocked.Increment(ref asked); return client; })], TimeProvider.System, new ExecutionOptions());
        var log = new EventLog();
        using var control = new ExecutionControl();

        var outcome = await runner.RunAsync(Engine.Plan(Engine.Runbook($$"""
                - id: flaky
                  action: http
                  url: {{server.Url}}
                  retry: { attempts: 3, backoff: 0s }
                """)), log, control, CancellationToken.None)
            .WaitAsync(EventLog.Patience);

        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Equal(3, server.Requests.Count);
        Assert.Equal(3, asked); // one client per attempt, from the host's factory
    }

    [Fact]
    public async Task ALargeBody_IsStreamedAndCapped_WithTheMarker()
    {
        var body = string.Concat(Enumerable.Range(1, 5000).Select(i => $"line {i}\n"));
        await using var server = TestHttpServer.Answering(200, body, "text/plain");
        var log = new EventLog();
        using var control = new ExecutionControl();

        var outcome = await Engine.Runner(Folder, options: new ExecutionOptions { MaxOutputBytesPerStep = 2048 })
            .RunAsync(Engine.Plan(Engine.Runbook($"""
                - id: big
                  action: http
                  url: {server.Url}
                  validate:
                    output_contains: "line 1"
                """)), log, control, CancellationToken.None)
            .WaitAsync(EventLog.Patience);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal(2048, Assert.Single(log.All<StepOutputTruncated>()).LimitBytes);
        Assert.StartsWith("[output truncated:", log.All<StepOutput>()[^1].Text, StringComparison.Ordinal);
    }
}
