using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;

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
    private const int MacBytes = 32;
    private const int MacChars = 43;
    private static readonly long MaxExpiresMs = DateTimeOffset.MaxValue.ToUnixTimeMilliseconds();
    private static readonly SearchValues<char> TokenCharacters =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.");

    private readonly byte[]? _key;
    private readonly byte[]? _previousKey;

    // OpenSSL's one-shot HMAC sets up a context per call (~4 us); a context per thread and key is reused (~1.5 us).
    private readonly ThreadLocal<HMACSHA256>? _mac;
    private readonly ThreadLocal<HMACSHA256>? _previousMac;
    private readonly TimeSpan _lifetime;
    private readonly TimeProvider _time;

    // Tokens already verified (a device sends the same one for its whole lifetime): a hit costs a lookup, not an HMAC.
    // Bounded by Presence:Auth:TokenCacheSize; when full it starts again empty.
    private readonly ConcurrentDictionary<string, Caller> _verified = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Caller>.AlternateLookup<ReadOnlySpan<char>> _verifiedBySpan;
    private readonly int _cacheSize;
    private int _cached;

    public DeviceTokens(IOptions<AuthOptions> options, TimeProvider time)
    {
        var auth = options.Value;
        _key = auth.TokenSigningKey is { Length: > 0 } key ? Encoding.UTF8.GetBytes(key) : null;
        _previousKey = auth.PreviousTokenSigningKey is { Length: > 0 } previous ? Encoding.UTF8.GetBytes(previous) : null;
        _mac = _key is { } current ? new ThreadLocal<HMACSHA256>(() => new HMACSHA256(current)) : null;
        _previousMac = _previousKey is { } previousKey ? new ThreadLocal<HMACSHA256>(() => new HMACSHA256(previousKey)) : null;
        _lifetime = TimeSpan.FromMinutes(auth.TokenLifetimeMinutes);
        _time = time;
        _cacheSize = auth.TokenCacheSize;
        _verifiedBySpan = _verified.GetAlternateLookup<ReadOnlySpan<char>>();
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

    /// <summary>
    /// True for a well-formed token signed with a configured key that has not expired. Runs on every heartbeat, so it
    /// works on the stack: the only allocations are the tenant and device id strings of a valid token.
    /// </summary>
    public bool TryVerify(ReadOnlySpan<char> token, out DeviceClaims claims)
    {
        var verified = TryAuthenticate(token, out var caller);
        claims = verified ? caller!.Device!.Value : default;
        return verified;
    }

    /// <summary>
    /// <see cref="TryVerify"/>, answering with the device's <see cref="Caller"/>: the one remembered with the token, so
    /// a repeated token allocates nothing.
    /// </summary>
    public bool TryAuthenticate(ReadOnlySpan<char> token, out Caller? caller)
    {
        if (_verifiedBySpan.TryGetValue(token, out caller))
        {
            if (_time.GetUtcNow().UtcDateTime < caller.Device!.Value.ExpiresAt)
            {
                return true;
            }

            _verifiedBySpan.TryRemove(token, out _, out _);
            caller = null;
            return false;
        }

        if (!TryVerifySignature(token, out var claims))
        {
            return false;
        }

        caller = new Caller(claims.Device.TenantId, ApiRole.Viewer, Device: claims);
        if (_cacheSize > 0)
        {
            if (Interlocked.Increment(ref _cached) > _cacheSize)
            {
                _verified.Clear();
                Volatile.Write(ref _cached, 1);
            }

            _verified.TryAdd(token.ToString(), caller);
        }

        return true;
    }

    private bool TryVerifySignature(ReadOnlySpan<char> token, out DeviceClaims claims)
    {
        claims = default;
        // One spelling per token: base64url without padding, so the MAC part is exactly MacChars long.
        if (token.Length > MaxTokenLength || !token.StartsWith(Prefix, StringComparison.Ordinal) || _key is null
            || token.ContainsAnyExcept(TokenCharacters))
        {
            return false;
        }

        var dot = token.LastIndexOf('.');
        if (dot <= Prefix.Length || token.Length - dot - 1 != MacChars)
        {
            return false;
        }

        Span<byte> mac = stackalloc byte[MacBytes];
        if (Base64Url.DecodeFromChars(token[(dot + 1)..], mac, out _, out var macLength) != OperationStatus.Done || macLength != MacBytes)
        {
            return false;
        }

        Span<byte> signed = stackalloc byte[MaxTokenLength];
        signed = signed[..Encoding.ASCII.GetBytes(token[..dot], signed)];
        if (!Verifies(_mac!.Value!, signed, mac) && !(_previousMac is not null && Verifies(_previousMac.Value!, signed, mac)))
        {
            return false;
        }

        // Signed by us, so the payload is ours; it is still parsed defensively.
        Span<byte> payload = stackalloc byte[MaxTokenLength];
        if (Base64Url.DecodeFromChars(token[Prefix.Length..dot], payload, out _, out var payloadLength) != OperationStatus.Done)
        {
            return false;
        }

        // tenant \n device \n stamp \n expiry (Unix ms)
        ReadOnlySpan<byte> rest = payload[..payloadLength];
        if (!TryTakeField(ref rest, out var tenant) || !TryTakeField(ref rest, out var device) || !TryTakeField(ref rest, out var stampText)
            || rest.IndexOf((byte)'\n') >= 0
            || !Utf8Parser.TryParse(stampText, out long stamp, out var stampLength) || stampLength != stampText.Length
            || !Utf8Parser.TryParse(rest, out long expiresMs, out var expiresLength) || expiresLength != rest.Length)
        {
            return false;
        }

        if (expiresMs > MaxExpiresMs)
        {
            return false;
        }

        var expiresAt = DateTimeOffset.FromUnixTimeMilliseconds(expiresMs).UtcDateTime;
        if (_time.GetUtcNow().UtcDateTime >= expiresAt)
        {
            return false;
        }

        claims = new DeviceClaims(new DeviceKey(Encoding.UTF8.GetString(tenant), Encoding.UTF8.GetString(device)), stamp, expiresAt);
        return true;
    }

    private static bool TryTakeField(ref ReadOnlySpan<byte> rest, out ReadOnlySpan<byte> field)
    {
        var end = rest.IndexOf((byte)'\n');
        field = end < 0 ? default : rest[..end];
        rest = end < 0 ? rest : rest[(end + 1)..];
        return end >= 0;
    }

    private static bool Verifies(HMACSHA256 hmac, ReadOnlySpan<byte> signed, ReadOnlySpan<byte> mac)
    {
        Span<byte> expected = stackalloc byte[MacBytes];
        return hmac.TryComputeHash(signed, expected, out var written) && written == MacBytes
            && CryptographicOperations.FixedTimeEquals(expected, mac);
    }

    private static byte[] Mac(byte[] key, string signed) => HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(signed));
}
