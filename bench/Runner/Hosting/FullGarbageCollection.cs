using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace Presence.Runner.Hosting;

/// <summary>
/// Makes a .NET process run a full blocking garbage collection from outside, the way <c>dotnet-gcdump</c> does: an
/// EventPipe session over the runtime's diagnostics socket with the runtime provider's <c>GCHeapCollect</c> keyword
/// (and no heap-dump keywords, so no heap walk is streamed). Used to tell live memory from garbage a quiet process
/// has not collected yet. Speaks the documented diagnostics IPC protocol directly: no package needed.
/// </summary>
internal static class FullGarbageCollection
{
    private const ulong GcKeyword = 0x1;
    private const ulong GcHeapCollectKeyword = 0x800000;
    private const uint InformationalLevel = 4;
    private const byte EventPipeCommands = 0x02;
    private const byte StopTracing = 0x01;
    private const byte CollectTracing2 = 0x03;
    private const byte ServerResponse = 0xFF;

    /// <summary>True when the runtime accepted the session (the collection runs as the session starts).</summary>
    public static async Task<bool> RunAsync(int pid, CancellationToken cancellationToken)
    {
        var path = Directory.GetFiles(Path.GetTempPath(), $"dotnet-diagnostic-{pid}-*-socket").FirstOrDefault();
        if (path is null)
        {
            return false;
        }

        using var session = await ConnectAsync(path, cancellationToken);
        var payload = new MemoryStream();
        using (var writer = new BinaryWriter(payload, Encoding.Unicode, leaveOpen: true))
        {
            writer.Write(16u); // circular buffer, MB
            writer.Write(1u); // format: nettrace
            writer.Write(false); // no rundown
            writer.Write(1u); // one provider
            writer.Write(GcKeyword | GcHeapCollectKeyword);
            writer.Write(InformationalLevel);
            WriteString(writer, "Microsoft-Windows-DotNETRuntime");
            WriteString(writer, null);
        }

        await session.SendAsync(Message(CollectTracing2, payload.ToArray()), cancellationToken);
        var sessionId = await ReadOkAsync(session, cancellationToken);
        if (sessionId is null)
        {
            return false;
        }

        // The trace stream must be read for the session to make progress; its content is not needed.
        var draining = DrainAsync(session, cancellationToken);
        await Task.Delay(2000, cancellationToken);
        using (var control = await ConnectAsync(path, cancellationToken))
        {
            var id = new byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(id, sessionId.Value);
            await control.SendAsync(Message(StopTracing, id), cancellationToken);
            await ReadOkAsync(control, cancellationToken);
        }

        await draining.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
        return true;
    }

    private static async Task<Socket> ConnectAsync(string path, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Header: magic "DOTNET_IPC_V1\0", total size (uint16), command set, command id, reserved (uint16).</summary>
    private static byte[] Message(byte command, byte[] payload)
    {
        var message = new byte[20 + payload.Length];
        "DOTNET_IPC_V1\0"u8.CopyTo(message);
        BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(14), (ushort)message.Length);
        message[16] = EventPipeCommands;
        message[17] = command;
        payload.CopyTo(message, 20);
        return message;
    }

    /// <summary>Reads a response; returns its 8-byte payload (the session id) when the server said OK.</summary>
    private static async Task<ulong?> ReadOkAsync(Socket socket, CancellationToken cancellationToken)
    {
        var header = new byte[20];
        await ReadExactlyAsync(socket, header, cancellationToken);
        var size = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(14));
        var payload = new byte[Math.Max(size - 20, 0)];
        await ReadExactlyAsync(socket, payload, cancellationToken);
        return header[16] == ServerResponse && header[17] == 0x00 && payload.Length >= 8
            ? BinaryPrimitives.ReadUInt64LittleEndian(payload)
            : null;
    }

    private static async Task ReadExactlyAsync(Socket socket, byte[] buffer, CancellationToken cancellationToken)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, cancellationToken);
            if (n == 0)
            {
                throw new EndOfStreamException("diagnostics socket closed");
            }

            read += n;
        }
    }

    private static async Task DrainAsync(Socket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[64 * 1024];
        while (await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken) > 0)
        {
        }
    }

    /// <summary>IPC strings: length in UTF-16 units including the terminating NUL, then the characters; 0 for none.</summary>
    private static void WriteString(BinaryWriter writer, string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            writer.Write(0u);
            return;
        }

        writer.Write((uint)(value.Length + 1));
        writer.Write(Encoding.Unicode.GetBytes(value + '\0'));
    }
}
