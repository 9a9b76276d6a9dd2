using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;

namespace Presence.Runtime.Remoting;

/// <summary>
/// Serves a silo's grain calls to gateways over TCP (see <see cref="WireProtocol"/>). Each gateway keeps one
/// connection per silo and multiplexes every call on it.
/// </summary>
public sealed class SiloServer : IAsyncDisposable
{
    private readonly ConcurrentDictionary<GatewayConnection, byte> _connections = new();
    private readonly ILogger<SiloServer> _log;
    private Socket? _listener;
    private Task _accepting = Task.CompletedTask;
    private volatile bool _stopping;

    /// <param name="siloId">Sent to clients in the handshake.</param>
    /// <param name="clusterSecret">Null: any client is accepted; else clients must prove they know it.</param>
    public SiloServer(ISiloCalls target, string siloId, string? clusterSecret, ILogger<SiloServer> log)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentException.ThrowIfNullOrEmpty(siloId);
        Target = target;
        SiloId = siloId;
        SecretHash = clusterSecret is null ? null : HashSecret(clusterSecret);
        _log = log;
    }

    public string SiloId { get; }

    internal ISiloCalls Target { get; }

    internal byte[]? SecretHash { get; }

    internal ILogger Log => _log;

    internal static byte[] HashSecret(string secret) => SHA256.HashData(Encoding.UTF8.GetBytes(secret));

    /// <summary>Binds (port 0 = a free port) and starts accepting; returns the bound endpoint.</summary>
    public IPEndPoint Start(IPEndPoint bind)
    {
        ArgumentNullException.ThrowIfNull(bind);
        if (_listener is not null)
        {
            throw new InvalidOperationException("The server was started already.");
        }

        var listener = new Socket(bind.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(bind);
            listener.Listen(512);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        _listener = listener;
        var bound = (IPEndPoint)listener.LocalEndPoint!;
        _log.Listening(SiloId, bound.ToString());
        _accepting = AcceptLoopAsync(listener);
        return bound;
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync().ConfigureAwait(false);
            }
            catch (Exception error) when (error is SocketException or ObjectDisposedException)
            {
                if (!_stopping)
                {
                    _log.AcceptFailed(error);
                }

                return;
            }

            if (_stopping)
            {
                socket.Dispose();
                return;
            }

            var connection = new GatewayConnection(this, socket);
            _connections.TryAdd(connection, 0);
            _ = RunAsync(connection);
        }
    }

    private async Task RunAsync(GatewayConnection connection)
    {
        await connection.RunAsync().ConfigureAwait(false);
        _connections.TryRemove(connection, out _);
    }

    /// <summary>
    /// Stops accepting, lets in-flight calls send their replies (bounded by <paramref name="cancellationToken"/>, then
    /// <see cref="Abort"/>), and closes every connection.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        _listener?.Dispose();
        await _accepting.ConfigureAwait(false);
        var connections = _connections.Keys.ToArray();
        _log.Stopping(SiloId, connections.Length);
        foreach (var connection in connections)
        {
            connection.Stop();
        }

        try
        {
            await Task.WhenAll(connections.Select(c => c.Completion)).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            _log.StopTimedOut(_connections.Count);
            Abort();
        }
    }

    /// <summary>Closes the listener and every connection at once, replying to nothing (a killed process, in tests).</summary>
    public void Abort()
    {
        _stopping = true;
        _listener?.Dispose();
        foreach (var connection in _connections.Keys)
        {
            connection.Abort();
        }
    }

    public async ValueTask DisposeAsync()
    {
        Abort();
        await _accepting.ConfigureAwait(false);
        await Task.WhenAll(_connections.Keys.Select(c => c.Completion)).ConfigureAwait(false);
    }
}
