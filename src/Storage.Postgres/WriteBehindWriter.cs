using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;

namespace Presence.Storage.Postgres;

/// <summary>
/// Last-seen, metrics and containers of online devices, written behind: the latest state per device is buffered
/// (so the buffer is bounded by the number of devices, however long an outage lasts) and written every flush
/// interval in batches of one <c>UPDATE ... FROM unnest(...)</c> each. A write never overwrites a newer state
/// (version and sequence) nor another incarnation of the device (first-seen time), and never inserts: devices
/// are created by durable commits.
/// </summary>
internal sealed partial class WriteBehindWriter(NpgsqlDataSource data, StorageHealth health, StorageStats stats, ILogger log)
{
    private const int BatchSize = 5_000;

    private static readonly string Update =
        "UPDATE presence_devices AS t SET " + DeviceRows.Assignments + " FROM " + DeviceRows.Unnest +
        " WHERE t.tenant_id = d.tenant_id AND t.device_id = d.device_id AND t.first_seen_at = d.first_seen_at" +
        " AND (t.version, t.sequence) < (d.version, d.sequence)";

    private readonly object _lock = new();
    private Dictionary<DeviceKey, Entry> _buffer = [];
    private readonly SemaphoreSlim _writing = new(1, 1);

    public int Buffered
    {
        get
        {
            lock (_lock)
            {
                return _buffer.Count;
            }
        }
    }

    public void Add(int partition, long epoch, IReadOnlyList<DeviceRecord> devices)
    {
        lock (_lock)
        {
            foreach (var device in devices)
            {
                Keep(new Entry(device, partition, epoch));
            }
        }
    }

    /// <summary>Removed devices: a buffered state of theirs must never be written.</summary>
    public void Forget(IReadOnlyList<DeviceKey> keys)
    {
        if (keys.Count == 0)
        {
            return;
        }

        lock (_lock)
        {
            foreach (var key in keys)
            {
                _buffer.Remove(key);
            }
        }
    }

    /// <summary>Writes everything buffered now; false when the database failed (what was not written stays buffered).</summary>
    public async Task<bool> WriteAsync(CancellationToken cancellationToken)
    {
        await _writing.WaitAsync(cancellationToken);
        try
        {
            Dictionary<DeviceKey, Entry> taken;
            lock (_lock)
            {
                taken = _buffer;
                _buffer = [];
            }

            var entries = taken.Values.ToList();
            var complete = true;
            for (var start = 0; start < entries.Count; start += BatchSize)
            {
                var batch = entries.GetRange(start, Math.Min(BatchSize, entries.Count - start));
                try
                {
                    await WriteBatchAsync(batch, cancellationToken);
                    health.Succeeded();
                }
                catch (PostgresException error) when (error.SqlState == PostgresErrors.StaleEpoch)
                {
                    var stale = PostgresErrors.StalePartitions(error);
                    LogFenced(log, stale.Count);
                    Return(batch.Where(e => !stale.Contains(e.Partition)));
                    complete = false; // the owned partitions' entries are buffered again: a flush must go round once more
                }
                catch (Exception error) when (PostgresErrors.IsOutage(error) || error is OperationCanceledException)
                {
                    if (error is not OperationCanceledException)
                    {
                        health.Failed(error);
                    }

                    Return(entries.Skip(start));
                    return false;
                }
                catch (Exception error)
                {
                    // Not an outage: the same rows would fail forever. Drop this batch (its devices' next change is written).
                    LogRejected(log, error, batch.Count);
                }
            }

            return complete;
        }
        finally
        {
            _writing.Release();
        }
    }

    private async Task WriteBatchAsync(List<Entry> batch, CancellationToken cancellationToken)
    {
        await using var connection = await data.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using var statements = new NpgsqlBatch(connection, transaction);
        // A partition's newest epoch is the only one that can still be current: older entries are stale already.
        var epochs = batch.GroupBy(e => e.Partition).ToDictionary(g => g.Key, g => g.Max(e => e.Epoch));
        batch = batch.Where(e => e.Epoch == epochs[e.Partition]).ToList();
        statements.BatchCommands.Add(PostgresErrors.Fence(epochs.Select(p => (p.Key, p.Value))));
        var update = new NpgsqlBatchCommand(Update);
        DeviceRows.Bind(update.Parameters, batch.Select(e => (e.Device, e.Partition, e.Epoch)).ToList());
        statements.BatchCommands.Add(update);
        await statements.ExecuteNonQueryAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        stats.RoundTrip();
        stats.RoundTrip();
        stats.WriteBehind(batch.Count);
    }

    /// <summary>Puts unwritten entries back, unless a newer state of the device arrived meanwhile.</summary>
    private void Return(IEnumerable<Entry> entries)
    {
        lock (_lock)
        {
            foreach (var entry in entries)
            {
                Keep(entry);
            }
        }
    }

    private void Keep(Entry entry)
    {
        var key = entry.Device.Key;
        if (!_buffer.TryGetValue(key, out var existing) || IsNewer(entry.Device, existing.Device))
        {
            _buffer[key] = entry;
        }
    }

    private static bool IsNewer(DeviceRecord candidate, DeviceRecord current) =>
        candidate.FirstSeenAt != current.FirstSeenAt
        || candidate.Version > current.Version
        || (candidate.Version == current.Version && candidate.Sequence > current.Sequence);

    private readonly record struct Entry(DeviceRecord Device, int Partition, long Epoch);

    [LoggerMessage(EventId = 3021, Level = LogLevel.Error, Message = "Write-behind: PostgreSQL rejected a batch of {Devices} devices; it was dropped")]
    private static partial void LogRejected(ILogger logger, Exception error, int devices);

    [LoggerMessage(EventId = 3020, Level = LogLevel.Warning, Message = "Write-behind: {Partitions} partitions were taken over by another process; their buffered states were dropped")]
    private static partial void LogFenced(ILogger logger, int partitions);
}
