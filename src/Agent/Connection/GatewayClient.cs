using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Presence.Agent.Connection;

/// <summary>A device token and when it expires.</summary>
internal sealed record DeviceToken(string Value, DateTimeOffset ExpiresAt);

/// <summary>
/// The gateway's device-facing HTTP API: <c>POST /api/v1/heartbeat</c> and <c>POST /api/v1/devices/auth</c>. Every
/// answer becomes an <see cref="Attempt"/>; nothing here throws but for cancellation by the caller.
/// </summary>
internal sealed class GatewayClient : IDisposable
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);
    private static readonly MediaTypeHeaderValue Json = new("application/json") { CharSet = "utf-8" };
    private readonly HttpClient _http;
    private readonly TimeProvider _time;

    /// <param name="handler">Shared with the device channel's upgrade; not disposed here.</param>
    public GatewayClient(Uri server, HttpMessageHandler handler, TimeProvider time)
    {
        _time = time;
        _http = new HttpClient(handler, disposeHandler: false)
        {
            BaseAddress = server,
            // The driven timeout below replaces it.
            Timeout = Timeout.InfiniteTimeSpan,
            // The gateway's answers are small; a proxy's or an impostor's should not fill memory.
            MaxResponseContentBufferSize = 1024 * 1024,
        };
    }

    public async Task<Attempt> HeartbeatAsync(byte[] body, DeviceCredentials credentials, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/heartbeat") { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = Json;
        credentials.Apply(request.Headers);
        return await SendAsync(request, static (json, _) => Attempt.Accepted(PollInterval(json)), cancellationToken);
    }

    /// <summary>Trades the device secret for a token; the answer's <see cref="Attempt"/> and, when accepted, the token.</summary>
    public async Task<(Attempt Attempt, DeviceToken? Token)> TokenAsync(string deviceId, string secret, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/devices/auth")
        {
            Content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string>
            {
                ["device_id"] = deviceId,
                ["secret"] = secret,
            })),
        };
        request.Content.Headers.ContentType = Json;
        DeviceToken? token = null;
        var attempt = await SendAsync(request, (json, _) =>
        {
            if (json.TryGetProperty("token", out var value) && value.ValueKind == JsonValueKind.String
                && json.TryGetProperty("expires_at", out var expires) && expires.ValueKind == JsonValueKind.String
                && DateTimeOffset.TryParse(expires.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var expiresAt))
            {
                token = new DeviceToken(value.GetString()!, expiresAt);
                return Attempt.Accepted(PollInterval(json));
            }

            return new Attempt(AttemptKind.Refused, "the token answer lacks token or expires_at");
        }, cancellationToken);
        if (attempt.Kind == AttemptKind.NotFound)
        {
            attempt = new Attempt(AttemptKind.Refused, "the gateway does not issue device tokens (404): is it in device-token mode?");
        }

        return (attempt, token);
    }

    public void Dispose() => _http.Dispose();

    private async Task<Attempt> SendAsync(HttpRequestMessage request, Func<JsonElement, HttpResponseMessage, Attempt> accepted, CancellationToken cancellationToken)
    {
        using var timeout = new CancellationTokenSource(RequestTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            using var response = await _http.SendAsync(request, linked.Token);
            var text = await response.Content.ReadAsStringAsync(linked.Token);
            if (response.IsSuccessStatusCode)
            {
                using var document = JsonDocument.Parse(text);
                return accepted(document.RootElement, response);
            }

            var retryAfter = RetryAfter(response);
            return response.StatusCode switch
            {
                HttpStatusCode.TooManyRequests => new Attempt(AttemptKind.RateLimited, Describe(response, text), retryAfter),
                HttpStatusCode.ServiceUnavailable => new Attempt(AttemptKind.Unavailable, Describe(response, text), retryAfter),
                HttpStatusCode.Unauthorized => new Attempt(AttemptKind.Unauthorized, Describe(response, text)),
                HttpStatusCode.NotFound => new Attempt(AttemptKind.NotFound, Describe(response, text)),
                _ => new Attempt(AttemptKind.Refused, Describe(response, text), retryAfter),
            };
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (OperationCanceledException)
        {
            return Attempt.Unreachable($"no answer within {RequestTimeout.TotalSeconds:0} s");
        }
        catch (HttpRequestException e)
        {
            return Attempt.Unreachable(Describe(e));
        }
        catch (JsonException)
        {
            return new Attempt(AttemptKind.Refused, "the gateway's answer is not JSON");
        }
    }

    /// <summary><c>poll_interval_s</c> of an answer, when it is a positive number.</summary>
    private static TimeSpan? PollInterval(JsonElement json) =>
        json.ValueKind == JsonValueKind.Object && json.TryGetProperty("poll_interval_s", out var value)
            && value.TryGetDouble(out var seconds) && seconds > 0 && seconds <= 86400
            ? TimeSpan.FromSeconds(seconds)
            : null;

    private TimeSpan? RetryAfter(HttpResponseMessage response) =>
        response.Headers.RetryAfter switch
        {
            { Delta: { } delta } => delta,
            { Date: { } date } => date - _time.GetUtcNow(),
            _ => null,
        };

    /// <summary>The status and the error object's code and message (the gateway's messages never hold credentials).</summary>
    private static string Describe(HttpResponseMessage response, string body)
    {
        var text = new StringBuilder().Append(CultureInfo.InvariantCulture, $"HTTP {(int)response.StatusCode}");
        try
        {
            using var document = JsonDocument.Parse(body);
            if (document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("error", out var error)
                && error.ValueKind == JsonValueKind.Object)
            {
                if (error.TryGetProperty("code", out var code) && code.ValueKind == JsonValueKind.String)
                {
                    text.Append(' ').Append(code.GetString());
                }

                if (error.TryGetProperty("message", out var message) && message.ValueKind == JsonValueKind.String)
                {
                    var m = message.GetString()!;
                    text.Append(": ").Append(m.Length > 200 ? m[..200] : m);
                }
            }
        }
        catch (JsonException)
        {
            // A proxy's HTML page: the status says enough.
        }

        return text.ToString();
    }

    private static string Describe(HttpRequestException e) =>
        e.InnerException is SocketException socket ? $"{socket.SocketErrorCode} ({e.Message})" : e.Message;
}
