namespace Presence.Runtime.Storage;

/// <summary>What a tenant's API key may do; each role includes the ones before it.</summary>
public enum ApiRole : byte
{
    Viewer = 1,
    Operator = 2,
    Admin = 3,
}

/// <summary>A tenant's API key as stored: never the key itself, only its SHA-256 (<see cref="KeyHash"/>).</summary>
public sealed record ApiKeyRecord(string KeyId, string TenantId, ApiRole Role, string Name, byte[] KeyHash, DateTime CreatedAt, DateTime? RevokedAt = null);

/// <summary>
/// Tenants' API keys. Gateways look a key up on every request (no cache), so a revocation takes effect at once on
/// every gateway that shares the store.
/// </summary>
public interface IApiKeyStore
{
    ValueTask CreateAsync(ApiKeyRecord key, CancellationToken cancellationToken = default);

    /// <summary>The key with this id, revoked or not; null when there is none.</summary>
    ValueTask<ApiKeyRecord?> FindAsync(string keyId, CancellationToken cancellationToken = default);

    /// <summary>Marks the key revoked; false when it does not exist or was already revoked.</summary>
    ValueTask<bool> RevokeAsync(string keyId, DateTime at, CancellationToken cancellationToken = default);
}
