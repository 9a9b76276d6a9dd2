using System.Buffers;
using System.Collections.Concurrent;
using System.Net.WebSockets;
using Presence.Gateway.Apis;
using Presence.Gateway.Streaming;
using Presence.Grains.Abstractions;

namespace Presence.Gateway.Channels;

/// <summary>
/// One open <c>/ws/device</c> socket. Sends come from the socket's own loop (acks, errors) and from command
/// requests, so they are serialised here.
/// </summary>
public sealed class DeviceChannel(WebSocket socket) : IDisposable
{
    private readonly SemaphoreSlim _send = new(1, 1);
    private readonly ArrayBufferWriter<byte> _buffer = new(512);

    public async ValueTask<bool> TrySendAsync<TState>(TState state, Action<System.Text.Json.Utf8JsonWriter, TState> write)
    {
        await _send.WaitAsync();
        try
        {
            if (socket.State != WebSocketState.Open)
            {
                return false;
            }

            await SocketMessages.SendAsync(socket, _buffer, state, write, CancellationToken.None);
            return true;
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
            return false;
        }
        finally
        {
            _send.Release();
        }
    }

    public async Task CloseAsync(WebSocketCloseStatus status, string reason)
    {
        await _send.WaitAsync();
        try
        {
            if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                await socket.CloseOutputAsync(status, reason, CancellationToken.None);
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Already gone: nothing to close.
        }
        finally
        {
            _send.Release();
        }
    }

    public void Dispose() => _send.Dispose();
}

/// <summary>
/// The device channels open on this gateway, by device: where commands are delivered (the newest channel), and what
/// is closed when the device is removed or its secret rotated (every channel, older ones included).
/// </summary>
public sealed class DeviceChannels
{
    private readonly ConcurrentDictionary<DeviceKey, DeviceChannel[]> _open = new();
    private TaskCompletionSource _changed = NewSignal();

    public bool IsOpen(DeviceKey key) => _open.ContainsKey(key);

    /// <summary>Completes at the next registration or removal, so a caller can await a channel's phase instead of polling.</summary>
    public Task WhenChangedAsync() => Volatile.Read(ref _changed).Task;

    /// <summary>A newer channel of the same device replaces an older one as the target of commands.</summary>
    public void Register(DeviceKey key, DeviceChannel channel)
    {
        _open.AddOrUpdate(key, static (_, c) => [c], static (_, open, c) => [.. open, c], channel);
        Changed();
    }

    public void Unregister(DeviceKey key, DeviceChannel channel)
    {
        while (_open.TryGetValue(key, out var open) && Array.IndexOf(open, channel) >= 0)
        {
            var removed = open.Length == 1
                ? _open.TryRemove(KeyValuePair.Create(key, open))
                : _open.TryUpdate(key, [.. open.Where(c => c != channel)], open);
            if (removed)
            {
                Changed();
                return;
            }
        }
    }

    private void Changed() => Interlocked.Exchange(ref _changed, NewSignal()).TrySetResult();

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async ValueTask<bool> SendCommandAsync(DeviceKey key, DeviceCommand command) =>
        _open.TryGetValue(key, out var open) && await open[^1].TrySendAsync(command, static (writer, c) =>
        {
            writer.WriteStartObject();
            writer.WriteString("type", "command");
            writer.WriteString("command_id", c.CommandId);
            writer.WriteString("name", c.Name);
            writer.WritePropertyName("args");
            if (c.Args is { } args)
            {
                args.WriteTo(writer);
            }
            else
            {
                writer.WriteStartObject();
                writer.WriteEndObject();
            }

            writer.WriteEndObject();
        });

    /// <summary>Closes every channel of the device (removed, or its credentials revoked).</summary>
    public async Task CloseAsync(DeviceKey key, string reason, WebSocketCloseStatus status = WebSocketCloseStatus.NormalClosure)
    {
        if (_open.TryRemove(key, out var open))
        {
            Changed();
            foreach (var channel in open)
            {
                await channel.CloseAsync(status, reason);
            }
        }
    }
}
