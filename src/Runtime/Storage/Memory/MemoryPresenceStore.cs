using System.Runtime.CompilerServices;
using Presence.Grains.Abstractions;
using Presence.Runtime.Partitioning;

namespace Presence.Runtime.Storage.Memory;

/// <summary>
/// Storage for embedded mode without a database. Devices are held per tenant in a hash map (reads) and a sorted
/// id set (listing by <c>device_id</c>); the records are the same immutable instances the grains hold, so a
/// device costs one copy of its state. Nothing survives the process.
/// </summary>
public sealed class MemoryPresenceStore(MemoryEventLog events, int sessionsKept = 100) : IPresenceStore
{
    // Ids are from A-Z a-z 0-9 _ . : @ - (all below U+007F), so prefix + U+007F bounds every id with that prefix.
    private const string AfterEveryId = "\u007f";

    private readonly object _lock = new();
    private readonly Dictionary<string, TenantDevices> _tenants = new(StringComparer.Ordinal);
    private readonly Dictionary<DeviceKey, Queue<SessionRecord>> _sessions = [];

    public IEventLog Events => events;

    public bool IsAvailable => true;

    /// <summary>One process owns memory storage: every partition stays at epoch 1.</summary>
    public ValueTask<long[]> ClaimPartitionsAsync(string siloId, int partitions, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(Enumerable.Repeat(1L, partitions).ToArray());

    public async IAsyncEnumerable<DeviceRecord> ReadOnlineDevicesAsync(
        int partitionCount, IReadOnlySet<int> partitions, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        List<DeviceRecord> online;
        lock (_lock)
        {
            online = _tenants.Values
                .SelectMany(tenant => tenant.ById.Values)
                .Where(device => device.Status == DeviceStatus.Online && partitions.Contains(PartitionHash.Of(device.Key, partitionCount)))
                .ToList();
        }

        foreach (var device in online)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return device;
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    public void WriteBehind(int partition, long epoch, IReadOnlyList<DeviceRecord> devices)
    {
        lock (_lock)
        {
            foreach (var device in devices)
            {
                Tenant(device.TenantId).Upsert(device);
            }
        }
    }

    public Task FlushAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

    public ValueTask<DeviceRecord?> ReadDeviceAsync(DeviceKey key, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            return ValueTask.FromResult(_tenants.TryGetValue(key.TenantId, out var tenant) ? tenant.Find(key.DeviceId) : null);
        }
    }

    public ValueTask CommitAsync(PartitionCommit commit, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            foreach (var key in commit.Removals)
            {
                Tenant(key.TenantId).Remove(key.DeviceId);
                _sessions.Remove(key);
            }

            foreach (var device in commit.Upserts)
            {
                Tenant(device.TenantId).Upsert(device);
            }

            foreach (var (key, session) in commit.EndedSessions)
            {
                if (!_sessions.TryGetValue(key, out var history))
                {
                    _sessions[key] = history = new Queue<SessionRecord>();
                }

                history.Enqueue(session);
                if (history.Count > sessionsKept)
                {
                    history.Dequeue();
                }
            }
        }

        // State first, then events: a reader that sees an event finds the state it describes.
        events.Append(commit.Events);
        return ValueTask.CompletedTask;
    }

    public ValueTask<IReadOnlyList<SessionRecord>> ReadEndedSessionsAsync(DeviceKey key, int limit, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            IReadOnlyList<SessionRecord> sessions = _sessions.TryGetValue(key, out var history)
                ? history.Reverse().Take(limit).ToArray()
                : [];
            return ValueTask.FromResult(sessions);
        }
    }

    public ValueTask<DevicePage> ListDevicesAsync(string tenantId, DeviceQuery query, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (!_tenants.TryGetValue(tenantId, out var tenant))
            {
                return ValueTask.FromResult(new DevicePage([], null));
            }

            var lower = query.Prefix ?? "";
            if (query.After is not null && string.CompareOrdinal(query.After, lower) > 0)
            {
                lower = query.After;
            }

            var upper = (query.Prefix ?? "") + AfterEveryId;
            var page = new List<DeviceRecord>(Math.Min(query.Limit, 128));
            if (string.CompareOrdinal(lower, upper) >= 0)
            {
                return ValueTask.FromResult(new DevicePage(page, null));
            }

            foreach (var id in tenant.Ids.GetViewBetween(lower, upper))
            {
                if (id == query.After)
                {
                    continue;
                }

                var device = tenant.ById[id];
                if (query.Status == StatusFilter.Any
                    || (query.Status == StatusFilter.Online) == (device.Status == DeviceStatus.Online))
                {
                    if (page.Count == query.Limit)
                    {
                        return ValueTask.FromResult(new DevicePage(page, page[^1].DeviceId));
                    }

                    page.Add(device);
                }
            }

            return ValueTask.FromResult(new DevicePage(page, null));
        }
    }

    public ValueTask<DeviceCounts> CountDevicesAsync(string tenantId, DateTime newSince, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (!_tenants.TryGetValue(tenantId, out var tenant))
            {
                return ValueTask.FromResult(new DeviceCounts(0, 0, 0));
            }

            long fresh = 0;
            foreach (var device in tenant.ById.Values)
            {
                if (device.FirstSeenAt >= newSince)
                {
                    fresh++;
                }
            }

            return ValueTask.FromResult(new DeviceCounts(tenant.ById.Count, tenant.Online, fresh));
        }
    }

    /// <summary>The in-memory log is bounded by count (<c>Presence:Events:Retention</c>), not by age.</summary>
    public ValueTask<long> TrimEventsAsync(DateTime before, int maxRows, CancellationToken cancellationToken = default) => ValueTask.FromResult(0L);

    public ValueTask<long> TrimSessionsAsync(DateTime before, int maxRows, CancellationToken cancellationToken = default)
    {
        long trimmed = 0;
        lock (_lock)
        {
            foreach (var history in _sessions.Values)
            {
                while (trimmed < maxRows && history.TryPeek(out var oldest) && oldest.EndedAt < before)
                {
                    history.Dequeue();
                    trimmed++;
                }
            }
        }

        return ValueTask.FromResult(trimmed);
    }

    public ValueTask<IReadOnlyList<DeviceKey>> ReadSilentDevicesAsync(DateTime before, int limit, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            IReadOnlyList<DeviceKey> silent = _tenants.Values
                .SelectMany(tenant => tenant.ById.Values)
                .Where(device => device.Status == DeviceStatus.Offline && device.LastSeenAt < before)
                .Take(limit)
                .Select(device => device.Key)
                .ToList();
            return ValueTask.FromResult(silent);
        }
    }

    private TenantDevices Tenant(string tenantId)
    {
        if (!_tenants.TryGetValue(tenantId, out var tenant))
        {
            _tenants[tenantId] = tenant = new TenantDevices();
        }

        return tenant;
    }

    private sealed class TenantDevices
    {
        public Dictionary<string, DeviceRecord> ById { get; } = new(StringComparer.Ordinal);
        public SortedSet<string> Ids { get; } = new(StringComparer.Ordinal);
        public long Online { get; private set; }

        public DeviceRecord? Find(string deviceId) => ById.GetValueOrDefault(deviceId);

        public void Upsert(DeviceRecord device)
        {
            if (ById.TryGetValue(device.DeviceId, out var previous))
            {
                Online -= previous.Status == DeviceStatus.Online ? 1 : 0;
            }
            else
            {
                Ids.Add(device.DeviceId);
            }

            ById[device.DeviceId] = device;
            Online += device.Status == DeviceStatus.Online ? 1 : 0;
        }

        public void Remove(string deviceId)
        {
            if (ById.Remove(deviceId, out var previous))
            {
                Ids.Remove(deviceId);
                Online -= previous.Status == DeviceStatus.Online ? 1 : 0;
            }
        }
    }
}
