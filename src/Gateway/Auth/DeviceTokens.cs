using System.Buffers.Text;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Presence.Grains.Abstractions;

namespace Presence.Gateway.Auth;

/// <summary>What a valid device token says: whose it is, which secret it was issued for, until when.</summary>
public readonly record struct DeviceClaims(DeviceKey Device, long CredentialStamp, DateTime ExpiresAt);

/// <summary>
/// Signed, expiring device tokens: <c>v1.&lt;payload&gt;.&lt;mac&gt;</c>, base64url, the MAC an HMAC-SHA256 over the
/// prefix and payload with <c>Presence:Auth:TokenSigningKey</c> (tokens signed with
/// <c>PreviousTokenSigningKey</c> are accepted too, for rotation). The payload is tenant, device, credential stamp
/// and expiry. Verifying needs no storage: revocation by rotating the secret is checked by the device's grain,
/// which knows its current stamp.
/// </summary>
public sealed class DeviceTokens
{
    public const int MaxTokenLength = 1024;
    private const string Prefix = "v1.";

    private readonly byte[]? _key;
    private readonly byte[]? _previousKey;
    private readonly TimeSpan _lifetime;
    private readonly TimeProvider _time;

    public DeviceTokens(IOptions<AuthOptions> options, TimeProvider time)
    {
        var auth = options.Value;
        _key = auth.TokenSigningKey is { Length: > 0 } key ? Encoding.UTF8.GetBytes(key) : null;
        _previousKey = auth.PreviousTokenSigningKey is { Length: > 0 } previous ? Encoding.UTF8.GetBytes(previous) : null;
        _lifetime = TimeSpan.FromMinutes(auth.TokenLifetimeMinutes);
        _time = time;
    }

    public string Issue(DeviceKey device, long credentialStamp, out DateTime expiresAt)
    {
        var key = _key ?? throw new InvalidOperationException("device tokens need Presence:Auth:TokenSigningKey");
        var now = _time.GetUtcNow().UtcDateTime;
        expiresAt = new DateTime(now.Ticks - (now.Ticks % TimeSpan.TicksPerMillisecond), DateTimeKind.Utc) + _lifetime;
        var payload = string.Join('\n', device.TenantId, device.DeviceId,
            credentialStamp.ToString(CultureInfo.InvariantCulture),
            new DateTimeOffset(expiresAt).ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture));
        var signed = Prefix + Base64Url.EncodeToString(Encoding.UTF8.GetBytes(payload));
        return signed + "." + Base64Url.EncodeToString(Mac(key, signed));
    }

    /// <summary>True for a well-formed token signed with a configured key that has not expired.</summary>
    public bool TryVerify(string? token, out DeviceClaims claims)
    {
        claims = default;
        if (token is null || token.Length > MaxTokenLength || !token.StartsWith(Prefix, StringComparison.Ordinal) || _key is null)
        {
            return false;
        }

        var dot = token.LastIndexOf('.');
        if (dot <= Prefix.Length)
        {
            return false;
        }

        var signed = token[..dot];
        Span<byte> mac = stackalloc byte[32];
        if (!Base64Url.IsValid(token.AsSpan(dot + 1)) || Base64Url.GetMaxDecodedLength(token.Length - dot - 1) > 64
            || Base64Url.DecodeFromChars(token.AsSpan(dot + 1), mac, out _, out var macLength) != System.Buffers.OperationStatus.Done
            || macLength != 32)
        {
            return false;
        }

        if (!CryptographicOperations.FixedTimeEquals(Mac(_key, signed), mac)
            && !(_previousKey is not null && CryptographicOperations.FixedTimeEquals(Mac(_previousKey, signed), mac)))
        {
            return false;
        }

        // Signed by us: the payload is ours, but parse it defensively all the same.
        var parts = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(signed.AsSpan(Prefix.Length))).Split('\n');
        if (parts.Length != 4
            || !long.TryParse(parts[2], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var stamp)
            || !long.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out var expiresMs))
        {
            return false;
        }

        var expiresAt = DateTimeOffset.FromUnixTimeMilliseconds(expiresMs).UtcDateTime;
        if (_time.GetUtcNow().UtcDateTime >= expiresAt)
        {
            return false;
        }

        claims = new DeviceClaims(new DeviceKey(parts[0], parts[1]), stamp, expiresAt);
        return true;
    }

    private static byte[] Mac(byte[] key, string signed) => HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(signed));
}
