using System.Buffers;
using System.Net.WebSockets;
using System.Text.Json;
using Presence.Gateway.Errors;

namespace Presence.Gateway.Streaming;

/// <summary>Text-frame I/O shared by both WebSockets: whole messages in, JSON objects out.</summary>
public static class SocketMessages
{
    public const int MaxIncomingBytes = 64 * 1024;

    public const WebSocketCloseStatus SlowConsumer = (WebSocketCloseStatus)4008;

    /// <summary>The credentials the socket was opened with expired or were revoked: authenticate again, then reconnect.</summary>
    public const WebSocketCloseStatus Unauthorized = (WebSocketCloseStatus)4001;

    /// <summary>1013 Try Again Later: the server cannot serve the stream now (storage unavailable).</summary>
    public const WebSocketCloseStatus TryAgainLater = (WebSocketCloseStatus)1013;

    public enum Kind : byte
    {
        Text,
        Binary,
        TooLarge,
        Closed,
    }

    /// <summary>Receives one whole message into <paramref name="buffer"/> (which bounds its size).</summary>
    public static async ValueTask<(Kind Kind, int Length)> ReceiveAsync(WebSocket socket, byte[] buffer, CancellationToken cancellationToken)
    {
        var length = 0;
        while (true)
        {
            if (length == buffer.Length)
            {
                return (Kind.TooLarge, length);
            }

            var result = await socket.ReceiveAsync(buffer.AsMemory(length), cancellationToken);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return (Kind.Closed, 0);
            }

            length += result.Count;
            if (result.EndOfMessage)
            {
                return (result.MessageType == WebSocketMessageType.Text ? Kind.Text : Kind.Binary, length);
            }
        }
    }

    /// <summary>The top-level <c>type</c> of a frame, or null when it is not a JSON object with a string <c>type</c>.</summary>
    public static string? FrameType(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 32 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isType = reader.ValueTextEquals("type"u8);
                reader.Read();
                if (isType)
                {
                    return reader.TokenType == JsonTokenType.String && reader.ValueSpan.Length <= 64 ? reader.GetString() : null;
                }

                reader.Skip();
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            return null;
        }

        return null;
    }

    /// <summary>Writes one JSON object with <paramref name="write"/> and sends it as one text message.</summary>
    public static async ValueTask SendAsync<TState>(WebSocket socket, ArrayBufferWriter<byte> buffer, TState state, Action<Utf8JsonWriter, TState> write, CancellationToken cancellationToken)
    {
        buffer.ResetWrittenCount();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer, state);
        }

        await socket.SendAsync(buffer.WrittenMemory, WebSocketMessageType.Text, endOfMessage: true, cancellationToken);
    }

    public static void WriteError(Utf8JsonWriter writer, ApiError error)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "error");
        error.WriteObject(writer, "error");
        if (error.RetryAfterSeconds is { } retryAfter)
        {
            // What HTTP says in Retry-After; a frame has no headers.
            writer.WriteNumber("retry_after_s", retryAfter);
        }

        writer.WriteEndObject();
    }
}

/// <summary>
/// Flood control for one socket: a token bucket of <see cref="Burst"/> messages refilled at
/// <see cref="PerSecond"/> a second. A client that empties it is closed (1008).
/// </summary>
public sealed class MessageRateLimit(TimeProvider time)
{
    public const int Burst = 60;
    public const int PerSecond = 20;

    private double _tokens = Burst;
    private long _last = time.GetTimestamp();

    public bool TryTake()
    {
        var now = time.GetTimestamp();
        _tokens = Math.Min(Burst, _tokens + (time.GetElapsedTime(_last, now).TotalSeconds * PerSecond));
        _last = now;
        if (_tokens < 1)
        {
            return false;
        }

        _tokens--;
        return true;
    }
}

/// <summary>WebSocket settings shared by both sockets: dead peers are detected by ping/pong.</summary>
internal static class SocketOptions
{
    public static readonly WebSocketAcceptContext Accept = new()
    {
        KeepAliveInterval = TimeSpan.FromSeconds(15),
        KeepAliveTimeout = TimeSpan.FromSeconds(30),
    };
}
