using Presence.Runtime.Cluster;

namespace Presence.Gateway.Cluster;

/// <summary>
/// Where each partition lives, as one gateway last read it: the owner's silo id and advertised address, or null when
/// the partition has no live owner (free, expired, or its owner is not live).
/// </summary>
internal sealed class PartitionMap
{
    private PartitionMap((string SiloId, string Address)?[] owners, IReadOnlyList<SiloEntry> silos, DateTime readAt)
    {
        Owners = owners;
        Silos = silos;
        ReadAt = readAt;
        Unowned = owners.Count(o => o is null);
    }

    public (string SiloId, string Address)?[] Owners { get; }

    public IReadOnlyList<SiloEntry> Silos { get; }

    public DateTime ReadAt { get; }

    public int Unowned { get; }

    public static PartitionMap Empty(int partitions) => new(new (string, string)?[partitions], [], DateTime.MinValue);

    public static PartitionMap From(ClusterView view, int partitions, DateTime now, TimeSpan siloTimeout)
    {
        // A leaving silo still serves what it has not handed off yet; a dead or stale one serves nothing.
        var serving = view.Silos
            .Where(s => s.Status != SiloStatus.Dead && s.LastHeartbeatAt >= now - siloTimeout)
            .ToDictionary(s => s.SiloId, s => s.Address, StringComparer.Ordinal);
        var owners = new (string, string)?[partitions];
        foreach (var lease in view.Partitions)
        {
            if (lease.Partition < partitions && lease.Owner is { } owner && !lease.IsAcquirable(now) && serving.TryGetValue(owner, out var address))
            {
                owners[lease.Partition] = (owner, address);
            }
        }

        return new PartitionMap(owners, view.Silos, now);
    }
}
