using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Presence.Gateway.Errors;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;

namespace Presence.Gateway.Auth;

/// <summary>
/// Authenticates each request as its endpoint's <see cref="RequiresAccess"/> says, before the endpoint runs, and
/// records the <see cref="Caller"/>. Failures never say which part was wrong: 401 for missing, malformed, unknown,
/// wrong, expired or revoked credentials; 403 for a valid key whose role is too low; 429 once a source address has
/// used up its failed API-key attempts.
/// </summary>
internal sealed class AuthMiddleware(
    RequestDelegate next, IOptions<AuthOptions> options, DeviceTokens tokens, ApiKeys keys, FailureLimiter failures)
{
    public const string ConnectSecretHeader = "X-Connect-Secret";
    public const string ApiKeyHeader = "X-Api-Key";
    public const string QueryToken = "access_token";

    private static readonly Caller Anonymous = new(DeviceKey.DefaultTenant, ApiRole.Admin);
    private readonly AuthOptions _options = options.Value;
    private readonly byte[]? _sharedSecretHash = options.Value.SharedSecret is { Length: > 0 } secret ? Hash(secret) : null;

    public async Task InvokeAsync(HttpContext context)
    {
        var required = context.GetEndpoint()?.Metadata.GetMetadata<RequiresAccess>();
        if (required is null || required.Access == Access.Public)
        {
            await next(context);
            return;
        }

        var (caller, error) = _options.IsNone
            ? (Anonymous, null)
            : required.Access == Access.Device
                ? AuthenticateDevice(context.Request, required)
                : await AuthenticateKeyAsync(context, required);
        if (error is not null)
        {
            await ApiErrorResult.WriteAsync(context.Response, error);
            return;
        }

        context.Features.Set(caller);
        await next(context);
    }

    /// <summary>Source addresses key the failure limits (per address, not per connection).</summary>
    public static string SourceOf(HttpContext context) => "ip:" + (context.Connection.RemoteIpAddress?.ToString() ?? "unknown");

    private (Caller?, ApiError?) AuthenticateDevice(HttpRequest request, RequiresAccess required)
    {
        if (_options.UsesDeviceTokens)
        {
            return tokens.TryAuthenticate(Credential(request, required, headerName: null), out var device)
                ? (device, null)
                : (null, ApiError.Unauthorized());
        }

        // shared-secret: one secret for the whole fleet, compared in constant time (as hashes: lengths may differ).
        var presented = request.Headers[ConnectSecretHeader].ToString();
        return presented.Length > 0 && CryptographicOperations.FixedTimeEquals(Hash(presented), _sharedSecretHash)
            ? (new Caller(DeviceKey.DefaultTenant, ApiRole.Viewer), null)
            : (null, ApiError.Unauthorized());
    }

    private async ValueTask<(Caller?, ApiError?)> AuthenticateKeyAsync(HttpContext context, RequiresAccess required)
    {
        var source = SourceOf(context);
        if (failures.IsBlocked(source, out var retryAfter))
        {
            return (null, ApiError.Limited(retryAfter));
        }

        var presented = Credential(context.Request, required, ApiKeyHeader);
        var key = presented.IsEmpty ? null : await keys.AuthenticateAsync(presented.ToString(), context.RequestAborted);
        if (key is null)
        {
            failures.Failed(source);
            return (null, ApiError.Unauthorized());
        }

        var role = required.Access switch
        {
            Access.Admin => ApiRole.Admin,
            Access.Operator => ApiRole.Operator,
            _ => ApiRole.Viewer,
        };
        return key.Role < role
            ? (null, ApiError.Forbidden($"this needs the {role.ToString().ToLowerInvariant()} role or higher"))
            : (new Caller(key.TenantId, key.Role, key.KeyId), null);
    }

    /// <summary>
    /// <c>Authorization: Bearer</c>, else the named header, else (where allowed) <c>?access_token=</c>; empty when
    /// there is none. A span: the heartbeat path copies nothing here.
    /// </summary>
    private static ReadOnlySpan<char> Credential(HttpRequest request, RequiresAccess required, string? headerName)
    {
        var authorization = request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return authorization.AsSpan("Bearer ".Length).Trim();
        }

        if (headerName is not null && request.Headers[headerName].ToString() is { Length: > 0 } header)
        {
            return header;
        }

        return required.QueryToken ? request.Query[QueryToken].ToString() : default;
    }

    private static byte[] Hash(string value) => SHA256.HashData(Encoding.UTF8.GetBytes(value));
}
