using Presence.Runtime.Storage;

namespace Presence.Gateway.Auth;

/// <summary>What an endpoint requires of its caller; see <see cref="AccessExtensions.RequireAccess"/>.</summary>
public enum Access : byte
{
    /// <summary>Anyone (health, the token endpoint).</summary>
    Public,

    /// <summary>A device: nothing in mode <c>none</c>, the shared secret, or a device token.</summary>
    Device,

    /// <summary>An API key with at least this role (mode <c>none</c>: anyone, as the admin of <c>default</c>).</summary>
    Viewer,
    Operator,
    Admin,
}

/// <summary>The endpoint metadata <see cref="AuthMiddleware"/> enforces.</summary>
public sealed record RequiresAccess(Access Access, bool QueryToken = false);

/// <summary>
/// Who is calling, once authenticated: the tenant every read and write is scoped to, the API key's role and id, or
/// for a device token, the device it was issued to and the credential stamp the device's grain checks.
/// </summary>
public sealed record Caller(string TenantId, ApiRole Role, string? KeyId = null, DeviceClaims? Device = null);

public static class AccessExtensions
{
    /// <param name="queryToken">Also accept the credential as <c>?access_token=</c> (WebSockets: browsers cannot set headers).</param>
    public static TBuilder RequireAccess<TBuilder>(this TBuilder builder, Access access, bool queryToken = false)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new RequiresAccess(access, queryToken));

    /// <summary>The authenticated caller; an endpoint without <see cref="RequiresAccess"/> metadata has none (a bug, so it throws).</summary>
    public static Caller Caller(this HttpContext context) =>
        context.Features.Get<Caller>() ?? throw new InvalidOperationException($"endpoint {context.GetEndpoint()?.DisplayName} declares no access");
}
