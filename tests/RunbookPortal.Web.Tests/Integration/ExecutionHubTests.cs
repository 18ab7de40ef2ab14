using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Features.Executions;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>An event as the hub sends it (the shape of the events route).</summary>
public sealed record HubEvent(Guid ExecutionId, long Seq, DateTime At, string Kind, string? StepId, JsonElement Data);

/// <summary>A client of /hubs/executions over real WebSockets, as a pipeline or a terminal would use it.</summary>
public static class HubClient
{
    public static HubConnection Connect(Uri portal, string? token) =>
        new HubConnectionBuilder()
            .WithUrl(new Uri(portal, ExecutionHub.Path), o =>
            {
                o.Transports = HttpTransportType.WebSockets;
                o.SkipNegotiation = true;
                if (token is not null)
                    o.AccessTokenProvider = () => Task.FromResult<string?>(token);
            })
            .Build();
}

/// <summary>The executions hub on one node, on SQLite: every event exactly once across reconnects; who may join.</summary>
public sealed class ExecutionHubTests : IAsyncLifetime
{
    private PortalFactory _portal = null!;
    private Uri _address = null!;

    public async Task InitializeAsync()
    {
        _portal = new PortalFactory(TestDatabase.Sqlite(), new Dictionary<string, string?>(EngineSettings.Fast) { ["Engine:MaxOutputBytesPerStep"] = "33554432" });
        _address = _portal.StartOnKestrel();
        await Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _portal.DisposeAsync();

    private HttpClient Api(string token) => _portal.CreateClient(token);

    [Fact]
    public async Task ClientsThatReconnectManyTimesDuringAChattyRun_GetEveryEventExactlyOnce_InOrder()
    {
        var name = $"hub-{Guid.NewGuid():N}"[..24];
        var admin = Api(_portal.AdminToken);
        await ExecutionApiTests.PublishAsync(_portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Chatty
            type: maintenance
            steps:
              - id: chatty
                action: shell
                run: for i in $(seq 1 3000); do echo "line $i"; if [ $((i % 150)) -eq 0 ]; then sleep 0.05; fi; done
              - id: errors
                action: shell
                run: for i in $(seq 1 500); do echo "warning $i" >&2; done
              - id: last
                action: shell
                run: echo done
            """, name);
        var (viewer, _, viewerToken) = await _portal.CreateUserAsync("viewer", "Auditor");

        var id = await ExecutionApiTests.StartAsync(admin, name, new { });
        // Three clients, each dropping its connection after every 250 events it receives and coming back after the last seq.
        var followers = Enumerable.Range(0, 3).Select(_ => FollowWithReconnectsAsync(id, viewerToken, every: 250)).ToList();
        var received = await Task.WhenAll(followers);

        var events = await AllEventsAsync(viewer, id);
        Assert.Equal(EventKinds.ExecutionFinished, events[^1].GetProperty("kind").GetString());
        Assert.True(events.Count > 3500, $"only {events.Count} events");
        foreach (var (seen, reconnects) in received)
        {
            Assert.Equal((events.Count - 1) / 250, reconnects);
            Assert.Equal(events.Select(e => e.GetProperty("seq").GetInt64()), seen.Select(e => e.Seq)); // every one, once, in order
            Assert.Equal(events.Select(e => e.GetProperty("kind").GetString()), seen.Select(e => e.Kind));
            Assert.Equal(events.Select(e => e.GetProperty("data").GetRawText()), seen.Select(e => e.Data.GetRawText()));
        }
    }

    /// <summary>
    /// SubscribeBatches: the same events as the events route, as arrays, in order and once — from the start, and on a
    /// second connection after a seq in the middle of a chatty run while it runs.
    /// </summary>
    [Fact]
    public async Task BatchedClients_GetEveryEventOnce_InOrder_AsArrays_FromAnySeq()
    {
        var name = $"hub-batch-{Guid.NewGuid():N}"[..24];
        var admin = Api(_portal.AdminToken);
        await ExecutionApiTests.PublishAsync(_portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Batches
            type: maintenance
            steps:
              - id: chatty
                action: shell
                run: for i in $(seq 1 40); do seq -f "line $i.%g" 1 250; sleep 0.02; done
              - id: last
                action: shell
                run: echo done
            """, name);
        var id = await ExecutionApiTests.StartAsync(admin, name, new { });

        async Task<(List<HubEvent> Seen, int Messages)> FollowAsync(long after)
        {
            var seen = new List<HubEvent>();
            var messages = 0;
            var end = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            await using var hub = HubClient.Connect(_address, _portal.AdminToken);
            hub.On<HubEvent>("ExecutionEvent", _ => end.TrySetException(new InvalidOperationException("a single event on a batched subscription")));
            hub.On<HubEvent[]>("ExecutionEvents", batch =>
            {
                lock (seen)
                {
                    messages++;
                    seen.AddRange(batch);
                    if (batch.Any(e => e.Kind == EventKinds.ExecutionFinished))
                        end.TrySetResult();
                }
            });
            await hub.StartAsync();
            await hub.InvokeAsync("SubscribeBatches", id, after);
            await end.Task.WaitAsync(TimeSpan.FromSeconds(90));
            lock (seen)
                return ([.. seen], messages);
        }

        var fromStart = FollowAsync(0);
        var middle = FollowAsync(3000); // while the run goes on: before seq 3000 exists, or after

        var (all, messages) = await fromStart;
        var (rest, _) = await middle;

        var events = await AllEventsAsync(admin, id);
        Assert.True(events.Count > 10_000, $"only {events.Count} events");
        Assert.Equal(events.Select(e => e.GetProperty("seq").GetInt64()), all.Select(e => e.Seq));
        Assert.Equal(events.Select(e => e.GetProperty("data").GetRawText()), all.Select(e => e.Data.GetRawText()));
        Assert.Equal(events.Select(e => e.GetProperty("seq").GetInt64()).Where(s => s > 3000), rest.Select(e => e.Seq));
        Assert.All(all, e => Assert.Equal(id, e.ExecutionId));
        Assert.True(messages < events.Count / 5, $"{messages} messages for {events.Count} events: they were not batched");
    }

    /// <summary>
    /// Follows a run to its end, taking <paramref name="every"/> events per connection: then it hangs up (what came after
    /// them is not taken) and subscribes again on a new connection after the last one it took.
    /// </summary>
    private async Task<(List<HubEvent> Seen, int Reconnects)> FollowWithReconnectsAsync(Guid id, string token, int every)
    {
        var seen = new List<HubEvent>();
        var reconnects = 0;
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        while (true)
        {
            var enough = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var taken = new List<HubEvent>();
            var finished = false;
            await using var hub = HubClient.Connect(_address, token);
            hub.On<HubEvent>("ExecutionEvent", e =>
            {
                lock (taken)
                {
                    if (taken.Count >= every || finished)
                        return;
                    taken.Add(e);
                    finished = e.Kind == EventKinds.ExecutionFinished;
                    if (taken.Count >= every || finished)
                        enough.TrySetResult();
                }
            });
            Exception? closed = null;
            hub.Closed += e =>
            {
                closed = e ?? new InvalidOperationException("closed without an error");
                return Task.CompletedTask;
            };
            var from = seen.Count == 0 ? 0L : seen[^1].Seq;
            await hub.StartAsync(patience.Token);
            await hub.InvokeAsync("Subscribe", id, from, patience.Token);
            try
            {
                await enough.Task.WaitAsync(patience.Token);
            }
            catch (OperationCanceledException)
            {
                int count;
                long last;
                lock (taken)
                    (count, last) = (taken.Count, taken.Count > 0 ? taken[^1].Seq : -1);
                throw new Xunit.Sdk.XunitException($"stalled: subscribed after {from} on connection {reconnects + 1}, took {count} (last seq {last}); hub {hub.State}, closed: {closed?.Message ?? "no"}");
            }
            await hub.StopAsync(patience.Token);
            lock (taken)
                seen.AddRange(taken);
            if (finished)
                return (seen, reconnects);
            reconnects++;
        }
    }

    private static async Task<List<JsonElement>> AllEventsAsync(HttpClient client, Guid id)
    {
        var all = new List<JsonElement>();
        while (true)
        {
            var page = await ExecutionApiTests.EventsAsync(client, id, all.Count == 0 ? 0 : all[^1].GetProperty("seq").GetInt64());
            if (page.Count == 0)
                return all;
            all.AddRange(page);
        }
    }

    [Fact]
    public async Task AClientThatStopsReading_IsDroppedWithoutSlowingTheRun_AndWhatItGotIsAPrefix_NeverASkip()
    {
        var name = $"hub-slow-{Guid.NewGuid():N}"[..24];
        await ExecutionApiTests.PublishAsync(_portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Flood
            type: maintenance
            steps:
              - id: flood
                action: shell
                run: seq -f '%g ........................................................................................................' 1 {{{ExecutionFeed.Kept * 3}}}
            """, name);
        var admin = Api(_portal.AdminToken);
        var id = await ExecutionApiTests.StartAsync(admin, name, new { });

        // A raw WebSocket client (SignalR's own client reads into memory without bound) that subscribes, then reads nothing.
        using var socket = new System.Net.WebSockets.ClientWebSocket();
        var url = new UriBuilder(new Uri(_address, ExecutionHub.Path)) { Scheme = "ws", Query = $"access_token={Uri.EscapeDataString(_portal.AdminToken)}" }.Uri;
        await socket.ConnectAsync(url, CancellationToken.None);
        async Task SendAsync(string json) =>
            await socket.SendAsync(System.Text.Encoding.UTF8.GetBytes(json + "\u001e"), System.Net.WebSockets.WebSocketMessageType.Text, true, CancellationToken.None);
        await SendAsync("""{"protocol":"json","version":1}""");
        await SendAsync($$"""{"type":1,"target":"Subscribe","arguments":["{{id}}",0]}""");

        var done = await ExecutionApiTests.WaitForEndAsync(admin, id, seconds: 120); // the run does not wait for its watcher
        Assert.Equal("Succeeded", done.GetProperty("status").GetString());

        // Now read everything the portal sent before it let the client go.
        var text = new System.Text.StringBuilder();
        var buffer = new byte[1 << 16];
        using (var patience = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            while (true)
            {
                System.Net.WebSockets.WebSocketReceiveResult result;
                try
                {
                    result = await socket.ReceiveAsync(buffer, patience.Token);
                }
                catch (System.Net.WebSockets.WebSocketException)
                {
                    break; // the portal closed the connection
                }
                if (result.MessageType == System.Net.WebSockets.WebSocketMessageType.Close)
                    break;
                text.Append(System.Text.Encoding.UTF8.GetString(buffer, 0, result.Count));
            }
        }
        var all = text.ToString();
        var whole = all[..(all.LastIndexOf('\u001e') + 1)]; // the connection was cut, perhaps inside a message
        var messages = whole.Split('\u001e', StringSplitOptions.RemoveEmptyEntries).Skip(1) // the handshake's answer
            .Select(m => JsonDocument.Parse(m).RootElement).ToList();
        var seqs = messages.Where(m => m.TryGetProperty("target", out var t) && t.GetString() == "ExecutionEvent")
            .Select(m => m.GetProperty("arguments")[0].GetProperty("seq").GetInt64()).ToList();
        Assert.NotEmpty(seqs);
        Assert.Equal(Enumerable.Range(1, seqs.Count).Select(i => (long)i), seqs); // a prefix: nothing skipped, nothing twice
        Assert.True(seqs.Count < ExecutionFeed.Kept * 3, $"it was sent all {seqs.Count} events: it was never dropped");
        Assert.Contains(_portal.Logs, l => l.Contains("stopped reading", StringComparison.Ordinal) || l.Contains("fell behind", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AUserWithoutARole_IsRefusedOnJoin_AndAnAnonymousClientCannotConnect()
    {
        var name = $"hub-roles-{Guid.NewGuid():N}"[..24];
        await ExecutionApiTests.PublishAsync(_portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Roles
            type: maintenance
            steps:
              - id: one
                action: shell
                run: echo secret-looking output
            """, name);
        var id = await ExecutionApiTests.StartAsync(Api(_portal.AdminToken), name, new { });
        var (_, _, nobodyToken) = await _portal.CreateUserAsync("nobody");

        await using (var nobody = HubClient.Connect(_address, nobodyToken))
        {
            var sent = 0;
            nobody.On<HubEvent>("ExecutionEvent", _ => Interlocked.Increment(ref sent));
            nobody.On<HubEvent>("ExecutionChanged", _ => Interlocked.Increment(ref sent));
            await nobody.StartAsync();
            var refused = await Assert.ThrowsAsync<HubException>(() => nobody.InvokeAsync("Subscribe", id, 0L));
            Assert.Contains("no role", refused.Message, StringComparison.Ordinal);
            refused = await Assert.ThrowsAsync<HubException>(() => nobody.InvokeAsync("SubscribeBatches", id, 0L));
            Assert.Contains("no role", refused.Message, StringComparison.Ordinal);
            nobody.On<HubEvent[]>("ExecutionEvents", _ => Interlocked.Increment(ref sent));
            refused = await Assert.ThrowsAsync<HubException>(() => nobody.InvokeAsync("SubscribeAll"));
            Assert.Contains("no role", refused.Message, StringComparison.Ordinal);
            await ExecutionApiTests.WaitForEndAsync(Api(_portal.AdminToken), id);
            await nobody.InvokeAsync("Unsubscribe", id); // a round trip after the run ended: anything sent would have arrived before it
            Assert.Equal(0, sent);
        }

        await using var anonymous = HubClient.Connect(_address, token: null);
        await Assert.ThrowsAnyAsync<Exception>(() => anonymous.StartAsync());
        Assert.Equal(HubConnectionState.Disconnected, anonymous.State);

        await using var badToken = HubClient.Connect(_address, "rbp_not-a-real-token");
        await Assert.ThrowsAnyAsync<Exception>(() => badToken.StartAsync());
    }

    [Fact]
    public async Task AnUnknownExecutionOrANegativeSeq_IsRefusedWithAClearMessage()
    {
        await using var hub = HubClient.Connect(_address, _portal.AdminToken);
        await hub.StartAsync();
        var unknown = await Assert.ThrowsAsync<HubException>(() => hub.InvokeAsync("Subscribe", Guid.NewGuid(), 0L));
        Assert.Contains("no such execution", unknown.Message, StringComparison.Ordinal);
        var negative = await Assert.ThrowsAsync<HubException>(() => hub.InvokeAsync("Subscribe", Guid.NewGuid(), -1L));
        Assert.Contains("afterSeq", negative.Message, StringComparison.Ordinal);
        Assert.Equal(HubConnectionState.Connected, hub.State); // a refused join leaves the connection usable
    }

    [Fact]
    public async Task SubscribeAll_GetsEveryStateChange_ButNoOutput()
    {
        var name = $"hub-all-{Guid.NewGuid():N}"[..24];
        await ExecutionApiTests.PublishAsync(_portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Dashboard
            type: maintenance
            steps:
              - id: one
                action: shell
                run: echo a; echo b
              - id: two
                action: shell
                run: echo c
            """, name);
        await using var hub = HubClient.Connect(_address, _portal.AdminToken);
        var changes = new ConcurrentQueue<HubEvent>();
        var finished = new ConcurrentDictionary<Guid, TaskCompletionSource>();
        TaskCompletionSource Finished(Guid id) => finished.GetOrAdd(id, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        hub.On<HubEvent>("ExecutionChanged", e =>
        {
            changes.Enqueue(e);
            if (e.Kind == EventKinds.ExecutionFinished)
                Finished(e.ExecutionId).TrySetResult();
        });
        await hub.StartAsync();
        await hub.InvokeAsync("SubscribeAll");

        var admin = Api(_portal.AdminToken);
        var watched = await ExecutionApiTests.StartAsync(admin, name, new { });
        await Finished(watched).Task.WaitAsync(TimeSpan.FromSeconds(30));

        var mine = changes.Where(e => e.ExecutionId == watched).ToList();
        var expected = (await AllEventsAsync(admin, watched)).Where(e => e.GetProperty("kind").GetString() != EventKinds.StepOutput).ToList();
        Assert.Equal(expected.Select(e => e.GetProperty("seq").GetInt64()), mine.Select(e => e.Seq));
        Assert.DoesNotContain(mine, e => e.Kind == EventKinds.StepOutput);
        Assert.Contains(mine, e => e.Kind == EventKinds.StepSucceeded && e.StepId == "two");
    }
}

/// <summary>Two portal nodes on one PostgreSQL: a watcher on one node sees every event of a run executing on the other, live.</summary>
public sealed class CrossNodeEventTests
{
    [Fact]
    public async Task AHubClientOnNodeB_SeesEveryEventOfARunExecutingOnNodeA_AsItHappens()
    {
        var database = (PostgresTestDatabase)await TestDatabase.PostgresAsync();
        await using var dropAtTheEnd = database;
        await using var nodeA = new PortalFactory(TestDatabase.Shared(database), new Dictionary<string, string?>(EngineSettings.Fast) { ["Engine:NodeId"] = "node-a" });
        var admin = nodeA.AdminClient();
        var name = $"nodes-{Guid.NewGuid():N}"[..24];
        await ExecutionApiTests.PublishAsync(nodeA, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Watched from another node
            type: maintenance
            parameters:
              gate: { type: string, required: true }
            steps:
              - id: before
                action: shell
                run: echo before
              - id: gate
                action: shell
                run: |
                  while [ -f "$RBP_PARAM_GATE" ]; do sleep 0.05; done
                  for i in $(seq 1 500); do echo "after $i"; done
              - id: last
                action: shell
                run: echo last
            """, name);
        var gate = Path.Combine(Path.GetTempPath(), $"rbp-gate-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(gate, "");
        try
        {
            var id = await ExecutionApiTests.StartAsync(admin, name, new { gate });
            await ExecutionApiTests.WaitForAsync(admin, id, e => e.GetProperty("currentStepId").GetString() == "gate");

            // Node B runs nothing of it, and reads nothing on a timer (a sweep once a day): only node A's notifications can tell it.
            await using var nodeB = await PortalNodeProcess.StartAsync(new Dictionary<string, string>
            {
                ["Database:Provider"] = "Postgres",
                ["ConnectionStrings:Postgres"] = database.ConnectionString,
                ["Bootstrap:AdminEmail"] = "",
                ["Bootstrap:AdminPassword"] = "",
                ["Bootstrap:ApiToken"] = "",
                ["Engine:NodeId"] = "node-b",
                ["Engine:EventSweepInterval"] = "1.00:00:00",
            });
            var events = new ConcurrentQueue<HubEvent>();
            var changes = new ConcurrentQueue<HubEvent>();
            var arrived = new SemaphoreSlim(0);
            await using var hub = HubClient.Connect(nodeB.BaseAddress, nodeA.AdminToken);
            hub.On<HubEvent>("ExecutionEvent", e => { events.Enqueue(e); arrived.Release(); });
            hub.On<HubEvent>("ExecutionChanged", e => { if (e.ExecutionId == id) changes.Enqueue(e); arrived.Release(); });
            await hub.StartAsync();
            await hub.InvokeAsync("SubscribeAll");
            await hub.InvokeAsync("Subscribe", id, 0L);
            async Task UntilAsync(Func<bool> condition)
            {
                using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                while (!condition())
                    await arrived.WaitAsync(patience.Token);
            }
            await UntilAsync(() => events.Any(e => e.Kind == EventKinds.StepStarted && e.StepId == "gate")); // what was written before B came

            File.Delete(gate); // node A goes on: its next events reach B only as they happen
            await UntilAsync(() => events.Any(e => e.Kind == EventKinds.ExecutionFinished));
            await UntilAsync(() => changes.Any(e => e.Kind == EventKinds.ExecutionFinished));

            var all = await ExecutionApiTests.EventsAsync(admin, id);
            Assert.Equal(all.Select(e => e.GetProperty("seq").GetInt64()), events.Select(e => e.Seq));
            Assert.Equal(all.Select(e => e.GetProperty("data").GetRawText()), events.Select(e => e.Data.GetRawText()));
            Assert.Equal(500, events.Count(e => e.Kind == EventKinds.StepOutput && e.StepId == "gate"));
            // B's dashboard feed got A's state changes after B joined, and no output.
            Assert.Contains(changes, e => e.Kind == EventKinds.StepSucceeded && e.StepId == "last");
            Assert.DoesNotContain(changes, e => e.Kind == EventKinds.StepOutput);
            Assert.DoesNotContain("node-b", string.Concat(all.Where(e => e.GetProperty("kind").GetString() == EventKinds.ExecutionClaimed).Select(e => e.GetProperty("data").GetRawText())));
        }
        finally
        {
            File.Delete(gate);
        }
    }
}
