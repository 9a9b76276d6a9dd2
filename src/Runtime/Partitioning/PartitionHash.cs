using Presence.Grains.Abstractions;

namespace Presence.Runtime.Partitioning;

/// <summary>
/// <c>partition = hash(tenant, device_id) mod P</c> with 64-bit FNV-1a over the UTF-16 code units of
/// <c>tenant \0 device_id</c>, finished with MurmurHash3's 64-bit mix (FNV's low bits alone spread sequential ids
/// like <c>sim-000123</c> unevenly). Stable across processes, machines and .NET versions (unlike
/// <see cref="string.GetHashCode()"/>), so every silo and gateway agrees on where a device lives. Never change it:
/// durable partition data depends on it.
/// </summary>
public static class PartitionHash
{
    private const ulong OffsetBasis = 14695981039346656037;
    private const ulong Prime = 1099511628211;

    public static int Of(DeviceKey key, int partitions)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        var hash = Mix(OffsetBasis, key.TenantId);
        hash = Step(hash, '\0');
        hash = Mix(hash, key.DeviceId);
        return (int)(Finish(hash) % (ulong)partitions);
    }

    /// <summary>The same stable 64-bit hash of one string (rendezvous placement hashes silo ids with it).</summary>
    public static ulong Of(string text) => Finish(Mix(OffsetBasis, text));

    /// <summary>MurmurHash3's 64-bit finaliser: spreads every input bit over the whole value.</summary>
    public static ulong Finish(ulong hash)
    {
        hash ^= hash >> 33;
        hash *= 0xff51afd7ed558ccd;
        hash ^= hash >> 33;
        hash *= 0xc4ceb53fe63a5df3;
        return hash ^ (hash >> 33);
    }

    private static ulong Mix(ulong hash, string text)
    {
        foreach (var c in text)
        {
            hash = Step(hash, c);
        }

        return hash;
    }

    private static ulong Step(ulong hash, char c)
    {
        hash = (hash ^ (byte)c) * Prime;
        return (hash ^ (byte)(c >> 8)) * Prime;
    }
}
