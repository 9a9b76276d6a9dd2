using System.Net;
using System.Net.Sockets;

namespace Presence.Agent.Simulation.Http;

/// <summary>
/// One persistent HTTP/1.1 connection over a raw socket: the caller sends pre-built request bytes and reads
/// responses back one at a time (several when pipelining). Allocation-free per request.
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

    public async ValueTask SendAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken)
    {
        while (!request.IsEmpty)
        {
            var sent = await _socket.SendAsync(request, SocketFlags.None, cancellationToken);
            request = request[sent..];
        }
    }

    /// <summary>Reads the next whole response; throws <see cref="EndOfStreamException"/> if the server closed first.</summary>
    public async ValueTask<HttpResponseHead> ReadResponseAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (_end > _start && HttpResponseParser.TryParse(_buffer.AsSpan(_start, _end - _start), out var response))
            {
                _start += response.Length;
                if (_start == _end)
                {
                    _start = _end = 0;
                }

                return response;
            }

            if (_end == _buffer.Length)
            {
                MakeRoom();
            }

            var read = await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken);
            if (read == 0)
            {
                throw new EndOfStreamException("server closed the connection");
            }

            _end += read;
        }
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
