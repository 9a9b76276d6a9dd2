using System.Globalization;
using System.Net;
using System.Net.WebSockets;
using Microsoft.Extensions.Logging;
using Presence.Agent.Commands;
using Presence.Agent.Reporting;

namespace Presence.Agent.Connection;

/// <summary>
/// Keeps a <c>/ws/device</c> channel open: heartbeat frames at the gateway's interval (each answered by an
/// <c>ack</c>), commands answered with <c>command_result</c> frames. A lost channel is reopened with the backoff; a
/// channel closed with 4001 (token expired or revoked) and a token due for renewal are reopened at once with a new token.
/// </summary>
internal sealed class DeviceChannelLoop(
    Uri server,
    HttpMessageHandler handler,
    DeviceCredentials credentials,
    HeartbeatComposer composer,
    DeviceCommands commands,
    Pacer pacer,
    TimeProvider time,
    ILogger logger)
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(30);
    private readonly Uri _uri = new(new UriBuilder(server) { Scheme = server.Scheme == Uri.UriSchemeHttps ? "wss" : "ws" }.Uri, "ws/device");

    public async Task RunAsync(CancellationToken stop)
    {
        while (true)
        {
            var (failure, fetched) = await credentials.EnsureAsync(stop);
            var attempt = failure ?? await ConnectAndRunAsync(stop);
            if (attempt.Kind == AttemptKind.Reconnect)
            {
                continue;
            }

            if (attempt.Kind == AttemptKind.Unauthorized && failure is null)
            {
                if (credentials.Mode == AuthMode.DeviceToken && !fetched)
                {
                    // An older token refused at the upgrade: a new one, at once.
                    credentials.Invalidate();
                    continue;
                }

                credentials.Invalidate();
                attempt = attempt with { Reason = credentials.Describe401(attempt.Reason) };
            }

            var (wait, why) = pacer.Failed(attempt);
            await pacer.Delay(wait, why, stop);
        }
    }

    private async Task<Attempt> ConnectAndRunAsync(CancellationToken stop)
    {
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        credentials.Apply(socket.Options);
        using var invoker = new HttpMessageInvoker(handler, disposeHandler: false);
        using (var timeout = new CancellationTokenSource(ConnectTimeout, time))
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

        var session = new DeviceChannelSession(socket, credentials, composer, commands, pacer, time, logger);
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
}
