using System.Net.WebSockets;
using System.Text.Json;
using Presence.Gateway.Apis;
using Presence.Gateway.Auth;
using Presence.Gateway.Errors;
using Presence.Gateway.Streaming;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;

namespace Presence.Gateway.Channels;

/// <summary>
/// <c>GET /ws/device</c>: a device's persistent channel. Heartbeat frames are applied like HTTP heartbeats and
/// acknowledged; the first one binds the socket to its device, which then stays online until the socket closes
/// (plus the disconnect grace). Commands arrive here; their results go back to the grain as events.
/// </summary>
public static class DeviceChannelEndpoint
{
    public static IEndpointRouteBuilder MapDeviceChannel(this IEndpointRouteBuilder app)
    {
        app.MapGet("/ws/device", RunAsync).RequireAccess(Access.Device, queryToken: true);
        return app;
    }

    private static async Task<IResult> RunAsync(
        HttpContext context, IDeviceGrains grains, ApiContext api, DeviceChannels channels, IHostApplicationLifetime lifetime)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            return new ApiErrorResult(ApiError.UpgradeRequired());
        }

        using var socket = await context.WebSockets.AcceptWebSocketAsync(SocketOptions.Accept);
        using var channel = new DeviceChannel(socket);
        var session = new DeviceSession(socket, channel, context, grains, api, channels);
        using (lifetime.ApplicationStopping.Register(() => _ = channel.CloseAsync(WebSocketCloseStatus.EndpointUnavailable, "server shutting down")))
        {
            await session.RunAsync(context.RequestAborted);
        }

        return Results.Empty;
    }

    private sealed class DeviceSession(
        WebSocket socket, DeviceChannel channel, HttpContext context, IDeviceGrains grains, ApiContext api, DeviceChannels channels)
    {
        private readonly byte[] _buffer = new byte[SocketMessages.MaxIncomingBytes];
        private readonly MessageRateLimit _rate = new(api.Time);
        private readonly Caller _caller = context.Caller();
        private DeviceKey? _bound;

        public async Task RunAsync(CancellationToken cancellationToken)
        {
            try
            {
                while (true)
                {
                    var (kind, length) = await SocketMessages.ReceiveAsync(socket, _buffer, cancellationToken);
                    if (kind == SocketMessages.Kind.Closed)
                    {
                        await channel.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye");
                        return;
                    }

                    if (kind == SocketMessages.Kind.TooLarge)
                    {
                        await channel.CloseAsync(WebSocketCloseStatus.MessageTooBig, "frame larger than 64 KiB");
                        return;
                    }

                    if (!_rate.TryTake())
                    {
                        await channel.CloseAsync(WebSocketCloseStatus.PolicyViolation, "too many messages");
                        return;
                    }

                    if (_caller.Device is { } token && api.Now >= token.ExpiresAt)
                    {
                        // Tokens are checked at the upgrade and on every frame: an expired one ends the channel.
                        await channel.CloseAsync(SocketMessages.Unauthorized, "token expired: get a new one and reconnect");
                        return;
                    }

                    var error = kind == SocketMessages.Kind.Binary
                        ? ApiError.BodyNotJson("frames must be text: one JSON object each")
                        : await HandleAsync(_buffer.AsMemory(0, length), cancellationToken);
                    if (error is not null)
                    {
                        await channel.TrySendAsync(error, SocketMessages.WriteError);
                    }
                }
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException)
            {
                // The device went away without a close handshake: the same as a close.
            }
            finally
            {
                if (_bound is { } key)
                {
                    // The grain first, so that once the channel is gone from the registry its grace has started.
                    try
                    {
                        await grains.ChannelClosedAsync(key, CancellationToken.None);
                    }
                    catch (UnavailableException)
                    {
                        // The partition was taken over: its new owner times the device out.
                    }

                    channels.Unregister(key, channel);
                }
            }
        }

        private async ValueTask<ApiError?> HandleAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
        {
            try
            {
                return SocketMessages.FrameType(frame.Span) switch
                {
                    "heartbeat" => await HeartbeatAsync(frame, cancellationToken),
                    "command_result" => await CommandResultAsync(frame, cancellationToken),
                    null => ApiError.Body("type", DeviceRules.Problems.Missing),
                    _ => ApiError.Body("type", DeviceRules.Problems.Invalid),
                };
            }
            catch (UnavailableException e)
            {
                // As over HTTP: the frame was not applied durably; the device retries it.
                return ApiError.ServiceUnavailable(e.Message, (long)Math.Ceiling(e.RetryAfter.TotalSeconds));
            }
        }

        private async ValueTask<ApiError?> HeartbeatAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
        {
            if (!HeartbeatJson.TryParse(new System.Buffers.ReadOnlySequence<byte>(frame), out var input, out var error))
            {
                return error;
            }

            var (key, bound, refused) = HeartbeatApi.Bind(_caller, input!);
            if (refused is not null)
            {
                return refused;
            }

            if (_bound is { } boundKey && boundKey != key)
            {
                return new ApiError(422, ApiError.InvalidBody, "device_id: a device channel serves the device of its first heartbeat",
                    [new ErrorDetail("device_id", DeviceRules.Problems.Invalid)]);
            }

            var result = await grains.HeartbeatAsync(key, bound, cancellationToken);
            if (HeartbeatApi.Refusal(result) is { } refusal)
            {
                if (refusal.Status == StatusCodes.Status401Unauthorized)
                {
                    // The token's secret was rotated or the device removed: this channel's credentials are dead.
                    await channel.TrySendAsync(refusal, SocketMessages.WriteError);
                    await channel.CloseAsync(SocketMessages.Unauthorized, "credentials revoked");
                }

                return refusal.Status == StatusCodes.Status401Unauthorized ? null : refusal;
            }

            if (_bound is null)
            {
                _bound = key;
                await grains.ChannelOpenedAsync(key, cancellationToken);
                channels.Register(key, channel);
            }

            await channel.TrySendAsync(api, static (writer, a) =>
            {
                writer.WriteStartObject();
                writer.WriteString("type", "ack");
                writer.WriteNumber("poll_interval_s", PresenceJson.WholeSeconds(a.PollInterval));
                PresenceJson.WriteTime(writer, "server_time", a.Now);
                writer.WriteEndObject();
            });
            return null;
        }

        private async ValueTask<ApiError?> CommandResultAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
        {
            if (_bound is not { } key)
            {
                return new ApiError(409, ApiError.ConflictCode, "send a heartbeat first: it binds the channel to its device");
            }

            var (result, error) = ParseCommandResult(frame);
            if (error is not null)
            {
                return error;
            }

            await grains.CommandResultAsync(key, result!, cancellationToken);
            return null;
        }

        private static (CommandResult?, ApiError?) ParseCommandResult(ReadOnlyMemory<byte> frame)
        {
            try
            {
                using var document = JsonDocument.Parse(frame, new JsonDocumentOptions { MaxDepth = 32 });
                var root = document.RootElement;
                if (!root.TryGetProperty("command_id", out var id) || id.ValueKind != JsonValueKind.String)
                {
                    return (null, ApiError.Body("command_id", id.ValueKind == JsonValueKind.Undefined ? DeviceRules.Problems.Missing : DeviceRules.Problems.WrongType));
                }

                if (DeviceRules.CheckCommandName(id.GetString()) is { } idProblem)
                {
                    return (null, ApiError.Body("command_id", idProblem));
                }

                if (!root.TryGetProperty("ok", out var ok) || ok.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                {
                    return (null, ApiError.Body("ok", ok.ValueKind == JsonValueKind.Undefined ? DeviceRules.Problems.Missing : DeviceRules.Problems.WrongType));
                }

                string? output = null;
                if (root.TryGetProperty("output", out var outputElement) && outputElement.ValueKind != JsonValueKind.Null)
                {
                    if (outputElement.ValueKind != JsonValueKind.String)
                    {
                        return (null, ApiError.Body("output", DeviceRules.Problems.WrongType));
                    }

                    output = outputElement.GetString()!;
                    if (output.Length > DeviceRules.MaxCommandOutputLength)
                    {
                        return (null, ApiError.Body("output", DeviceRules.Problems.TooLong));
                    }
                }

                return (new CommandResult(id.GetString()!, ok.GetBoolean(), output), null);
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException)
            {
                return (null, ApiError.BodyNotJson("frame is not valid JSON"));
            }
        }
    }
}
