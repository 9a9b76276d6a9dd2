using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;

namespace Presence.Gateway.Auth;

/// <summary>
/// Tenant API keys: <c>pk.&lt;key_id&gt;.&lt;secret&gt;</c> with 256 random bits of secret, stored as the SHA-256 of the
/// whole key (a fast hash is enough for a random 256-bit key; a slow one would cost every portal request). Each
/// request looks its key up in the store, so revocation is immediate wherever the store is shared. The bootstrap key
/// (<c>Presence:Auth:AdminApiKey</c>) is the <c>admin</c> of <c>default</c>, id <see cref="BootstrapKeyId"/>.
/// </summary>
public sealed class ApiKeys(IApiKeyStore store, IOptions<AuthOptions> options, TimeProvider time)
{
    public const string BootstrapKeyId = "bootstrap";
    public const int MaxKeyLength = 256;
    private const string Prefix = "pk.";

    private readonly byte[]? _bootstrapHash = options.Value.AdminApiKey is { Length: > 0 } key ? Sha256(key) : null;

    /// <summary>A new key for <paramref name="tenantId"/>: the stored record, and the key itself (shown once).</summary>
    public async ValueTask<(ApiKeyRecord Record, string Key)> CreateAsync(string tenantId, ApiRole role, string name, CancellationToken cancellationToken)
    {
        var keyId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var key = $"{Prefix}{keyId}.{Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32))}";
        var record = new ApiKeyRecord(keyId, tenantId, role, name, Sha256(key), time.GetUtcNow().UtcDateTime);
        await store.CreateAsync(record, cancellationToken);
        return (record, key);
    }

    /// <summary>The live key <paramref name="presented"/> is, or null (unknown, wrong, revoked or malformed).</summary>
    public async ValueTask<ApiKeyRecord?> AuthenticateAsync(string presented, CancellationToken cancellationToken)
    {
        // The bootstrap key is whatever the configuration says, however long; generated keys have a known size.
        var hash = Sha256(presented);
        if (_bootstrapHash is not null && CryptographicOperations.FixedTimeEquals(hash, _bootstrapHash))
        {
            return new ApiKeyRecord(BootstrapKeyId, DeviceKey.DefaultTenant, ApiRole.Admin, "bootstrap (configuration)", _bootstrapHash, default);
        }

        if (presented.Length > MaxKeyLength)
        {
            return null;
        }

        var keyId = KeyIdOf(presented);
        if (keyId is null || await store.FindAsync(keyId, cancellationToken) is not { RevokedAt: null } record)
        {
            return null;
        }

        return CryptographicOperations.FixedTimeEquals(hash, record.KeyHash) ? record : null;
    }

    public ValueTask<ApiKeyRecord?> FindAsync(string keyId, CancellationToken cancellationToken) => store.FindAsync(keyId, cancellationToken);

    public ValueTask<bool> RevokeAsync(string keyId, CancellationToken cancellationToken) =>
        store.RevokeAsync(keyId, time.GetUtcNow().UtcDateTime, cancellationToken);

    /// <summary>Key ids are 16 lowercase hex characters.</summary>
    public static bool IsKeyId(ReadOnlySpan<char> keyId) => keyId.Length == 16 && !keyId.ContainsAnyExcept("0123456789abcdef");

    private static string? KeyIdOf(string presented)
    {
        if (!presented.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var rest = presented.AsSpan(Prefix.Length);
        var dot = rest.IndexOf('.');
        return dot > 0 && IsKeyId(rest[..dot]) ? rest[..dot].ToString() : null;
    }

    private static byte[] Sha256(string value) => SHA256.HashData(Encoding.UTF8.GetBytes(value));
}
