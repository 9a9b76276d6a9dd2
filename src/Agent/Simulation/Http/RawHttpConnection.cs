using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace Presence.Agent.Simulation.Http;

/// <summary>
/// One persistent HTTP/1.1 connection over a raw socket: the caller sends pre-built request bytes and reads
/// responses back one at a time (several when pipelining). Allocation-free per request: the socket operations are
/// pooled by .NET, and so are the state machines of these methods when they complete asynchronously.
/// </summary>
public sealed class RawHttpConnection : IDisposable
{
    private readonly Socket _socket;
    private byte[] _buffer = new byte[16 * 1024];
    private int _start;
    private int _end;

    private RawHttpConnection(Socket socket) => _socket = socket;

    public static async Task<RawHttpConnection> ConnectAsync(EndPoint endPoint, CancellationToken cancellationToken)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endPoint, cancellationToken);
            return new RawHttpConnection(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken)
    {
        while (!request.IsEmpty)
        {
            var sent = await _socket.SendAsync(request, SocketFlags.None, cancellationToken);
            request = request[sent..];
        }
    }

    /// <summary>Reads the next whole response; throws <see cref="EndOfStreamException"/> if the server closed first.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<HttpResponseHead> ReadResponseAsync(CancellationToken cancellationToken)
    {
        HttpResponseHead response;
        while (!TryReadResponse(out response))
        {
            Received(await ReceiveAsync(cancellationToken));
        }

        return response;
    }

    /// <summary>The next whole response if the bytes received so far hold one (no I/O).</summary>
    public bool TryReadResponse(out HttpResponseHead response)
    {
        if (_end > _start && HttpResponseParser.TryParse(_buffer.AsSpan(_start, _end - _start), out response))
        {
            _start += response.Length;
            if (_start == _end)
            {
                _start = _end = 0;
            }

            return true;
        }

        response = default;
        return false;
    }

    /// <summary>
    /// Receives more bytes; give the count to <see cref="Received"/>. With <see cref="TryReadResponse"/> this lets a
    /// caller with many connections wait in its own state machine: an async helper per response allocates a box
    /// each time it has to wait once there are more connections than its pool keeps.
    /// </summary>
    public ValueTask<int> ReceiveAsync(CancellationToken cancellationToken)
    {
        if (_end == _buffer.Length)
        {
            MakeRoom();
        }

        return _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken);
    }

    /// <summary>Takes in what <see cref="ReceiveAsync"/> received; throws <see cref="EndOfStreamException"/> when the server closed.</summary>
    public void Received(int count)
    {
        if (count == 0)
        {
            throw new EndOfStreamException("server closed the connection");
        }

        _end += count;
    }

    private void MakeRoom()
    {
        var pending = _end - _start;
        if (_start == 0)
        {
            Array.Resize(ref _buffer, _buffer.Length * 2);
            return;
        }

        Buffer.BlockCopy(_buffer, _start, _buffer, 0, pending);
        _start = 0;
        _end = pending;
    }

    public void Dispose() => _socket.Dispose();
}
