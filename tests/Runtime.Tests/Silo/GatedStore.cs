using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;
using Presence.Runtime.Storage.Memory;

namespace Presence.Runtime.Tests.Silo;

/// <summary>
/// The memory store with one switch: a read of a chosen device can be held, as a slow database read would be,
/// so a test can keep a partition in the middle of a turn while it posts more calls.
/// </summary>
internal sealed class GatedStore(MemoryPresenceStore inner) : IPresenceStore
{
    private ReadHold? _hold;

    public IEventLog Events => inner.Events;

    public bool IsAvailable => inner.IsAvailable;

    /// <summary>Holds the next read of <paramref name="key"/> until <see cref="ReadHold.Release"/>.</summary>
    public ReadHold HoldReadOf(DeviceKey key)
    {
        var hold = new ReadHold(key);
        Volatile.Write(ref _hold, hold);
        return hold;
    }

    public async ValueTask<DeviceRecord?> ReadDeviceAsync(DeviceKey key, CancellationToken cancellationToken = default)
    {
        var hold = Volatile.Read(ref _hold);
        if (hold is not null && hold.Key == key && Interlocked.CompareExchange(ref _hold, null, hold) == hold)
        {
            hold.Enter();
            await hold.Released;
        }

        return await inner.ReadDeviceAsync(key, cancellationToken);
    }

    public ValueTask CommitAsync(PartitionCommit commit, CancellationToken cancellationToken = default) =>
        inner.CommitAsync(commit, cancellationToken);

    public ValueTask<long[]> ClaimPartitionsAsync(string siloId, int partitions, CancellationToken cancellationToken = default) =>
        inner.ClaimPartitionsAsync(siloId, partitions, cancellationToken);

    public IAsyncEnumerable<DeviceRecord> ReadOnlineDevicesAsync(int partitionCount, IReadOnlySet<int> partitions, CancellationToken cancellationToken = default) =>
        inner.ReadOnlineDevicesAsync(partitionCount, partitions, cancellationToken);

    public void WriteBehind(int partition, long epoch, IReadOnlyList<DeviceRecord> devices) => inner.WriteBehind(partition, epoch, devices);

    public Task FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);

    public ValueTask<long> TrimEventsAsync(DateTime before, int maxRows, CancellationToken cancellationToken = default) =>
        inner.TrimEventsAsync(before, maxRows, cancellationToken);

    public ValueTask<long> TrimSessionsAsync(DateTime before, int maxRows, CancellationToken cancellationToken = default) =>
        inner.TrimSessionsAsync(before, maxRows, cancellationToken);

    public ValueTask<IReadOnlyList<DeviceKey>> ReadSilentDevicesAsync(DateTime before, int limit, CancellationToken cancellationToken = default) =>
        inner.ReadSilentDevicesAsync(before, limit, cancellationToken);

    public ValueTask<IReadOnlyList<SessionRecord>> ReadEndedSessionsAsync(DeviceKey key, int limit, CancellationToken cancellationToken = default) =>
        inner.ReadEndedSessionsAsync(key, limit, cancellationToken);

    public ValueTask<DevicePage> ListDevicesAsync(string tenantId, DeviceQuery query, CancellationToken cancellationToken = default) =>
        inner.ListDevicesAsync(tenantId, query, cancellationToken);

    public ValueTask<DeviceCounts> CountDevicesAsync(string tenantId, DateTime newSince, CancellationToken cancellationToken = default) =>
        inner.CountDevicesAsync(tenantId, newSince, cancellationToken);

    public sealed class ReadHold(DeviceKey key)
    {
        private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public DeviceKey Key { get; } = key;

        /// <summary>Completes when the held read has started (the partition is now mid-turn).</summary>
        public Task Entered => _entered.Task;

        internal Task Released => _released.Task;

        internal void Enter() => _entered.TrySetResult();

        public void Release() => _released.TrySetResult();
    }
}
