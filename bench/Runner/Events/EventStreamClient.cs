using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

namespace Presence.Runner.Events;

/// <summary>The parts of one <c>/ws/events</c> message the benchmarks need, as spans over the received frame.</summary>
internal readonly ref struct EventFrame
{
    public required ReadOnlySpan<byte> MessageType { get; init; }
    public required ReadOnlySpan<byte> EventType { get; init; }
    public required ReadOnlySpan<byte> DeviceId { get; init; }
    public required ReadOnlySpan<byte> Status { get; init; }

    /// <summary>Stopwatch timestamp at which the whole message had been received.</summary>
    public required long ReceivedAt { get; init; }

    public bool IsStatus(ReadOnlySpan<byte> status) =>
        MessageType.SequenceEqual("event"u8) && EventType.SequenceEqual("device.status"u8) && Status.SequenceEqual(status);
}

internal delegate void EventFrameHandler(in EventFrame frame);

/// <summary>
/// A portal's <c>/ws/events</c> reader (<see cref="ClientWebSocket"/>): reads every message as fast as it comes, hands
/// each to a handler with its receive timestamp, and, when closed as a slow consumer (4008), resumes from its last
/// cursor as the contract says a portal does. Snapshots are skipped unparsed.
/// </summary>
internal sealed class EventStreamClient(Uri server, EventFrameHandler handler)
{
    private const int SlowConsumer = 4008;
    private const int MaxParsedMessage = 1 << 20;

    private readonly TaskCompletionSource _hello = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly byte[] _cursor = new byte[64];
    private int _cursorLength;

    public long Messages { get; private set; }

    public long Events { get; private set; }

    /// <summary>Reconnections after a 4008 close.</summary>
    public int Resumes { get; private set; }

    /// <summary><c>reset</c> messages: the cursor had fallen out of retention, so events were lost.</summary>
    public int Resets { get; private set; }

    public string? LastClose { get; private set; }

    /// <summary>Completes when the first <c>hello</c> arrived: from then on no event is missed.</summary>
    public Task Connected => _hello.Task;

    public string? Cursor => _cursorLength == 0 ? null : Encoding.ASCII.GetString(_cursor, 0, _cursorLength);

    /// <summary>Reads until cancelled, or until the server closes for another reason than 4008 (then resumes, bounded).</summary>
    public async Task RunAsync(string? since, CancellationToken cancellationToken)
    {
        if (since is not null)
        {
            _cursorLength = Encoding.ASCII.GetBytes(since, _cursor);
        }

        var buffer = new byte[64 * 1024];
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                using var socket = new ClientWebSocket();
                socket.Options.KeepAliveInterval = TimeSpan.Zero;
                var query = Cursor is { } cursor ? $"?since={Uri.EscapeDataString(cursor)}" : "";
                var url = new UriBuilder(server) { Scheme = "ws", Path = "/ws/events", Query = query }.Uri;
                await socket.ConnectAsync(url, cancellationToken);
                var status = await ReadAsync(socket, buffer, cancellationToken);
                LastClose = status?.ToString() ?? "aborted";
                if ((int?)status != SlowConsumer || Resumes >= 100)
                {
                    return;
                }

                Resumes++;
            }
        }
        catch (OperationCanceledException)
        {
            LastClose ??= "open until the end";
        }
        catch (WebSocketException e)
        {
            LastClose = $"error: {e.Message}";
        }
        finally
        {
            _hello.TrySetResult();
        }
    }

    private async Task<WebSocketCloseStatus?> ReadAsync(ClientWebSocket socket, byte[] buffer, CancellationToken cancellationToken)
    {
        var length = 0;
        var oversized = false;
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer.AsMemory(length), cancellationToken);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return socket.CloseStatus;
            }

            length += result.Count;
            if (!result.EndOfMessage)
            {
                if (length == buffer.Length)
                {
                    if (buffer.Length < MaxParsedMessage)
                    {
                        Array.Resize(ref buffer, buffer.Length * 2);
                    }
                    else
                    {
                        oversized = true; // a large snapshot: not needed, dropped piece by piece
                        length = 0;
                    }
                }

                continue;
            }

            var receivedAt = Stopwatch.GetTimestamp();
            Messages++;
            if (!oversized)
            {
                Handle(buffer.AsSpan(0, length), receivedAt);
            }

            length = 0;
            oversized = false;
        }
    }

    private void Handle(ReadOnlySpan<byte> message, long receivedAt)
    {
        ReadOnlySpan<byte> messageType = default, eventType = default, deviceId = default, status = default, cursor = default;
        var reader = new Utf8JsonReader(message);
        var inEvent = false;
        var inData = false;
        while (reader.Read())
        {
            if (reader.TokenType != JsonTokenType.PropertyName)
            {
                continue;
            }

            var depth = reader.CurrentDepth;
            if (depth == 1)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    messageType = reader.ValueSpan;
                }
                else if (reader.ValueTextEquals("cursor"u8))
                {
                    reader.Read();
                    cursor = reader.ValueSpan;
                }
                else if (reader.ValueTextEquals("event"u8))
                {
                    reader.Read();
                    inEvent = reader.TokenType == JsonTokenType.StartObject;
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
            else if (depth == 2 && inEvent)
            {
                if (reader.ValueTextEquals("id"u8))
                {
                    reader.Read();
                    cursor = reader.ValueSpan;
                }
                else if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    eventType = reader.ValueSpan;
                }
                else if (reader.ValueTextEquals("deviceid"u8))
                {
                    reader.Read();
                    deviceId = reader.ValueSpan;
                }
                else if (reader.ValueTextEquals("data"u8))
                {
                    reader.Read();
                    inData = reader.TokenType == JsonTokenType.StartObject;
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
            else if (depth == 3 && inData && reader.ValueTextEquals("status"u8))
            {
                reader.Read();
                status = reader.ValueSpan;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (messageType.SequenceEqual("reset"u8))
        {
            Resets++;
        }

        if (!cursor.IsEmpty && cursor.Length <= _cursor.Length && !messageType.SequenceEqual("snapshot"u8))
        {
            cursor.CopyTo(_cursor);
            _cursorLength = cursor.Length;
        }

        if (messageType.SequenceEqual("event"u8))
        {
            Events++;
        }

        handler(new EventFrame { MessageType = messageType, EventType = eventType, DeviceId = deviceId, Status = status, ReceivedAt = receivedAt });
        if (messageType.SequenceEqual("hello"u8))
        {
            _hello.TrySetResult();
        }
    }
}
