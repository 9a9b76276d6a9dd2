using System.Buffers;
using System.Net.WebSockets;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Presence.Gateway.Apis;
using Presence.Gateway.Auth;
using Presence.Gateway.Errors;
using Presence.Grains.Abstractions;
using Presence.Runtime.Options;
using Presence.Runtime.Storage;

namespace Presence.Gateway.Streaming;

/// <summary>
/// <c>GET /ws/events</c>: a portal's live view. <c>hello</c>, then a snapshot (or every event after <c>since</c>),
/// then live events. One pump owns every send: it reads the log from its cursor, so a reader never sees a gap or a
/// duplicate, whatever it subscribes to or however events arrive. A live reader that falls more than
/// <c>Presence:Events:MaxSubscriberLag</c> events behind is closed with 4008 and resumes from its last cursor; a
/// resuming reader is not held to that limit while it catches up, only to retention.
/// </summary>
public static class EventStreamEndpoint
{
    private const int PageSize = 256;
    private const int SnapshotPage = 500;
    private const int MaxSubscribedDevices = 1000;
    private static readonly TimeSpan CloseHandshakeTimeout = TimeSpan.FromSeconds(10);

    public static IEndpointRouteBuilder MapEventStream(this IEndpointRouteBuilder app)
    {
        app.MapGet("/ws/events", RunAsync).RequireAccess(Access.Viewer, queryToken: true);
        return app;
    }

    private static async Task<IResult> RunAsync(
        HttpContext context, ApiContext api, IDeviceGrains grains, IOptions<EventsOptions> options, IHostApplicationLifetime lifetime,
        KeyRevocations revocations)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            return new ApiErrorResult(ApiError.UpgradeRequired());
        }

        var log = api.Store.Events;
        var (sinceError, since, state) = await EventsApi.SinceAsync(context.Request, log, context.RequestAborted);
        if (sinceError is not null)
        {
            return new ApiErrorResult(sinceError);
        }

        var expired = state == CursorState.Expired;
        using var socket = await context.WebSockets.AcceptWebSocketAsync(SocketOptions.Accept);
        var stream = new EventStream(socket, api.TenantOf(context), api, grains, options.Value.MaxSubscriberLag);
        var revoked = context.Caller().KeyId is { } keyId ? revocations.Watch(keyId) : CancellationToken.None;
        using (lifetime.ApplicationStopping.Register(stream.ServerStopping))
        using (revoked.Register(stream.KeyRevoked))
        {
            await stream.RunAsync(expired ? null : since, expired, context.RequestAborted);
        }

        return Results.Empty;
    }

    /// <summary>What the client asked for, handed from the receive loop to the pump: a subscription, an error to report, or a close.</summary>
    private sealed record Control(HashSet<string>? Devices, ApiError? Error = null, WebSocketCloseStatus? Close = null, string? Reason = null);

    private sealed class EventStream(WebSocket socket, string tenant, ApiContext api, IDeviceGrains grains, int maxLag)
    {
        private readonly ArrayBufferWriter<byte> _buffer = new(4096);
        private readonly Channel<Control> _control = Channel.CreateBounded<Control>(new BoundedChannelOptions(ControlCapacity) { SingleReader = true });

        // Room for a whole burst the rate limit allows, plus the close that ends it (a flood always gets its 1008),
        // plus a shutdown or a key revocation.
        private const int ControlCapacity = MessageRateLimit.Burst + 3;
        private readonly IEventLog _log = api.Store.Events;
        private HashSet<string>? _devices;

        /// <summary>The server is shutting down: close with 1001 so the portal reconnects elsewhere or later.</summary>
        public void ServerStopping() =>
            _control.Writer.TryWrite(new Control(null, Close: WebSocketCloseStatus.EndpointUnavailable, Reason: "server shutting down"));

        /// <summary>The API key the stream was opened with was revoked: close with 4001.</summary>
        public void KeyRevoked() =>
            _control.Writer.TryWrite(new Control(null, Close: SocketMessages.Unauthorized, Reason: "api key revoked"));

        public async Task RunAsync(EventCursor? since, bool expired, CancellationToken aborted)
        {
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(aborted);
            var receiving = ReceiveAsync(stop);
            try
            {
                var head = _log.Head;
                await SendAsync(head, static (w, c) => { w.WriteStartObject(); w.WriteString("type", "hello"); w.WriteString("cursor", c.ToString()); w.WriteEndObject(); }, stop.Token);
                if (expired)
                {
                    await SendAsync(0, static (w, _) => { w.WriteStartObject(); w.WriteString("type", "reset"); w.WriteString("reason", ApiError.CursorExpired); w.WriteEndObject(); }, stop.Token);
                }

                var cursor = since ?? head;
                if (since is null)
                {
                    await SendSnapshotAsync(cursor, stop.Token);
                }

                await PumpAsync(cursor, live: since is null, stop.Token);

                // The pump sent a close frame: let the client read what is still buffered and answer the close,
                // rather than aborting the connection under it.
                await receiving.WaitAsync(CloseHandshakeTimeout, api.Time, aborted);
            }
            catch (TimeoutException)
            {
                // The client never answered the close: abort.
            }
            catch (UnavailableException)
            {
                // Storage went away while the reader was behind the in-memory tail: it resumes from its last cursor.
                await CloseQuietlyAsync(SocketMessages.TryAgainLater, "storage unavailable: resume from your last cursor");
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException)
            {
                // The portal went away.
            }
            finally
            {
                await stop.CancelAsync();
                await receiving;
            }
        }

        /// <summary>
        /// Sends every event after <paramref name="cursor"/>. A subscriber that started from a snapshot is live at once;
        /// one resuming from <c>since</c> becomes live when it first reaches the head.
        /// </summary>
        private async Task PumpAsync(EventCursor cursor, bool live, CancellationToken cancellationToken)
        {
            while (true)
            {
                while (_control.Reader.TryRead(out var control))
                {
                    if (control.Close is { } status)
                    {
                        await socket.CloseOutputAsync(status, control.Reason, cancellationToken);
                        return;
                    }

                    if (control.Error is not null)
                    {
                        await SendAsync(control.Error, SocketMessages.WriteError, cancellationToken);
                        continue;
                    }

                    _devices = control.Devices;
                    await SendSnapshotAsync(cursor, cancellationToken);
                }

                if (live && _log.Head.Position - cursor.Position > maxLag)
                {
                    await socket.CloseOutputAsync(SocketMessages.SlowConsumer, "slow consumer: resume from your last cursor", cancellationToken);
                    return;
                }

                var page = await _log.ReadAsync(tenant, cursor, PageSize, cancellationToken: cancellationToken);
                if (page.State != CursorState.Valid)
                {
                    await socket.CloseOutputAsync(SocketMessages.SlowConsumer, "fell behind retention: resume from your last cursor", cancellationToken);
                    return;
                }

                foreach (var e in page.Events)
                {
                    if (_devices is null || _devices.Contains(e.DeviceId))
                    {
                        await socket.SendAsync(e.ToFrame(_log.Epoch), WebSocketMessageType.Text, endOfMessage: true, cancellationToken);
                    }
                }

                var moved = page.Next != cursor;
                cursor = page.Next;
                live |= cursor == _log.Head;
                if (moved)
                {
                    // Sends to a fast reader complete synchronously: without a yield a storm would keep this thread
                    // from requests for as long as it lasts.
                    await Task.Yield();
                }
                else
                {
                    await Task.WhenAny(_log.WaitAsync(cursor, cancellationToken), _control.Reader.WaitToReadAsync(cancellationToken).AsTask());
                    cancellationToken.ThrowIfCancellationRequested();
                }
            }
        }

        /// <summary>
        /// The devices the client watches, as of <paramref name="cursor"/> or later; events after the cursor follow,
        /// so a client applies them on top; every event carries absolute state, so applying one the snapshot already
        /// reflects changes nothing.
        /// Streamed as one message in fragments, a page of devices at a time.
        /// </summary>
        private async Task SendSnapshotAsync(EventCursor cursor, CancellationToken cancellationToken)
        {
            var devices = new List<DeviceRecord>();
            string? after = null;
            var first = true;
            var written = 0;
            using var writer = new Utf8JsonWriter(_buffer);
            while (true)
            {
                devices.Clear();
                if (_devices is null)
                {
                    var page = await api.Store.ListDevicesAsync(tenant, new DeviceQuery(StatusFilter.Any, null, after, SnapshotPage), cancellationToken);
                    devices.AddRange(page.Devices);
                    after = page.Next;
                }
                else
                {
                    foreach (var id in _devices.Order(StringComparer.Ordinal))
                    {
                        if (await grains.GetAsync(new DeviceKey(tenant, id), cancellationToken) is { } device)
                        {
                            devices.Add(device);
                        }
                    }
                }

                _buffer.ResetWrittenCount();
                if (first)
                {
                    _buffer.Write("{\"type\":\"snapshot\",\"devices\":["u8);
                }

                foreach (var device in devices)
                {
                    if (written++ > 0)
                    {
                        _buffer.Write(","u8);
                    }

                    writer.Reset();
                    PresenceJson.WriteDevice(writer, device, api.DefaultTimeout);
                    writer.Flush();
                }

                first = false;
                var last = after is null;
                if (last)
                {
                    _buffer.Write(System.Text.Encoding.UTF8.GetBytes($"],\"cursor\":\"{cursor}\"}}"));
                }

                await socket.SendAsync(_buffer.WrittenMemory, WebSocketMessageType.Text, last, cancellationToken);
                if (last)
                {
                    return;
                }
            }
        }

        private async Task CloseQuietlyAsync(WebSocketCloseStatus status, string reason)
        {
            try
            {
                await socket.CloseOutputAsync(status, reason, CancellationToken.None);
            }
            catch (Exception e) when (e is WebSocketException or InvalidOperationException)
            {
                // Already closed.
            }
        }

        private ValueTask SendAsync<TState>(TState state, Action<Utf8JsonWriter, TState> write, CancellationToken cancellationToken) =>
            SocketMessages.SendAsync(socket, _buffer, state, write, cancellationToken);

        private async Task ReceiveAsync(CancellationTokenSource stop)
        {
            var buffer = new byte[SocketMessages.MaxIncomingBytes];
            var rate = new MessageRateLimit(api.Time);
            try
            {
                while (true)
                {
                    var (kind, length) = await SocketMessages.ReceiveAsync(socket, buffer, stop.Token);
                    var control = kind switch
                    {
                        SocketMessages.Kind.Closed => new Control(null, Close: WebSocketCloseStatus.NormalClosure, Reason: "bye"),
                        SocketMessages.Kind.TooLarge => new Control(null, Close: WebSocketCloseStatus.MessageTooBig, Reason: "frame larger than 64 KiB"),
                        _ when !rate.TryTake() => new Control(null, Close: WebSocketCloseStatus.PolicyViolation, Reason: "too many messages"),
                        SocketMessages.Kind.Binary => new Control(null, ApiError.BodyNotJson("frames must be text: one JSON object each")),
                        _ => ParseSubscribe(buffer.AsSpan(0, length)),
                    };
                    if (!_control.Writer.TryWrite(control))
                    {
                        break; // cannot happen while the rate limit holds; abort rather than grow
                    }

                    if (control.Close is not null)
                    {
                        return;
                    }
                }
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException)
            {
                // Closed or aborted: the pump stops too.
            }

            await stop.CancelAsync();
        }

        private static Control ParseSubscribe(ReadOnlySpan<byte> frame)
        {
            var type = SocketMessages.FrameType(frame);
            if (type != "subscribe")
            {
                return new Control(null, ApiError.Body("type", type is null ? DeviceRules.Problems.Missing : DeviceRules.Problems.Invalid));
            }

            try
            {
                var reader = new Utf8JsonReader(frame, new JsonReaderOptions { MaxDepth = 32 });
                using var document = JsonDocument.ParseValue(ref reader);
                var root = document.RootElement;
                if (root.TryGetProperty("all", out var all) && all.ValueKind == JsonValueKind.True)
                {
                    return new Control(null, null);
                }

                if (!root.TryGetProperty("device_ids", out var ids) || ids.ValueKind != JsonValueKind.Array)
                {
                    return new Control(null, ApiError.Body("device_ids", ids.ValueKind == JsonValueKind.Undefined ? DeviceRules.Problems.Missing : DeviceRules.Problems.WrongType));
                }

                if (ids.GetArrayLength() > MaxSubscribedDevices)
                {
                    return new Control(null, ApiError.Body("device_ids", DeviceRules.Problems.TooMany));
                }

                var devices = new HashSet<string>(StringComparer.Ordinal);
                foreach (var id in ids.EnumerateArray())
                {
                    var problem = id.ValueKind != JsonValueKind.String ? DeviceRules.Problems.WrongType : DeviceRules.CheckDeviceId(id.GetString());
                    if (problem is not null)
                    {
                        return new Control(null, ApiError.Body($"device_ids[{devices.Count}]", problem));
                    }

                    devices.Add(id.GetString()!);
                }

                return new Control(devices, null);
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException)
            {
                return new Control(null, ApiError.BodyNotJson("frame is not valid JSON"));
            }
        }
    }
}
