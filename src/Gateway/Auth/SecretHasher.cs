using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using Presence.Grains.Abstractions;

namespace Presence.Gateway.Auth;

/// <summary>
/// Device secrets: 256 random bits, prefixed with the device's tenant (<c>tenant.secret</c>, so that an agent needs
/// nothing else to authenticate), stored only as PBKDF2-SHA256 with a per-secret salt. The hash blob records its
/// own format and iteration count, so the count can be raised without invalidating stored secrets.
/// </summary>
public static class SecretHasher
{
    public const int MinIterations = 10_000;
    private const byte Format = 1;
    private const int SaltBytes = 16;
    private const int HashBytes = 32;
    private const int BlobBytes = 1 + 4 + SaltBytes + HashBytes;
    private const int MaxSecretLength = 256;

    /// <summary>The hashes unknown devices are "checked" against (one per iteration count), so they take as long as wrong secrets.</summary>
    private static readonly ConcurrentDictionary<int, byte[]> Decoys = new();

    /// <summary>A new secret for a device of <paramref name="tenantId"/>, and its credential (hash and a new stamp).</summary>
    public static DeviceCredential Create(string tenantId, int iterations, out string secret)
    {
        secret = $"{tenantId}.{Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32))}";
        return new DeviceCredential(NewStamp(), Hash(secret, iterations));
    }

    /// <summary>The tenant a presented secret names; false when it is not shaped like one of ours.</summary>
    public static bool TryReadTenant(string secret, out string tenantId)
    {
        var dot = secret.IndexOf('.', StringComparison.Ordinal);
        tenantId = dot > 0 ? secret[..dot] : "";
        return secret.Length <= MaxSecretLength && dot > 0 && TenantRules.Check(tenantId) is null;
    }

    /// <summary>
    /// Whether <paramref name="secret"/> is the one <paramref name="credential"/> was made from. A missing credential
    /// costs as much as a wrong secret hashed with <paramref name="decoyIterations"/> (pass the configured count),
    /// and the comparison is constant-time.
    /// </summary>
    public static bool Verify(DeviceCredential? credential, string secret, int decoyIterations = MinIterations)
    {
        var decoy = Decoys.GetOrAdd(decoyIterations, static iterations => Hash("decoy", iterations));
        var stored = credential?.Hash is { Length: BlobBytes } hash && hash[0] == Format ? hash : decoy;
        var iterations = BinaryPrimitives.ReadInt32BigEndian(stored.AsSpan(1));
        Span<byte> actual = stackalloc byte[HashBytes];
        Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(secret), stored.AsSpan(5, SaltBytes), actual, iterations, HashAlgorithmName.SHA256);
        return CryptographicOperations.FixedTimeEquals(actual, stored.AsSpan(5 + SaltBytes)) && !ReferenceEquals(stored, decoy);
    }

    private static byte[] Hash(string secret, int iterations)
    {
        var blob = new byte[BlobBytes];
        blob[0] = Format;
        BinaryPrimitives.WriteInt32BigEndian(blob.AsSpan(1), iterations);
        RandomNumberGenerator.Fill(blob.AsSpan(5, SaltBytes));
        Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(secret), blob.AsSpan(5, SaltBytes), blob.AsSpan(5 + SaltBytes), iterations, HashAlgorithmName.SHA256);
        return blob;
    }

    private static long NewStamp()
    {
        long stamp;
        do
        {
            stamp = BinaryPrimitives.ReadInt64LittleEndian(RandomNumberGenerator.GetBytes(8));
        }
        while (stamp == 0);
        return stamp;
    }
}

/// <summary>Tenant ids: 1-64 characters of <c>a-z 0-9 _ -</c>.</summary>
public static class TenantRules
{
    public const int MaxLength = 64;

    public static string? Check(ReadOnlySpan<char> tenantId)
    {
        if (tenantId.IsEmpty)
        {
            return DeviceRules.Problems.Empty;
        }

        if (tenantId.Length > MaxLength)
        {
            return DeviceRules.Problems.TooLong;
        }

        foreach (var c in tenantId)
        {
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '-'))
            {
                return DeviceRules.Problems.InvalidCharacters;
            }
        }

        return null;
    }
}
