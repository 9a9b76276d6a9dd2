using System.Buffers;
using System.Net.WebSockets;
using System.Text.Json;

namespace Presence.Cluster.Tests.Processes;

/// <summary>One event as a reader received it.</summary>
internal sealed record ObservedEvent(string Id, string DeviceId, string Type, long Sequence, DateTimeOffset Time, string? Status, string? Reason)
{
    public bool IsOffline => Type == "device.status" && Status == "offline";

    public override string ToString() => $"{Id} {DeviceId}#{Sequence} {Type} {Status} {Reason} at {Time:HH:mm:ss.fff}";
}

/// <summary>
/// A portal reader: <c>/ws/events?since=</c> on one gateway, collecting every event until the socket closes or the
/// reader is disposed.
/// </summary>
internal sealed class EventReader : IAsyncDisposable
{
    private readonly ClientWebSocket _socket;
    private readonly List<ObservedEvent> _events = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _receiving;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private EventReader(string name, ClientWebSocket socket)
    {
        Name = name;
        _socket = socket;
        _receiving = ReceiveAsync();
    }

    public string Name { get; }

    /// <summary>Why the stream ended (the socket closed or broke), or null while it runs.</summary>
    public string? Ended { get; private set; }

    /// <summary>The events received so far, in order.</summary>
    public IReadOnlyList<ObservedEvent> Events
    {
        get
        {
            lock (_events)
            {
                return _events.ToList();
            }
        }
    }

    /// <summary>The cursor to resume after the last event received (the one it started from if none).</summary>
    public string LastCursor { get; private set; } = "";

    public static async Task<EventReader> ConnectAsync(string name, Uri gateway, string since)
    {
        var socket = new ClientWebSocket();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        await socket.ConnectAsync(new Uri(new UriBuilder(gateway) { Scheme = "ws" }.Uri, $"/ws/events?since={Uri.EscapeDataString(since)}"), timeout.Token);
        return new EventReader(name, socket) { LastCursor = since };
    }

    /// <summary>Completes when the next event arrives or the stream ends (tests await this instead of polling).</summary>
    public Task NextChangeAsync() => Volatile.Read(ref _changed).Task;

    /// <summary>Waits until the stream has ended (the gateway went away), within <paramref name="timeout"/>.</summary>
    public Task EndedAsync(TimeSpan timeout) => _receiving.WaitAsync(timeout);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _receiving.WaitAsync(TimeSpan.FromSeconds(10));
        _socket.Dispose();
        _stop.Dispose();
    }

    private async Task ReceiveAsync()
    {
        var buffer = new ArrayBufferWriter<byte>(64 * 1024);
        try
        {
            while (true)
            {
                buffer.Clear();
                ValueWebSocketReceiveResult result;
                do
                {
                    result = await _socket.ReceiveAsync(buffer.GetMemory(16 * 1024), _stop.Token);
                    buffer.Advance(result.Count);
                }
                while (!result.EndOfMessage);

                if (result.MessageType == WebSocketMessageType.Close)
                {
                    Ended = $"closed by the gateway: {_socket.CloseStatus} {_socket.CloseStatusDescription}";
                    return;
                }

                Receive(JsonDocument.Parse(buffer.WrittenMemory).RootElement);
                Changed();
            }
        }
        catch (OperationCanceledException)
        {
            Ended = "stopped by the test";
        }
        catch (WebSocketException e)
        {
            Ended = $"broken: {e.Message}";
        }
        finally
        {
            Changed();
        }
    }

    private void Changed() => Interlocked.Exchange(ref _changed, new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    private void Receive(JsonElement message)
    {
        switch (message.GetProperty("type").GetString())
        {
            case "hello":
                break;
            case "event":
                var e = message.GetProperty("event");
                var data = e.TryGetProperty("data", out var d) && d.ValueKind == JsonValueKind.Object ? d : default;
                var observed = new ObservedEvent(
                    e.GetProperty("id").GetString()!,
                    e.GetProperty("deviceid").GetString()!,
                    e.GetProperty("type").GetString()!,
                    e.GetProperty("sequence").GetInt64(),
                    e.GetProperty("time").GetDateTimeOffset(),
                    data.ValueKind == JsonValueKind.Object && data.TryGetProperty("status", out var status) ? status.GetString() : null,
                    data.ValueKind == JsonValueKind.Object && data.TryGetProperty("reason", out var reason) ? reason.GetString() : null);
                lock (_events)
                {
                    _events.Add(observed);
                }

                LastCursor = observed.Id;
                break;
            default:
                // A reset or error would mean the stream is not what the test asked for.
                lock (_events)
                {
                    _events.Add(new ObservedEvent("?", "?", "unexpected message: " + message.GetRawText(), 0, default, null, null));
                }

                break;
        }
    }
}
