using Presence.Grains.Abstractions;

namespace Presence.Runtime.Storage;

/// <summary>
/// Durable state of the silo: devices, presence sessions and the event log. Partitions write through
/// <see cref="CommitAsync"/> only; everything else reads. A provider must make a commit atomic: its device
/// changes, ended sessions and events become visible together, events in the order given.
/// </summary>
public interface IPresenceStore
{
    IEventLog Events { get; }

    /// <summary>True while the store answers; false during an outage.</summary>
    bool IsAvailable { get; }

    ValueTask<DeviceRecord?> ReadDeviceAsync(DeviceKey key, CancellationToken cancellationToken = default);

    ValueTask CommitAsync(PartitionCommit commit, CancellationToken cancellationToken = default);

    /// <summary>Ended sessions of a device, newest first.</summary>
    ValueTask<IReadOnlyList<SessionRecord>> ReadEndedSessionsAsync(DeviceKey key, int limit, CancellationToken cancellationToken = default);

    /// <summary>A page of a tenant's devices ordered by <c>device_id</c> (ordinal).</summary>
    ValueTask<DevicePage> ListDevicesAsync(string tenantId, DeviceQuery query, CancellationToken cancellationToken = default);

    ValueTask<DeviceCounts> CountDevicesAsync(string tenantId, DateTime newSince, CancellationToken cancellationToken = default);
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
