using Presence.Runtime.Partitioning;

namespace Presence.Runtime.Cluster;

/// <summary>
/// Rendezvous (highest random weight) placement: a partition's target is the live silo whose hash with it is
/// highest. Every process computes the same targets from the same membership, and a silo joining or leaving moves
/// only the partitions it gains or held (about 1/N of them), never reshuffles the rest.
/// </summary>
public sealed class Rendezvous
{
    private readonly string[] _silos;
    private readonly ulong[] _seeds;

    public Rendezvous(IEnumerable<string> liveSilos)
    {
        _silos = liveSilos.Order(StringComparer.Ordinal).ToArray();
        _seeds = _silos.Select(PartitionHash.Of).ToArray();
    }

    public int SiloCount => _silos.Length;

    /// <summary>The silo <paramref name="partition"/> should live on; null when no silo is live.</summary>
    public string? Target(int partition)
    {
        string? best = null;
        var bestWeight = 0UL;
        for (var i = 0; i < _silos.Length; i++)
        {
            var weight = PartitionHash.Finish(_seeds[i] ^ ((ulong)partition + 1) * 0x9E3779B97F4A7C15);
            if (best is null || weight > bestWeight)
            {
                best = _silos[i];
                bestWeight = weight;
            }
        }

        return best;
    }
}
