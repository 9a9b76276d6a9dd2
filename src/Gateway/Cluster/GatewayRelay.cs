using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Text.Json;
using Presence.Gateway.Apis;
using Presence.Gateway.Auth;
using Presence.Gateway.Channels;
using Presence.Grains.Abstractions;
using Presence.Runtime.Cluster;

namespace Presence.Gateway.Cluster;

/// <summary>
/// What one gateway does for the devices and keys of all gateways: delivers a command to the device's channel
/// wherever it is open, closes a removed or rotated device's channels, and ends a revoked key's event streams. In
/// embedded mode there is only this gateway; in a cluster the others hear of it through <see cref="IGatewayMessages"/>.
/// </summary>
public sealed partial class GatewayRelay : IHostedService
{
    /// <summary>How long a command waits for another gateway to say it delivered it (else 409 DEVICE_NOT_CONNECTED).</summary>
    private static readonly TimeSpan DeliveryTimeout = TimeSpan.FromSeconds(2);

    private readonly DeviceChannels _channels;
    private readonly KeyRevocations _revocations;
    private readonly IGatewayMessages? _messages;
    private readonly ILogger<GatewayRelay> _log;
    private readonly string _id = Guid.NewGuid().ToString("N")[..12];
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _awaiting = new(StringComparer.Ordinal);

    public GatewayRelay(DeviceChannels channels, KeyRevocations revocations, ILogger<GatewayRelay> log, IGatewayMessages? messages = null)
    {
        _channels = channels;
        _revocations = revocations;
        _log = log;
        _messages = messages;
    }

    /// <summary>Started with the host, so this gateway hears the others before it serves anything.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        _messages?.OnMessage(Receive);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Sends the command to the device's newest channel, on this gateway or (in a cluster) another; false when none took it.</summary>
    public async ValueTask<bool> SendCommandAsync(DeviceKey key, DeviceCommand command, CancellationToken cancellationToken)
    {
        if (await _channels.SendCommandAsync(key, command))
        {
            return true;
        }

        if (_messages is null)
        {
            return false;
        }

        var relay = Message("command", key, writer =>
        {
            writer.WriteString("relay", command.CommandId);
            writer.WriteString("command_id", command.CommandId);
            writer.WriteString("name", command.Name);
            if (command.Args is { } args)
            {
                writer.WritePropertyName("args");
                args.WriteTo(writer);
            }
        });
        if (System.Text.Encoding.UTF8.GetByteCount(relay) > _messages.MaxMessageBytes)
        {
            LogTooLarge(_log, key.TenantId, key.ShortId);
            return false;
        }

        var delivered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _awaiting[command.CommandId] = delivered;
        try
        {
            await _messages.PublishAsync(relay, cancellationToken);
            await delivered.Task.WaitAsync(DeliveryTimeout, cancellationToken);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
        finally
        {
            _awaiting.TryRemove(command.CommandId, out _);
        }
    }

    /// <summary>Closes every channel of the device on every gateway (removed, or its secret rotated).</summary>
    public async Task CloseChannelsAsync(DeviceKey key, string reason, WebSocketCloseStatus status, CancellationToken cancellationToken)
    {
        await _channels.CloseAsync(key, reason, status);
        if (_messages is not null)
        {
            await PublishQuietlyAsync(Message("close", key, writer =>
            {
                writer.WriteString("reason", reason);
                writer.WriteNumber("status", (int)status);
            }), cancellationToken);
        }
    }

    /// <summary>Ends the event streams opened with the key, on every gateway (requests look keys up anyway).</summary>
    public async Task RevokeKeyAsync(string keyId, CancellationToken cancellationToken)
    {
        _revocations.Revoke(keyId);
        if (_messages is not null)
        {
            await PublishQuietlyAsync(Message("revoke", null, writer => writer.WriteString("key_id", keyId)), cancellationToken);
        }
    }

    /// <summary>The other gateways are told best effort: the change itself is durable and enforced without them.</summary>
    private async Task PublishQuietlyAsync(string message, CancellationToken cancellationToken)
    {
        try
        {
            await _messages!.PublishAsync(message, cancellationToken);
        }
        catch (Runtime.Storage.UnavailableException error)
        {
            LogPublishFailed(_log, error.Message);
        }
    }

    private string Message(string type, DeviceKey? key, Action<Utf8JsonWriter> body)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("type", type);
            writer.WriteString("from", _id);
            if (key is { } device)
            {
                writer.WriteString("tenant", device.TenantId);
                writer.WriteString("device", device.DeviceId);
            }

            body(writer);
            writer.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    private void Receive(string payload)
    {
        try
        {
            using var document = JsonDocument.Parse(payload);
            var root = document.RootElement;
            var from = root.GetProperty("from").GetString();
            var key = root.TryGetProperty("device", out var device)
                ? new DeviceKey(root.GetProperty("tenant").GetString()!, device.GetString()!)
                : default;
            switch (root.GetProperty("type").GetString())
            {
                case "command" when from != _id && _channels.IsOpen(key):
                    var command = new DeviceCommand(
                        root.GetProperty("command_id").GetString()!,
                        root.GetProperty("name").GetString()!,
                        root.TryGetProperty("args", out var args) ? args.Clone() : null);
                    _ = DeliverAsync(key, command, root.GetProperty("relay").GetString()!, from!);
                    break;
                case "delivered" when root.GetProperty("to").GetString() == _id:
                    if (_awaiting.TryGetValue(root.GetProperty("relay").GetString()!, out var waiting))
                    {
                        waiting.TrySetResult();
                    }

                    break;
                case "close" when from != _id:
                    _ = _channels.CloseAsync(key, root.GetProperty("reason").GetString()!, (WebSocketCloseStatus)root.GetProperty("status").GetInt32());
                    break;
                case "revoke" when from != _id:
                    _revocations.Revoke(root.GetProperty("key_id").GetString()!);
                    break;
            }
        }
        catch (Exception error) when (error is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            LogMalformed(_log, error.Message);
        }
    }

    private async Task DeliverAsync(DeviceKey key, DeviceCommand command, string relay, string to)
    {
        if (await _channels.SendCommandAsync(key, command))
        {
            await PublishQuietlyAsync(Message("delivered", null, writer =>
            {
                writer.WriteString("relay", relay);
                writer.WriteString("to", to);
            }), CancellationToken.None);
        }
    }

    [LoggerMessage(EventId = 3211, Level = LogLevel.Warning, Message = "A command for {Tenant}/{DeviceIdPrefix} is too large to pass to another gateway; answered 409")]
    private static partial void LogTooLarge(ILogger logger, string tenant, string deviceIdPrefix);

    [LoggerMessage(EventId = 3212, Level = LogLevel.Warning, Message = "Could not tell the other gateways ({Reason}); they catch up when the device or key is next used")]
    private static partial void LogPublishFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 3213, Level = LogLevel.Warning, Message = "Ignored a malformed gateway message ({Reason})")]
    private static partial void LogMalformed(ILogger logger, string reason);
}
