using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net.Sockets;

namespace Presence.Runtime.Remoting;

/// <summary>
/// One TCP connection carrying frames, for either side. Any thread may <see cref="TrySend"/>; one writer loop sends
/// whatever accumulated while the previous write was in progress, so many queued frames cost one socket write.
/// </summary>
internal sealed class WireSocket : IDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _input;
    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _wake = new(0, 1);
    private FrameBuffer _pending = new();
    private FrameBuffer _sending = new();
    private bool _wakeSignaled;
    private bool _completing;
    private bool _closed;

    public WireSocket(Socket socket)
    {
        socket.NoDelay = true;
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 4096, leaveOpen: true));
        Writing = WriteLoopAsync();
    }

    /// <summary>Completes when the writer stops: after <see cref="CompleteWrites"/> has sent everything, or on an error.</summary>
    public Task Writing { get; }

    public string Remote => _socket.RemoteEndPoint?.ToString() ?? "?";

    /// <summary>
    /// Queues one frame. False when the connection is closed (the frame is dropped). Throws
    /// <see cref="InvalidDataException"/> when the frame would exceed the size limit (nothing is queued).
    /// </summary>
    public bool TrySend<TState>(byte type, int id, TState state, PayloadWriter<TState> payload)
    {
        var wake = false;
        lock (_gate)
        {
            if (_closed || _completing)
            {
                return false;
            }

            if (!_pending.TryAppend(type, id, state, payload))
            {
                throw new InvalidDataException($"the frame exceeds {WireProtocol.MaxFrameSize} bytes");
            }

            if (!_wakeSignaled)
            {
                _wakeSignaled = wake = true;
            }
        }

        if (wake)
        {
            _wake.Release();
        }

        return true;
    }

    /// <summary>Sends what is queued, then stops writing (see <see cref="Writing"/>); later frames are dropped.</summary>
    public void CompleteWrites()
    {
        var wake = false;
        lock (_gate)
        {
            _completing = true;
            if (!_wakeSignaled)
            {
                _wakeSignaled = wake = true;
            }
        }

        if (wake)
        {
            _wake.Release();
        }
    }

    private async Task WriteLoopAsync()
    {
        try
        {
            while (true)
            {
                await _wake.WaitAsync().ConfigureAwait(false);
                bool last;
                lock (_gate)
                {
                    if (_closed)
                    {
                        return;
                    }

                    (_pending, _sending) = (_sending, _pending);
                    _wakeSignaled = false;
                    last = _completing || _closed;
                }

                if (_sending.Length > 0)
                {
                    await _stream.WriteAsync(_sending.Written).ConfigureAwait(false);
                    _sending.Clear();
                }

                if (last)
                {
                    return;
                }
            }
        }
        catch (Exception error) when (error is IOException or SocketException or ObjectDisposedException)
        {
            // The reader sees the connection fail too and reports it; make sure it does.
            Dispose();
        }
    }

    /// <summary>
    /// Reads frames and hands each to <paramref name="handler"/>. Returns true when the handler asked to stop, false
    /// when the peer closed the connection or <see cref="CancelRead"/> was called. Throws
    /// <see cref="InvalidDataException"/> on a malformed or oversized frame.
    /// </summary>
    public async Task<bool> ReadFramesAsync(FrameHandler handler, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await _input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            var stopped = false;
            try
            {
                stopped = Dispatch(ref buffer, handler);
            }
            finally
            {
                // After a stop, leave the rest unexamined so the next read returns it at once.
                _input.AdvanceTo(buffer.Start, stopped ? buffer.Start : buffer.End);
            }

            if (stopped)
            {
                return true;
            }

            if (result.IsCanceled)
            {
                return false;
            }

            if (result.IsCompleted)
            {
                return buffer.IsEmpty ? false : throw new InvalidDataException("the connection closed in the middle of a frame");
            }
        }
    }

    /// <summary>Makes the current or next <see cref="ReadFramesAsync"/> return false after the frames already buffered.</summary>
    public void CancelRead() => _input.CancelPendingRead();

    private static bool Dispatch(ref ReadOnlySequence<byte> buffer, FrameHandler handler)
    {
        while (TryTakeFrame(ref buffer, out var frame))
        {
            bool keepReading;
            if (frame.IsSingleSegment)
            {
                keepReading = Handle(frame.FirstSpan, handler);
            }
            else
            {
                var copy = ArrayPool<byte>.Shared.Rent((int)frame.Length);
                try
                {
                    frame.CopyTo(copy);
                    keepReading = Handle(copy.AsSpan(0, (int)frame.Length), handler);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(copy);
                }
            }

            if (!keepReading)
            {
                return true;
            }
        }

        return false;
    }

    private static bool Handle(ReadOnlySpan<byte> frame, FrameHandler handler) =>
        handler(new WireFrame(frame[0], BinaryPrimitives.ReadInt32LittleEndian(frame[1..]), frame[WireProtocol.HeaderSize..]));

    private static bool TryTakeFrame(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> frame)
    {
        frame = default;
        if (buffer.Length < 4)
        {
            return false;
        }

        Span<byte> prefix = stackalloc byte[4];
        buffer.Slice(0, 4).CopyTo(prefix);
        var size = BinaryPrimitives.ReadUInt32LittleEndian(prefix);
        if (size is < WireProtocol.HeaderSize or > WireProtocol.MaxFrameSize)
        {
            throw new InvalidDataException($"a frame of {size} bytes (the limit is {WireProtocol.MaxFrameSize})");
        }

        if (buffer.Length < 4 + size)
        {
            return false;
        }

        frame = buffer.Slice(4, size);
        buffer = buffer.Slice(frame.End);
        return true;
    }

    /// <summary>Closes the connection at once: queued frames are dropped, reads and writes fail.</summary>
    public void Dispose()
    {
        var wake = false;
        lock (_gate)
        {
            if (_closed)
            {
                return;
            }

            _closed = true;
            if (!_wakeSignaled)
            {
                _wakeSignaled = wake = true;
            }
        }

        if (wake)
        {
            _wake.Release();
        }

        _socket.Dispose();
        _stream.Dispose();
    }
}
