using System.Buffers;
using System.Buffers.Binary;

namespace Presence.Runtime.Remoting;

/// <summary>
/// The gateway-to-silo protocol. Every message is a frame: a 4-byte little-endian length of what follows, a type
/// byte (a <see cref="WireMethod"/> from client to silo, a <see cref="WireStatus"/> back), a 4-byte call id, and the
/// payload (<see cref="WireCodec"/>). Calls are multiplexed by id: replies come back in any order.
/// </summary>
internal static class WireProtocol
{
    public const int Version = 1;

    /// <summary>Type byte + call id.</summary>
    public const int HeaderSize = 5;

    public const int MaxFrameSize = 4 * 1024 * 1024;

    public static ReadOnlySpan<byte> Magic => "PRSN"u8;

    public const int SecretHashSize = 32;
}

/// <summary>The type byte of a frame sent to the silo.</summary>
internal enum WireMethod : byte
{
    Hello = 0,
    Heartbeat = 1,
    Provision = 2,
    Get = 3,
    Remove = 4,
    Sessions = 5,
    ChannelOpened = 6,
    ChannelClosed = 7,
    CommandResult = 8,
    HeartbeatsLastMinute = 9,
}

/// <summary>The type byte of a frame sent by the silo.</summary>
internal enum WireStatus : byte
{
    Ok = 0,

    /// <summary>Payload: the partition (the caller should route again).</summary>
    NotOwner = 1,

    /// <summary>Payload: message and retry-after.</summary>
    Unavailable = 2,

    /// <summary>Payload: a short message (exception type and message, no stack).</summary>
    Failed = 3,

    /// <summary>The handshake was refused (payload: why); the silo closes the connection.</summary>
    Refused = 4,
}

/// <summary>One received frame, valid only during the handler's call.</summary>
internal readonly ref struct WireFrame(byte type, int id, ReadOnlySpan<byte> payload)
{
    public byte Type { get; } = type;

    public int Id { get; } = id;

    public ReadOnlySpan<byte> Payload { get; } = payload;
}

/// <summary>Handles one frame; false stops reading after it (the rest stays buffered for the next read).</summary>
internal delegate bool FrameHandler(WireFrame frame);

/// <summary>Writes a frame's payload from <paramref name="state"/> (static lambdas: no allocation per frame).</summary>
internal delegate void PayloadWriter<in TState>(ref WireWriter writer, TState state);

/// <summary>
/// The frames waiting to be sent on one connection: callers append whole frames under the connection's lock, and
/// its writer sends everything appended so far in one socket write.
/// </summary>
internal sealed class FrameBuffer : IBufferWriter<byte>
{
    private const int InitialSize = 16 * 1024;
    private const int RetainedSize = 1024 * 1024;
    private byte[] _buffer = new byte[InitialSize];
    private int _length;

    public int Length => _length;

    public ReadOnlyMemory<byte> Written => _buffer.AsMemory(0, _length);

    public void Advance(int count) => _length += count;

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Grow(sizeHint);
        return _buffer.AsMemory(_length);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Grow(sizeHint);
        return _buffer.AsSpan(_length);
    }

    /// <summary>Appends one frame; false (nothing appended) when it would exceed <see cref="WireProtocol.MaxFrameSize"/>.</summary>
    public bool TryAppend<TState>(byte type, int id, TState state, PayloadWriter<TState> payload)
    {
        var start = _length;
        var header = GetSpan(4 + WireProtocol.HeaderSize);
        header[4] = type;
        BinaryPrimitives.WriteInt32LittleEndian(header[5..], id);
        _length += 4 + WireProtocol.HeaderSize;
        try
        {
            var writer = new WireWriter(this);
            payload(ref writer, state);
            writer.Flush();
        }
        catch
        {
            _length = start;
            throw;
        }

        var size = _length - start - 4;
        if (size > WireProtocol.MaxFrameSize)
        {
            _length = start;
            return false;
        }

        BinaryPrimitives.WriteInt32LittleEndian(_buffer.AsSpan(start), size);
        return true;
    }

    public void Clear()
    {
        _length = 0;
        if (_buffer.Length > RetainedSize)
        {
            _buffer = new byte[InitialSize];
        }
    }

    private void Grow(int sizeHint)
    {
        var needed = _length + Math.Max(sizeHint, 1);
        if (needed > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(needed, _buffer.Length * 2));
        }
    }
}
