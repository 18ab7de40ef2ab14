using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace RunbookPortal.Web.Tests.Infrastructure;

/// <summary>
/// A TCP relay between a portal node and its database, so a test can cut the node off: after <see cref="Cut"/> the
/// connections stay open but nothing more goes through them, and new ones are accepted and never answered — the
/// network partition a node cannot tell from a slow database, not the quick error of a refused connection.
/// </summary>
public sealed class TcpProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _cut = new();
    private readonly ConcurrentBag<TcpClient> _connections = [];
    private readonly Task _accepting;

    private TcpProxy(string host, int port)
    {
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync(host, port);
    }

    /// <summary>The local port that leads to the target.</summary>
    public int Port { get; }

    public static TcpProxy Start(string host, int port) => new(host, port);

    /// <summary>From now on nothing passes, in either direction, on old or new connections.</summary>
    public void Cut() => _cut.Cancel();

    private async Task AcceptAsync(string host, int port)
    {
        while (true)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync();
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                return; // disposed
            }
            _connections.Add(client);
            if (_cut.IsCancellationRequested)
                continue; // held open, never answered
            var server = new TcpClient();
            _connections.Add(server);
            try
            {
                await server.ConnectAsync(host, port);
            }
            catch (SocketException)
            {
                client.Dispose();
                continue;
            }
            _ = PumpAsync(client.GetStream(), server.GetStream());
            _ = PumpAsync(server.GetStream(), client.GetStream());
        }
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to)
    {
        var buffer = new byte[16384];
        try
        {
            while (true)
            {
                var read = await from.ReadAsync(buffer, _cut.Token);
                if (read == 0)
                {
                    to.Socket.Shutdown(SocketShutdown.Send);
                    return;
                }
                await to.WriteAsync(buffer.AsMemory(0, read), _cut.Token);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            // Cut (the sockets stay open, silent) or closed by one side.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _cut.CancelAsync();
        _listener.Stop();
        foreach (var connection in _connections)
            connection.Dispose();
        await _accepting;
        _cut.Dispose();
    }
}
