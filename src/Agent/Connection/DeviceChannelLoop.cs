using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.WebSockets;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Presence.Agent.Commands;
using Presence.Agent.Reporting;

namespace Presence.Agent.Connection;

/// <summary>
/// Keeps a <c>/ws/device</c> channel open: heartbeat frames at the gateway's interval (each answered by an
/// <c>ack</c>), commands answered with <c>command_result</c> frames. A lost channel is reopened with the backoff; a
/// channel closed with 4001 (token expired or revoked) and a token due for renewal are reopened at once with a new token.
/// </summary>
internal sealed class DeviceChannelLoop
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(30);
    private readonly Uri _uri;
    private readonly HttpMessageHandler _handler;
    private readonly DeviceCredentials _credentials;
    private readonly HeartbeatComposer _composer;
    private readonly DeviceCommands _commands;
    private readonly Pacer _pacer;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public DeviceChannelLoop(
        Uri server, HttpMessageHandler handler, DeviceCredentials credentials, HeartbeatComposer composer, DeviceCommands commands,
        Pacer pacer, TimeProvider time, ILogger logger)
    {
        _uri = new Uri(new UriBuilder(server) { Scheme = server.Scheme == Uri.UriSchemeHttps ? "wss" : "ws" }.Uri, "ws/device");
        _handler = handler;
        _credentials = credentials;
        _composer = composer;
        _commands = commands;
        _pacer = pacer;
        _time = time;
        _logger = logger;
    }

    public async Task RunAsync(CancellationToken stop)
    {
        while (true)
        {
            var (failure, fetched) = await _credentials.EnsureAsync(stop);
            var attempt = failure ?? await ConnectAndRunAsync(stop);
            if (attempt.Kind == AttemptKind.Reconnect)
            {
                continue;
            }

            if (attempt.Kind == AttemptKind.Unauthorized && failure is null)
            {
                if (_credentials.Mode == AuthMode.DeviceToken && !fetched)
                {
                    // An older token refused at the upgrade: a new one, at once.
                    _credentials.Invalidate();
                    continue;
                }

                _credentials.Invalidate();
                attempt = attempt with { Reason = _credentials.Describe401(attempt.Reason) };
            }

            var (wait, why) = _pacer.Failed(attempt);
            await _pacer.Delay(wait, why, stop);
        }
    }

    private async Task<Attempt> ConnectAndRunAsync(CancellationToken stop)
    {
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        _credentials.Apply(socket.Options);
        using var invoker = new HttpMessageInvoker(_handler, disposeHandler: false);
        using (var timeout = new CancellationTokenSource(ConnectTimeout, _time))
        using (var linked = CancellationTokenSource.CreateLinkedTokenSource(stop, timeout.Token))
        {
            try
            {
                await socket.ConnectAsync(_uri, invoker, linked.Token);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                throw;
            }
            catch (OperationCanceledException)
            {
                return Attempt.Unreachable($"no answer to the device channel upgrade within {ConnectTimeout.TotalSeconds:0} s");
            }
            catch (Exception e) when (e is WebSocketException or HttpRequestException)
            {
                return Refusal(socket, e);
            }
        }

        var session = new ChannelSession(socket, this);
        return await session.RunAsync(stop);
    }

    private static Attempt Refusal(ClientWebSocket socket, Exception e)
    {
        var status = socket.HttpStatusCode;
        var retryAfter = socket.HttpResponseHeaders?.TryGetValue("Retry-After", out var values) == true
            && double.TryParse(values.FirstOrDefault(), NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)
            ? TimeSpan.FromSeconds(seconds)
            : (TimeSpan?)null;
        var reason = string.Create(CultureInfo.InvariantCulture, $"HTTP {(int)status} at the device channel upgrade");
        return status switch
        {
            0 => Attempt.Unreachable(e.InnerException?.Message ?? e.Message),
            HttpStatusCode.Unauthorized => new Attempt(AttemptKind.Unauthorized, reason),
            HttpStatusCode.TooManyRequests => new Attempt(AttemptKind.RateLimited, reason, retryAfter),
            HttpStatusCode.ServiceUnavailable => new Attempt(AttemptKind.Unavailable, reason, retryAfter),
            _ => new Attempt(AttemptKind.Refused, reason),
        };
    }

    /// <summary>The gateway's answer to a heartbeat frame: an <c>ack</c> or an <c>error</c>.</summary>
    private readonly record struct Reply(TimeSpan? PollInterval, string? ErrorCode, string? ErrorMessage, TimeSpan? RetryAfter)
    {
        public bool IsAck => ErrorCode is null;
    }

    /// <summary>One open channel: a heartbeat loop (this method) and a receive loop (acks, errors, commands).</summary>
    private sealed class ChannelSession(ClientWebSocket socket, DeviceChannelLoop loop)
    {
        private const int MaxMessageBytes = 64 * 1024;
        private static readonly TimeSpan AckTimeout = TimeSpan.FromSeconds(30);
        private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(5);
        private readonly SemaphoreSlim _send = new(1, 1);
        private readonly CancellationTokenSource _receiveStop = new();
        private TaskCompletionSource<Reply>? _pending;
        private bool _acked;
        private string? _abortReason;

        public async Task<Attempt> RunAsync(CancellationToken stop)
        {
            // Receiving has its own cancellation: cancelling a receive aborts the socket, and stopping should close it cleanly.
            var receiving = ReceiveAsync(_receiveStop.Token);
            try
            {
                while (true)
                {
                    if (await HeartbeatAsync(receiving, stop) is not { } reply)
                    {
                        return await receiving;
                    }

                    var (wait, why) = Next(reply);
                    if (reply.ErrorCode == "UNAUTHORIZED")
                    {
                        // The gateway closes the channel with 4001 right after this error.
                        return await receiving;
                    }

                    if (loop._credentials.RenewAt is { } renewAt && renewAt - loop._time.GetUtcNow() < wait)
                    {
                        (wait, why) = (renewAt - loop._time.GetUtcNow(), "token renewal");
                    }

                    var delay = loop._pacer.Delay(wait, why, stop);
                    if (await Task.WhenAny(delay, receiving) == receiving)
                    {
                        return await receiving;
                    }

                    await delay;
                    if (loop._credentials.RenewalDue)
                    {
                        // Renew while this channel still works; only a new token is a reason to reconnect.
                        var (failure, fetched) = await loop._credentials.EnsureAsync(stop);
                        if (failure is { } refused)
                        {
                            return refused;
                        }

                        if (fetched)
                        {
                            AgentLog.ChannelRenewing(loop._logger);
                            return new Attempt(AttemptKind.Reconnect, "token renewal");
                        }
                    }
                }
            }
            finally
            {
                await CloseAsync(stop.IsCancellationRequested ? "agent stopping" : "reconnecting", receiving);
                _receiveStop.Dispose();
                _send.Dispose();
            }
        }

        private (TimeSpan Wait, string Why) Next(Reply reply)
        {
            if (reply.IsAck)
            {
                _acked = true;
                return loop._pacer.Accepted(reply.PollInterval);
            }

            var reason = $"{reply.ErrorCode}: {reply.ErrorMessage}";
            switch (reply.ErrorCode)
            {
                case "RATE_LIMITED":
                    return loop._pacer.Failed(new Attempt(AttemptKind.RateLimited, reason, reply.RetryAfter));
                case "UNAVAILABLE":
                    return loop._pacer.Failed(new Attempt(AttemptKind.Unavailable, reason, reply.RetryAfter));
                case "UNAUTHORIZED":
                    return (TimeSpan.Zero, "");
                default:
                    // A frame the gateway refused (the agent's fault, not the connection's): logged, and the next one as usual.
                    AgentLog.FrameRefused(loop._logger, reply.ErrorCode!, reply.ErrorMessage ?? "");
                    return (loop._pacer.Interval, "interval");
            }
        }

        /// <summary>Sends a heartbeat frame and waits for its answer; null when the channel ended (or went silent) first.</summary>
        private async Task<Reply?> HeartbeatAsync(Task<Attempt> receiving, CancellationToken stop)
        {
            var pending = new TaskCompletionSource<Reply>(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _pending, pending);
            if (!await TrySendAsync(await loop._composer.ComposeAsync(frame: true, stop), stop))
            {
                return null;
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
            var silence = Task.Delay(AckTimeout, loop._time, timeout.Token);
            var first = await Task.WhenAny(pending.Task, receiving, silence);
            await timeout.CancelAsync();
            if (first == pending.Task)
            {
                return await pending.Task;
            }

            stop.ThrowIfCancellationRequested();
            if (first == silence)
            {
                _abortReason = $"no answer to a heartbeat within {AckTimeout.TotalSeconds:0} s";
                socket.Abort();
            }

            return null;
        }

        private async Task<Attempt> ReceiveAsync(CancellationToken cancellationToken)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(MaxMessageBytes);
            try
            {
                while (true)
                {
                    var length = 0;
                    ValueWebSocketReceiveResult result;
                    do
                    {
                        if (length == MaxMessageBytes)
                        {
                            await socket.CloseOutputAsync(WebSocketCloseStatus.MessageTooBig, "message larger than 64 KiB", cancellationToken);
                            return Attempt.Unreachable("the gateway sent a message larger than 64 KiB");
                        }

                        result = await socket.ReceiveAsync(buffer.AsMemory(length, MaxMessageBytes - length), cancellationToken);
                        length += result.Count;
                    }
                    while (!result.EndOfMessage && result.MessageType != WebSocketMessageType.Close);

                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        return Closed();
                    }

                    if (result.MessageType == WebSocketMessageType.Text)
                    {
                        await HandleAsync(buffer.AsMemory(0, length), cancellationToken);
                    }
                }
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException)
            {
                return Attempt.Unreachable(_abortReason ?? $"the device channel broke ({e.Message})");
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        private Attempt Closed()
        {
            var code = (int?)socket.CloseStatus ?? 0;
            var description = socket.CloseStatusDescription ?? "";
            if (code == 4001)
            {
                loop._credentials.Invalidate();
                if (_acked)
                {
                    AgentLog.ChannelRevoked(loop._logger, description);
                    return new Attempt(AttemptKind.Reconnect, "4001");
                }

                // Refused before a single heartbeat went through: a new token, but with the backoff, not in a spin.
                return new Attempt(AttemptKind.Unauthorized, $"the gateway closed the device channel with 4001 ({description})");
            }

            return Attempt.Unreachable(string.Create(CultureInfo.InvariantCulture, $"the gateway closed the device channel ({code} {description})"));
        }

        private async Task HandleAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
        {
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(message);
            }
            catch (JsonException)
            {
                return;
            }

            using (document)
            {
                var root = document.RootElement;
                if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
                {
                    return;
                }

                switch (type.GetString())
                {
                    case "ack":
                        Answer(new Reply(Seconds(root, "poll_interval_s"), null, null, null));
                        break;
                    case "error":
                        Answer(ErrorReply(root));
                        break;
                    case "command":
                        await CommandAsync(root, cancellationToken);
                        break;
                }
            }
        }

        private void Answer(Reply reply)
        {
            if (Interlocked.Exchange(ref _pending, null) is { } pending)
            {
                pending.TrySetResult(reply);
            }
            else if (reply.ErrorCode is { } code and not "UNAUTHORIZED")
            {
                // The answer to a heartbeat sent for `collect`.
                AgentLog.FrameRefused(loop._logger, code, reply.ErrorMessage ?? "");
            }
        }

        private static Reply ErrorReply(JsonElement root)
        {
            string? code = null, message = null;
            if (root.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object)
            {
                code = error.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
                message = error.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null;
            }

            return new Reply(null, code ?? "ERROR", message, Seconds(root, "retry_after_s"));
        }

        private static TimeSpan? Seconds(JsonElement root, string property) =>
            root.TryGetProperty(property, out var value) && value.TryGetDouble(out var seconds) && seconds > 0 && seconds <= 86400
                ? TimeSpan.FromSeconds(seconds)
                : null;

        private async Task CommandAsync(JsonElement command, CancellationToken cancellationToken)
        {
            if (!command.TryGetProperty("command_id", out var idElement) || idElement.ValueKind != JsonValueKind.String)
            {
                return;
            }

            var id = idElement.GetString()!;
            var name = command.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : "";
            var outcome = await loop._commands.ExecuteAsync(
                name,
                async token => await TrySendAsync(await loop._composer.ComposeAsync(frame: true, token), token),
                cancellationToken);
            var frame = new ArrayBufferWriter<byte>(256);
            using (var writer = new Utf8JsonWriter(frame))
            {
                writer.WriteStartObject();
                writer.WriteString("type", "command_result");
                writer.WriteString("command_id", id);
                writer.WriteBoolean("ok", outcome.Ok);
                writer.WriteString("output", outcome.Output);
                writer.WriteEndObject();
            }

            if (await TrySendAsync(frame.WrittenMemory, cancellationToken))
            {
                AgentLog.CommandAnswered(loop._logger, name, id, outcome.Ok);
            }
        }

        /// <summary>Sends one text message; false when the channel is gone (the receive loop then reports why).</summary>
        private async Task<bool> TrySendAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
        {
            await _send.WaitAsync(cancellationToken);
            try
            {
                await socket.SendAsync(message, WebSocketMessageType.Text, endOfMessage: true, cancellationToken);
                return true;
            }
            catch (Exception e) when (e is WebSocketException or ObjectDisposedException or InvalidOperationException)
            {
                socket.Abort();
                return false;
            }
            finally
            {
                _send.Release();
            }
        }

        /// <summary>Closes the channel cleanly when it is still open (or completes the gateway's close), then ends receiving.</summary>
        private async Task CloseAsync(string reason, Task<Attempt> receiving)
        {
            using var timeout = new CancellationTokenSource(CloseTimeout, loop._time);
            try
            {
                if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
                {
                    await _send.WaitAsync(timeout.Token);
                    try
                    {
                        await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, reason, timeout.Token);
                    }
                    finally
                    {
                        _send.Release();
                    }
                }

                await receiving.WaitAsync(timeout.Token);
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
            {
                // The gateway did not answer the close: the socket is dropped below.
            }
            finally
            {
                await _receiveStop.CancelAsync();
                socket.Abort();
                await receiving;
            }
        }
    }
}
