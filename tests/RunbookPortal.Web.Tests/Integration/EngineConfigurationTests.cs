using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using RunbookPortal.Web.Features.Executions;
using RunbookPortal.Web.Tests.Infrastructure;
using static RunbookPortal.Web.Tests.Integration.ExecutionApiTests;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>Engine:* settings reach the runner and its step executors, and http steps go through IHttpClientFactory.</summary>
public sealed class EngineConfigurationTests
{
    [Fact]
    public async Task EngineSettings_FromConfiguration_AreWhatTheRunnerAndItsStepsUse()
    {
        var calls = new ConcurrentQueue<Uri>();
        var settings = new Dictionary<string, string?>(EngineSettings.Fast)
        {
            ["Engine:MaxOutputBytesPerStep"] = "2048",
            ["Engine:RetryJitterFraction"] = "0",
            ["Engine:MaxRetryDelay"] = "00:00:01",
            ["Engine:RegexTimeout"] = "00:00:00.050",
            ["Engine:DefaultStepTimeout"] = "00:00:02",
            ["Engine:KillGrace"] = "00:00:01",
        };
        // Answers every request of the portal's http-steps client itself: an http step that went round the factory
        // would try to reach a host that does not exist, and fail.
        await using var portal = new PortalFactory(TestDatabase.Sqlite(), settings, services: s =>
            s.AddHttpClient(ExecutionExtensions.HttpStepsClient).AddHttpMessageHandler(() => new Answering(calls, "pong")));
        var admin = portal.AdminClient();
        var name = $"engine-settings-{Guid.NewGuid():N}"[..28];
        await PublishAsync(portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Engine settings
            type: maintenance
            steps:
              - id: loud
                action: shell
                run: for i in $(seq 1 200); do echo "line $i of a step that writes more than the cap allows"; done
              - id: flaky
                action: shell
                run: |
                  n=$(( $(cat count 2>/dev/null || echo 0) + 1 ))
                  echo $n > count
                  [ "$n" -ge 2 ]
                retry: { attempts: 2, backoff: 1h }
              - id: call
                action: http
                url: http://status.example.invalid/ping
                validate: { output_contains: pong }
              - id: picky
                action: shell
                required: false
                run: printf 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\n'
                validate: { regex: '^(a+)+$' }
              - id: slow
                action: shell
                required: false
                run: trap '' TERM; sleep 30
            """, name);

        var id = await StartAsync(admin, name, new { });
        var done = await WaitForEndAsync(admin, id);
        var events = await EventsAsync(admin, id);

        Assert.Equal("Succeeded", done.GetProperty("status").GetString());
        JsonElement Data(string kind, string step) =>
            events.Single(e => e.GetProperty("kind").GetString() == kind && e.GetProperty("stepId").GetString() == step).GetProperty("data");
        // Engine:MaxOutputBytesPerStep
        Assert.Equal(2048, Data("step_output_truncated", "loud").GetProperty("limitBytes").GetInt32());
        // Engine:MaxRetryDelay (and no jitter): a 1 h backoff waits 1 s
        Assert.Equal(1000, Data("step_retrying", "flaky").GetProperty("delayMs").GetInt64());
        // The http-steps client of IHttpClientFactory
        Assert.Equal("http://status.example.invalid/ping", Assert.Single(calls).ToString());
        // Engine:RegexTimeout
        Assert.Equal("the regular expression ^(a+)+$ took longer than 50ms on the output", Data("step_failed", "picky").GetProperty("reason").GetString());
        // Engine:DefaultStepTimeout, then Engine:KillGrace for a step that ignores SIGTERM
        var slow = Data("step_failed", "slow");
        Assert.True(slow.GetProperty("timedOut").GetBoolean());
        Assert.Equal("timed out after 2s; it did not stop within 1s of SIGTERM and was killed with SIGKILL", slow.GetProperty("reason").GetString());
    }

    [Fact]
    public async Task TheHttpStepsClient_HasNoTimeoutOfItsOwn()
    {
        await using var portal = new PortalFactory(TestDatabase.Sqlite());
        _ = portal.Server;

        var client = portal.Services.GetRequiredService<IHttpClientFactory>().CreateClient(ExecutionExtensions.HttpStepsClient);

        Assert.Equal(Timeout.InfiniteTimeSpan, client.Timeout); // each step has its own
    }

    private sealed class Answering(ConcurrentQueue<Uri> calls, string body) : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            calls.Enqueue(request.RequestUri!);
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(body) });
        }
    }
}
