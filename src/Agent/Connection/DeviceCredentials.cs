using System.Net.Http.Headers;
using System.Net.WebSockets;
using Microsoft.Extensions.Logging;

namespace Presence.Agent.Connection;

internal enum AuthMode
{
    None,
    SharedSecret,
    DeviceToken,
}

/// <summary>
/// The device's credentials for the gateway: nothing, the fleet's <c>X-Connect-Secret</c>, or a device token traded
/// for the device secret and renewed at 80 % of its lifetime (and whenever the gateway refuses it).
/// </summary>
internal sealed class DeviceCredentials(
    string deviceId, string? secret, string? sharedSecret, GatewayClient gateway, TimeProvider time, ILogger logger)
{
    /// <summary>A token is renewed once this share of its lifetime has passed.</summary>
    private const double RenewalPoint = 0.8;
    private static readonly TimeSpan RenewalRetry = TimeSpan.FromSeconds(30);

    private DeviceToken? _token;
    private DateTimeOffset _renewAt;

    public AuthMode Mode { get; } = secret is not null ? AuthMode.DeviceToken : sharedSecret is not null ? AuthMode.SharedSecret : AuthMode.None;

    /// <summary>When the current token should be renewed; null outside device-token mode or without a token.</summary>
    public DateTimeOffset? RenewAt => _token is null ? null : _renewAt;

    public bool RenewalDue => Mode == AuthMode.DeviceToken && (_token is null || time.GetUtcNow() >= _renewAt);

    /// <summary>
    /// Makes sure there is a token worth sending (device-token mode; otherwise nothing to do). Returns the failed
    /// token request as <c>Failure</c> (null when the credentials are ready), and whether a new token was obtained.
    /// A failed renewal keeps a token that has not expired yet, unless the secret itself was refused.
    /// </summary>
    public async Task<(Attempt? Failure, bool Fetched)> EnsureAsync(CancellationToken cancellationToken)
    {
        if (!RenewalDue)
        {
            return (null, false);
        }

        var (attempt, token) = await gateway.TokenAsync(deviceId, secret!, cancellationToken);
        var now = time.GetUtcNow();
        if (token is not null)
        {
            _token = token;
            _renewAt = now + ((token.ExpiresAt - now) * RenewalPoint);
            AgentLog.TokenObtained(logger, token.ExpiresAt, _renewAt);
            return (null, true);
        }

        if (attempt.Kind == AttemptKind.Unauthorized)
        {
            _token = null;
            return (attempt with { Reason = $"the gateway refused the device secret ({attempt.Reason}): a wrong or rotated secret, or a removed device" }, false);
        }

        if (_token is not null && now < _token.ExpiresAt)
        {
            // Keep the token that still works, and try renewing again later (not at every heartbeat).
            _renewAt = now + TimeSpan.FromTicks(Math.Min(RenewalRetry.Ticks, (_token.ExpiresAt - now).Ticks / 2));
            return (null, false);
        }

        return (attempt with { Reason = $"getting a device token: {attempt.Reason}" }, false);
    }

    /// <summary>The gateway refused the token: the next <see cref="EnsureAsync"/> gets a new one.</summary>
    public void Invalidate() => _token = null;

    public void Apply(HttpRequestHeaders headers)
    {
        if (Mode == AuthMode.DeviceToken && _token is not null)
        {
            headers.Authorization = new AuthenticationHeaderValue("Bearer", _token.Value);
        }
        else if (Mode == AuthMode.SharedSecret)
        {
            headers.Add("X-Connect-Secret", sharedSecret);
        }
    }

    public void Apply(ClientWebSocketOptions options)
    {
        if (Mode == AuthMode.DeviceToken && _token is not null)
        {
            options.SetRequestHeader("Authorization", "Bearer " + _token.Value);
        }
        else if (Mode == AuthMode.SharedSecret)
        {
            options.SetRequestHeader("X-Connect-Secret", sharedSecret);
        }
    }

    /// <summary>What a 401 to a heartbeat means in this mode, for the log.</summary>
    public string Describe401(string reason) => Mode switch
    {
        AuthMode.None => $"the gateway requires credentials ({reason}): give --secret or --shared-secret",
        AuthMode.SharedSecret => $"the gateway refused the shared secret ({reason})",
        _ => $"the gateway refused a fresh device token ({reason})",
    };
}
