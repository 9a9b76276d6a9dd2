using System.Buffers;
using System.Globalization;
using System.Net.WebSockets;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Presence.Agent.Commands;
using Presence.Agent.Reporting;

namespace Presence.Agent.Connection;

/// <summary>
/// One open <c>/ws/device</c> channel: a heartbeat loop (<see cref="RunAsync"/>) and a receive loop (acks, errors,
/// commands). It ends with the <see cref="Attempt"/> that says what to do next: reopen at once (token renewed or
/// revoked), or after a wait (the channel was lost or refused).
/// </summary>
internal sealed class DeviceChannelSession(
    ClientWebSocket socket,
    DeviceCredentials credentials,
    HeartbeatComposer composer,
    DeviceCommands commands,
    Pacer pacer,
    TimeProvider time,
    ILogger logger)
{
    private const int MaxMessageBytes = 64 * 1024;
    private static readonly TimeSpan AckTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(5);
    private readonly SemaphoreSlim _send = new(1, 1);
    private readonly CancellationTokenSource _receiveStop = new();
    private TaskCompletionSource<Reply>? _pending;
    private bool _acked;
    private string? _abortReason;

    /// <summary>The gateway's answer to a heartbeat frame: an <c>ack</c> or an <c>error</c>.</summary>
    private readonly record struct Reply(TimeSpan? PollInterval, string? ErrorCode, string? ErrorMessage, TimeSpan? RetryAfter)
    {
        public bool IsAck => ErrorCode is null;
    }

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

                if (reply.ErrorCode == "UNAUTHORIZED")
                {
                    // The device's credentials were revoked; the gateway closes the channel with 4001 right after.
                    return Revoked("an UNAUTHORIZED error frame");
                }

                var (wait, why) = Next(reply);

                if (credentials.RenewAt is { } renewAt && renewAt - time.GetUtcNow() < wait)
                {
                    (wait, why) = (renewAt - time.GetUtcNow(), "token renewal");
                }

                using (var waiting = CancellationTokenSource.CreateLinkedTokenSource(stop))
                {
                    var delay = pacer.Delay(wait, why, waiting.Token);
                    if (await Task.WhenAny(delay, receiving) == receiving)
                    {
                        // The channel ended during the wait: its timer goes with it.
                        await waiting.CancelAsync();
                        return await receiving;
                    }

                    await delay;
                }

                if (credentials.RenewalDue)
                {
                    // Renew while this channel still works; only a new token is a reason to reconnect.
                    var (failure, fetched) = await credentials.EnsureAsync(stop);
                    if (failure is { } refused)
                    {
                        return refused;
                    }

                    if (fetched)
                    {
                        AgentLog.ChannelRenewing(logger);
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
            return pacer.Accepted(reply.PollInterval);
        }

        var reason = $"{reply.ErrorCode}: {reply.ErrorMessage}";
        switch (reply.ErrorCode)
        {
            case "RATE_LIMITED":
                return pacer.Failed(new Attempt(AttemptKind.RateLimited, reason, reply.RetryAfter));
            case "UNAVAILABLE":
                return pacer.Failed(new Attempt(AttemptKind.Unavailable, reason, reply.RetryAfter));
            default:
                // A frame the gateway refused (the agent's fault, not the connection's): logged, and the next one as usual.
                AgentLog.FrameRefused(logger, reply.ErrorCode!, reply.ErrorMessage ?? "");
                return (pacer.Interval, "interval");
        }
    }

    /// <summary>Sends a heartbeat frame and waits for its answer; null when the channel ended (or went silent) first.</summary>
    private async Task<Reply?> HeartbeatAsync(Task<Attempt> receiving, CancellationToken stop)
    {
        var pending = new TaskCompletionSource<Reply>(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _pending, pending);
        if (!await TrySendAsync(await composer.ComposeAsync(frame: true, stop), stop))
        {
            return null;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
        var silence = Task.Delay(AckTimeout, time, timeout.Token);
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
            return Revoked(description);
        }

        return Attempt.Unreachable(string.Create(CultureInfo.InvariantCulture, $"the gateway closed the device channel ({code} {description})"));
    }

    /// <summary>
    /// The gateway refused this channel's token (4001, or an UNAUTHORIZED frame): reopen at once with a new one if the
    /// channel had worked; if it never had, with the backoff, so that a token refused outright cannot make a spin.
    /// </summary>
    private Attempt Revoked(string reason)
    {
        credentials.Invalidate();
        if (_acked)
        {
            AgentLog.ChannelRevoked(logger, reason);
            return new Attempt(AttemptKind.Reconnect, "4001");
        }

        return new Attempt(AttemptKind.Unauthorized, $"the gateway closed the device channel with 4001 ({reason})");
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
            AgentLog.FrameRefused(logger, code, reply.ErrorMessage ?? "");
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
        var outcome = await commands.ExecuteAsync(
            name,
            async token => await TrySendAsync(await composer.ComposeAsync(frame: true, token), token),
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
            AgentLog.CommandAnswered(logger, name, id, outcome.Ok);
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
        using var timeout = new CancellationTokenSource(CloseTimeout, time);
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
