using Presence.Grains.Abstractions;

namespace Presence.Runtime.Storage;

/// <summary>
/// Durable state of the silo: devices, presence sessions and the event log. Partitions write through
/// <see cref="CommitAsync"/> (durable changes, awaited) and <see cref="WriteBehind"/> (last-seen and metrics,
/// batched); everything else reads. A provider must make a commit atomic: its device changes, ended sessions and
/// events become visible together, events in the order given. Every write carries its partition's epoch, and a
/// provider with fencing rejects a stale one with <see cref="PartitionFencedException"/>.
/// </summary>
public interface IPresenceStore
{
    IEventLog Events { get; }

    /// <summary>True while the store answers; false during an outage (durable changes are then refused).</summary>
    bool IsAvailable { get; }

    /// <summary>
    /// Takes ownership of every partition for <paramref name="siloId"/> (embedded mode) and returns each partition's
    /// new epoch, which fences off any earlier owner's writes.
    /// </summary>
    ValueTask<long[]> ClaimPartitionsAsync(string siloId, int partitions, CancellationToken cancellationToken = default);

    ValueTask<DeviceRecord?> ReadDeviceAsync(DeviceKey key, CancellationToken cancellationToken = default);

    /// <summary>Devices stored as online whose partition (of <paramref name="partitionCount"/>) is in <paramref name="partitions"/>: what a new owner must watch.</summary>
    IAsyncEnumerable<DeviceRecord> ReadOnlineDevicesAsync(int partitionCount, IReadOnlySet<int> partitions, CancellationToken cancellationToken = default);

    /// <summary>
    /// Makes one turn's durable changes durable. <see cref="StorageUnavailableException"/> means it was not written
    /// (the caller must reload the devices concerned from storage once it is available), except when its COMMIT got
    /// no answer: then the store finds out what happened before it reports itself available again, so the reload
    /// reads the truth either way. <see cref="PartitionFencedException"/>: another process owns the partition now.
    /// </summary>
    ValueTask CommitAsync(PartitionCommit commit, CancellationToken cancellationToken = default);

    /// <summary>
    /// Hands over the latest state of devices whose changes need not be durable at once (last-seen, metrics); the
    /// store writes them in batches, retrying through outages. A device's newer state replaces an older one.
    /// </summary>
    void WriteBehind(int partition, long epoch, IReadOnlyList<DeviceRecord> devices);

    /// <summary>Completes when everything handed to <see cref="WriteBehind"/> and every kept commit is written.</summary>
    Task FlushAsync(CancellationToken cancellationToken = default);

    /// <summary>Ended sessions of a device, newest first.</summary>
    ValueTask<IReadOnlyList<SessionRecord>> ReadEndedSessionsAsync(DeviceKey key, int limit, CancellationToken cancellationToken = default);

    /// <summary>A page of a tenant's devices ordered by <c>device_id</c> (ordinal).</summary>
    ValueTask<DevicePage> ListDevicesAsync(string tenantId, DeviceQuery query, CancellationToken cancellationToken = default);

    ValueTask<DeviceCounts> CountDevicesAsync(string tenantId, DateTime newSince, CancellationToken cancellationToken = default);

    /// <summary>Housekeeping: deletes up to <paramref name="maxRows"/> of the oldest events older than <paramref name="before"/>; returns how many.</summary>
    ValueTask<long> TrimEventsAsync(DateTime before, int maxRows, CancellationToken cancellationToken = default);

    /// <summary>Housekeeping: deletes up to <paramref name="maxRows"/> sessions that ended before <paramref name="before"/>; returns how many.</summary>
    ValueTask<long> TrimSessionsAsync(DateTime before, int maxRows, CancellationToken cancellationToken = default);

    /// <summary>Housekeeping: offline devices last seen before <paramref name="before"/> (candidates for deletion).</summary>
    ValueTask<IReadOnlyList<DeviceKey>> ReadSilentDevicesAsync(DateTime before, int limit, CancellationToken cancellationToken = default);
}

/// <summary>
/// What one partition turn persists: written atomically, events appended in order. Removals are applied before
/// upserts: a device removed and registered again in one turn is a new device, and a removal drops the turn's
/// earlier writes of its device from the commit.
/// </summary>
public sealed class PartitionCommit
{
    public int Partition { get; set; }

    /// <summary>The owner's lease epoch: a store with fencing rejects commits of a stale epoch.</summary>
    public long Epoch { get; set; }

    public List<DeviceRecord> Upserts { get; } = [];
    public List<DeviceKey> Removals { get; } = [];
    public List<(DeviceKey Key, SessionRecord Session)> EndedSessions { get; } = [];
    public List<DeviceEvent> Events { get; } = [];

    public bool IsEmpty => Upserts.Count == 0 && Removals.Count == 0 && EndedSessions.Count == 0 && Events.Count == 0;

    public void Clear()
    {
        Upserts.Clear();
        Removals.Clear();
        EndedSessions.Clear();
        Events.Clear();
    }
}

public enum StatusFilter : byte
{
    Any,
    Online,
    Offline,
}

/// <summary>A device listing: ids after <see cref="After"/> (exclusive) starting with <see cref="Prefix"/>.</summary>
public sealed record DeviceQuery(StatusFilter Status, string? Prefix, string? After, int Limit);

/// <summary>One page of devices; <see cref="Next"/> is the <c>after</c> of the next page, null at the end.</summary>
public sealed record DevicePage(IReadOnlyList<DeviceRecord> Devices, string? Next);

public sealed record DeviceCounts(long Total, long Online, long NewSince);
