using Presence.Runtime.Storage;

namespace Presence.Runtime.Cluster;

/// <summary>
/// The silo asked does not own the device's partition (it never did, handed it off, or lost its lease): the caller
/// should read the partition map again and retry at the owner.
/// </summary>
public sealed class NotOwnerException(int partition)
    : UnavailableException($"this silo does not own partition {partition}")
{
    public int Partition { get; } = partition;

    public override TimeSpan RetryAfter => TimeSpan.FromSeconds(1);
}
