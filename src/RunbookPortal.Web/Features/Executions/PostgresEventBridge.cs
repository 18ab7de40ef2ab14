using System.Globalization;
using System.Threading.Channels;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Data;

namespace RunbookPortal.Web.Features.Executions;

/// <summary>
/// With PostgreSQL, several portal nodes share one database: this passes each node's committed events to the others
/// with LISTEN/NOTIFY on the channel <see cref="Channel"/>. A notification carries no event, only where to read it:
/// <list type="bullet">
/// <item><c>S node execution seq</c>: a state change (anything but output). The other nodes read that one event and
/// deliver it to every watcher there (pages, lists, the dashboard, hub clients).</item>
/// <item><c>O node execution seq</c>: output up to that seq (one notification per execution per batch); the other nodes
/// read it only if someone there watches that execution (<see cref="ExecutionFeed.Wake"/>).</item>
/// </list>
/// A notification lost (the listening connection dropped, a failed send) delays an update and loses nothing: after a
/// reconnect, and every <see cref="EngineOptions.EventSweepInterval"/>, each watched execution reads what it may have missed.
/// </summary>
public sealed class PostgresEventBridge(
    BridgeDataSource connections,
    ExecutionNotifier notifier,
    ExecutionFeed feed,
    IServiceScopeFactory scopes,
    Microsoft.Extensions.Options.IOptions<EngineOptions> options,
    ILogger<PostgresEventBridge> log) : BackgroundService
{
    public const string Channel = "rbp_events";

    private readonly NpgsqlDataSource _dataSource = connections.DataSource;
    private readonly string _node = Guid.NewGuid().ToString("N")[..12];
    private readonly Channel<ExecutionEventRecord> _outgoing = System.Threading.Channels.Channel.CreateUnbounded<ExecutionEventRecord>(
        new UnboundedChannelOptions { SingleReader = true });
    private readonly Channel<(Guid Execution, long Seq)> _stateChanges = System.Threading.Channels.Channel.CreateUnbounded<(Guid, long)>(
        new UnboundedChannelOptions { SingleReader = true });

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        void OnCommitted(ExecutionEventRecord record) => _outgoing.Writer.TryWrite(record);
        notifier.Committed += OnCommitted;
        stoppingToken.Register(() => notifier.Committed -= OnCommitted);
        return Task.WhenAll(SendAsync(stoppingToken), ListenAsync(stoppingToken), DeliverStateChangesAsync(stoppingToken), SweepAsync(stoppingToken));
    }

    /// <summary>Sends what this node committed, many notifications per round trip.</summary>
    private async Task SendAsync(CancellationToken ct)
    {
        var payloads = new List<string>();
        var output = new Dictionary<Guid, long>();
        while (await _outgoing.Reader.WaitToReadAsync(ct).ConfigureAwait(false))
        {
            payloads.Clear();
            output.Clear();
            while (payloads.Count < 500 && _outgoing.Reader.TryRead(out var record))
            {
                if (record.Kind == EventKinds.StepOutput)
                    output[record.ExecutionId] = Math.Max(record.Seq, output.GetValueOrDefault(record.ExecutionId));
                else
                    payloads.Add(Payload('S', record.ExecutionId, record.Seq));
            }
            foreach (var (execution, seq) in output)
                payloads.Add(Payload('O', execution, seq));
            try
            {
                await using var command = _dataSource.CreateCommand($"SELECT pg_notify('{Channel}', p) FROM unnest($1) AS p");
                command.Parameters.Add(new NpgsqlParameter { Value = payloads.ToArray() });
                await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException)
            {
                log.LogWarning(ex, "Could not tell the other nodes of {Count} new events; their watchers catch up within {Sweep}", payloads.Count, options.Value.EventSweepInterval);
            }
        }
    }

    private string Payload(char kind, Guid execution, long seq) =>
        string.Create(CultureInfo.InvariantCulture, $"{kind} {_node} {execution:N} {seq}");

    /// <summary>Listens on its own connection; reconnects when it drops, and then every watcher reads what it missed.</summary>
    private async Task ListenAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await using var connection = await _dataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
                connection.Notification += (_, e) => Received(e.Payload);
                await using (var listen = new NpgsqlCommand($"LISTEN {Channel}", connection))
                    await listen.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                feed.WakeAll(); // what was written while no one listened
                while (true)
                    await connection.WaitAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                log.LogWarning(ex, "Lost the connection that listens for other nodes' events; reconnecting");
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>Runs on the listening connection's thread: it only sorts, never waits.</summary>
    private void Received(string payload)
    {
        var parts = payload.Split(' ');
        if (parts.Length != 4 || parts[1] == _node || !Guid.TryParseExact(parts[2], "N", out var execution)
            || !long.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out var seq))
            return;
        if (parts[0] == "S")
            _stateChanges.Writer.TryWrite((execution, seq));
        else
            feed.Wake(execution, seq);
    }

    /// <summary>Reads each state change another node committed, and delivers it here as if it were this node's.</summary>
    private async Task DeliverStateChangesAsync(CancellationToken ct)
    {
        await foreach (var (execution, seq) in _stateChanges.Reader.ReadAllAsync(ct).ConfigureAwait(false))
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
                var record = await db.ExecutionEvents.AsNoTracking().FirstOrDefaultAsync(e => e.ExecutionId == execution && e.Seq == seq, ct).ConfigureAwait(false);
                if (record is not null)
                    notifier.Deliver(record);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                log.LogWarning(ex, "Could not read event {Seq} of execution {ExecutionId} from another node", seq, execution);
            }
        }
    }

    private async Task SweepAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(options.Value.EventSweepInterval);
        while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
            feed.WakeAll();
    }
}

/// <summary>The bridge's own connections (not the pool of the database context).</summary>
public sealed record BridgeDataSource(NpgsqlDataSource DataSource) : IAsyncDisposable
{
    public ValueTask DisposeAsync() => DataSource.DisposeAsync();
}
