using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Threading.Channels;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.SignalR;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Account;

namespace RunbookPortal.Web.Features.Executions;

/// <summary>
/// <c>/hubs/executions</c>: executions live, for pipelines, terminals and dashboards (cookie or API token; the token
/// may come as <c>access_token</c> in the query, as browsers' WebSockets cannot send headers). Every join checks the
/// caller's roles in the store: a signed-in user without a role is refused.
/// <list type="bullet">
/// <item><c>Subscribe(executionId, afterSeq)</c>: every event after <c>afterSeq</c>, then every new one, in order,
/// exactly once, as <c>ExecutionEvent</c> with the shape of the events route. After a reconnect, subscribe again
/// after the last seq received.</item>
/// <item><c>Unsubscribe(executionId)</c>.</item>
/// <item><c>SubscribeAll()</c>: every execution's state changes (not its output) as <c>ExecutionChanged</c>.</item>
/// </list>
/// A client that falls too far behind gets <c>CatchUp { executionId, afterSeq, reason }</c> and is disconnected:
/// it reads the rest from the events route (or subscribes again after <c>afterSeq</c>). Nothing is skipped silently.
/// </summary>
[Authorize]
public sealed class ExecutionHub(ExecutionHubWatchers watchers, PortalDbContext db) : Hub
{
    public const string Path = "/hubs/executions";

    public async Task Subscribe(Guid executionId, long afterSeq)
    {
        await RequireWatchableAsync(executionId, afterSeq);
        await watchers.WatchAsync(Context, executionId, afterSeq, batched: false);
    }

    /// <summary>
    /// As <see cref="Subscribe"/>, but the events come as arrays (<c>ExecutionEvents</c>, each element the shape of
    /// the events route), as many at a time as are ready: for watchers of chatty runs (thousands of lines a second).
    /// </summary>
    public async Task SubscribeBatches(Guid executionId, long afterSeq)
    {
        await RequireWatchableAsync(executionId, afterSeq);
        await watchers.WatchAsync(Context, executionId, afterSeq, batched: true);
    }

    public Task Unsubscribe(Guid executionId) => watchers.UnwatchAsync(Context.ConnectionId, executionId);

    public async Task SubscribeAll()
    {
        await RequireRoleAsync();
        watchers.WatchAll(Context);
    }

    public override Task OnDisconnectedAsync(Exception? exception) => watchers.DropAsync(Context.ConnectionId);

    private async Task RequireWatchableAsync(Guid executionId, long afterSeq)
    {
        await RequireRoleAsync();
        if (afterSeq < 0)
            throw new HubException("afterSeq must be 0 (from the start) or the last seq received.");
        if (!await db.Executions.AnyAsync(e => e.Id == executionId, Context.ConnectionAborted))
            throw new HubException("There is no such execution.");
    }

    private async Task RequireRoleAsync()
    {
        var roles = await db.RolesOfAsync(Context.User?.ActorName() ?? "", Context.ConnectionAborted);
        if (roles.Count == 0)
            throw new HubException("You have no role in the portal, so you cannot watch executions: ask an administrator for one.");
    }
}

/// <summary>
/// The hub's connections by id, so that an event is serialized once and written to each of its watchers as it is
/// (SignalR serializes a message sent to one client anew for every client).
/// </summary>
public sealed class ExecutionHubConnections(ILogger<DefaultHubLifetimeManager<ExecutionHub>> logger) : DefaultHubLifetimeManager<ExecutionHub>(logger)
{
    private readonly ConcurrentDictionary<string, HubConnectionContext> _connections = new();

    public override Task OnConnectedAsync(HubConnectionContext connection)
    {
        _connections[connection.ConnectionId] = connection;
        return base.OnConnectedAsync(connection);
    }

    public override Task OnDisconnectedAsync(HubConnectionContext connection)
    {
        _connections.TryRemove(connection.ConnectionId, out _);
        return base.OnDisconnectedAsync(connection);
    }

    public HubConnectionContext? Find(string connectionId) => _connections.GetValueOrDefault(connectionId);
}

/// <summary>What each hub connection watches, and the sending to it: one pump per subscription, at the client's pace.</summary>
public sealed class ExecutionHubWatchers(
    ExecutionFeed feed, ExecutionNotifier notifier, IHubContext<ExecutionHub> hub, ExecutionHubConnections connections,
    IOptions<JsonHubProtocolOptions> protocol, ILogger<ExecutionHubWatchers> log)
{
    /// <summary>State changes of every execution waiting for one <c>SubscribeAll</c> client beyond which it is dropped.</summary>
    public const int MaxQueuedChanges = 1000;

    private readonly ConcurrentDictionary<string, Connection> _connections = new();

    /// <summary>An event's view, made once however many clients it is sent to (the feed shares its records).</summary>
    private readonly ConditionalWeakTable<ExecutionEventRecord, EventView> _views = new();

    /// <summary>An event as the message <c>ExecutionEvent</c>, serialized once however many clients it is sent to.</summary>
    private readonly ConditionalWeakTable<ExecutionEventRecord, SerializedHubMessage> _messages = new();

    /// <summary>An event's JSON (the hub protocol's), made once however many batches it goes out in.</summary>
    private readonly ConditionalWeakTable<ExecutionEventRecord, byte[]> _json = new();

    public async Task WatchAsync(HubCallerContext context, Guid executionId, long afterSeq, bool batched)
    {
        var connection = _connections.GetOrAdd(context.ConnectionId, _ => new Connection(context));
        var client = hub.Clients.Client(context.ConnectionId);
        var writer = connections.Find(context.ConnectionId) ?? throw new HubException("This connection is closing.");
        var watch = feed.Watch(executionId, afterSeq,
            async (batch, ct) =>
            {
                if (batched)
                {
                    // One message for the batch, made of each event's JSON as serialized once for every watcher.
                    var message = new Microsoft.AspNetCore.SignalR.Protocol.InvocationMessage("ExecutionEvents", [new RawEvents(batch.Select(Json).ToList())]);
                    return await SentAsync(writer.WriteAsync(message, ct), batch[0].Seq - 1, ct).ConfigureAwait(false);
                }
                foreach (var record in batch)
                {
                    if (!await SentAsync(writer.WriteAsync(Message(record), ct), record.Seq - 1, ct).ConfigureAwait(false))
                        return false;
                }
                return true;
            },
            last => DropBehindAsync(context, executionId, last, "fell behind"));
        // A write waits while the client's buffers are full: a client that stops reading is dropped, not waited for.
        async ValueTask<bool> SentAsync(ValueTask write, long before, CancellationToken ct)
        {
            if (write.IsCompletedSuccessfully)
                return true;
            try
            {
                await write.AsTask().WaitAsync(StallLimit, ct).ConfigureAwait(false);
                return true;
            }
            catch (TimeoutException)
            {
                await DropBehindAsync(context, executionId, before, "stopped reading").ConfigureAwait(false);
                return false;
            }
        }
        IAsyncDisposable? replaced;
        lock (connection)
        {
            connection.Watches.TryGetValue(executionId, out replaced);
            connection.Watches[executionId] = watch;
        }
        if (replaced is not null)
            await replaced.DisposeAsync().ConfigureAwait(false);
        if (!_connections.ContainsKey(context.ConnectionId))
            await DropAsync(connection).ConfigureAwait(false); // it disconnected meanwhile
    }

    /// <summary>How long a write to a client may wait for its buffers to drain before the client is dropped.</summary>
    public static readonly TimeSpan StallLimit = TimeSpan.FromSeconds(10);

    /// <summary>Tells a client where to catch up from (if it still reads) and disconnects it.</summary>
    private async ValueTask DropBehindAsync(HubCallerContext context, Guid executionId, long last, string why)
    {
        log.LogInformation("Hub connection {Connection} {Why} on execution {ExecutionId} at seq {Seq} and is dropped", context.ConnectionId, why, executionId, last);
        try
        {
            await hub.Clients.Client(context.ConnectionId)
                .SendAsync("CatchUp", new CatchUp(executionId, last, "This client fell behind the execution's events: read the rest from the events route, then subscribe again after afterSeq."))
                .WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException or IOException)
        {
            // It does not read: the disconnect says it.
        }
        context.Abort();
    }

    public async Task UnwatchAsync(string connectionId, Guid executionId)
    {
        if (!_connections.TryGetValue(connectionId, out var connection))
            return;
        IAsyncDisposable? watch;
        lock (connection)
        {
            if (!connection.Watches.Remove(executionId, out watch))
                return;
        }
        await watch.DisposeAsync().ConfigureAwait(false);
    }

    public void WatchAll(HubCallerContext context)
    {
        var connection = _connections.GetOrAdd(context.ConnectionId, _ => new Connection(context));
        lock (connection)
        {
            if (connection.All is not null)
                return;
            var queue = Channel.CreateBounded<EventView>(new BoundedChannelOptions(MaxQueuedChanges) { SingleReader = true });
            connection.All = notifier.SubscribeAll(record =>
            {
                if (record.Kind != EventKinds.StepOutput && !queue.Writer.TryWrite(View(record)))
                    queue.Writer.TryComplete(new ChannelClosedException("behind"));
                return Task.CompletedTask;
            });
            connection.AllPump = PumpChangesAsync(context, queue.Reader, connection.Stopped.Token);
        }
    }

    private async Task PumpChangesAsync(HubCallerContext context, ChannelReader<EventView> changes, CancellationToken ct)
    {
        var client = hub.Clients.Client(context.ConnectionId);
        try
        {
            await foreach (var change in changes.ReadAllAsync(ct).ConfigureAwait(false))
                await client.SendAsync("ExecutionChanged", change, ct).WaitAsync(StallLimit, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ChannelClosedException or TimeoutException)
        {
            log.LogInformation("Hub connection {Connection} fell behind the executions' state changes and is dropped", context.ConnectionId);
            try
            {
                await client.SendAsync("CatchUp", new CatchUp(null, null, "This client fell behind the executions' state changes: list the executions again, then subscribe again."), CancellationToken.None)
                    .WaitAsync(TimeSpan.FromSeconds(2), CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception send) when (send is TimeoutException or IOException)
            {
                // It does not read: the disconnect says it.
            }
            context.Abort();
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    public Task DropAsync(string connectionId) =>
        _connections.TryRemove(connectionId, out var connection) ? DropAsync(connection) : Task.CompletedTask;

    private static async Task DropAsync(Connection connection)
    {
        List<IAsyncDisposable> watches;
        lock (connection)
        {
            watches = [.. connection.Watches.Values];
            connection.Watches.Clear();
            connection.All?.Dispose();
            connection.All = null;
        }
        await connection.Stopped.CancelAsync().ConfigureAwait(false);
        foreach (var watch in watches)
            await watch.DisposeAsync().ConfigureAwait(false);
        await connection.AllPump.ConfigureAwait(false);
    }

    private EventView View(ExecutionEventRecord record) => _views.GetValue(record, ExecutionService.ToView);

    private SerializedHubMessage Message(ExecutionEventRecord record) =>
        _messages.GetValue(record, r => new SerializedHubMessage(new Microsoft.AspNetCore.SignalR.Protocol.InvocationMessage("ExecutionEvent", [View(r)])));

    private byte[] Json(ExecutionEventRecord record) =>
        _json.GetValue(record, r => JsonSerializer.SerializeToUtf8Bytes(View(r), protocol.Value.PayloadSerializerOptions));

    /// <summary>Told to a client that fell behind, before it is disconnected.</summary>
    public sealed record CatchUp(Guid? ExecutionId, long? AfterSeq, string Reason);

    private sealed class Connection(HubCallerContext context)
    {
        public HubCallerContext Context { get; } = context;
        public Dictionary<Guid, IAsyncDisposable> Watches { get; } = [];
        public IDisposable? All { get; set; }
        public Task AllPump { get; set; } = Task.CompletedTask;
        public CancellationTokenSource Stopped { get; } = new();
    }
}

/// <summary>Events already serialized (each the shape of the events route), written out as one JSON array.</summary>
[JsonConverter(typeof(RawEventsConverter))]
public sealed record RawEvents(IReadOnlyList<byte[]> Events);

public sealed class RawEventsConverter : JsonConverter<RawEvents>
{
    public override RawEvents Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        throw new NotSupportedException("Batches of events are only sent.");

    public override void Write(Utf8JsonWriter writer, RawEvents value, JsonSerializerOptions options)
    {
        writer.WriteStartArray();
        foreach (var json in value.Events)
            writer.WriteRawValue(json, skipInputValidation: true);
        writer.WriteEndArray();
    }
}
