using System.Runtime.CompilerServices;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Presence.Grains.Abstractions;
using Presence.Runtime.Options;
using Presence.Runtime.Storage;

namespace Presence.Storage.Postgres;

/// <summary>
/// Presence's durable storage on PostgreSQL. Start-up applies migrations (waiting, with backoff, for the database
/// to answer); durable commits go through the <see cref="CommitWriter"/> (group commit), last-seen and metrics
/// through the <see cref="WriteBehindWriter"/>; the event log is <see cref="PostgresEventLog"/>. Reads go to the
/// database; an outage surfaces as <see cref="StorageUnavailableException"/> (503 to clients).
/// </summary>
public sealed partial class PostgresPresenceStore : IPresenceStore, IHostedService, IAsyncDisposable
{
    /// <summary>Serialises event retention across processes ("trim" in ASCII).</summary>
    private const string TrimLockKey = "1953655149";

    private readonly NpgsqlDataSource _data;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly int _partitions;
    private readonly TimeSpan _flushInterval;
    private readonly PostgresEventLog _events;
    private readonly StorageHealth _health;
    private readonly StorageStats _stats = new();
    private readonly CommitWriter _writer;
    private readonly WriteBehindWriter _writeBehind;
    private readonly CancellationTokenSource _stopping = new();
    private Task _running = Task.CompletedTask;
    private int _disposed;

    public PostgresPresenceStore(
        NpgsqlDataSource data,
        TimeProvider time,
        IOptions<EventsOptions> events,
        IOptions<StorageOptions> storage,
        IOptions<ClusterOptions> cluster,
        ILogger<PostgresPresenceStore> log)
    {
        _data = data;
        _time = time;
        _log = log;
        _partitions = cluster.Value.Partitions;
        _flushInterval = TimeSpan.FromSeconds(storage.Value.FlushIntervalSeconds);
        _health = new StorageHealth(data, time, log);
        _events = new PostgresEventLog(data, events.Value.Retention, _health, log);
        _writer = new CommitWriter(data, _events, _health, _stats, log);
        _writeBehind = new WriteBehindWriter(data, _health, _stats, log);
    }

    public IEventLog Events => _events;

    /// <summary>The database answers, and no unanswered COMMIT waits to be resolved.</summary>
    public bool IsAvailable => _health.IsAvailable && !_writer.HasUnresolved;

    /// <summary>Counts of what the writers did (benchmarks report round trips and batch sizes from it).</summary>
    public StorageStatsSnapshot Stats => _stats.Snapshot();

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var backoff = new Backoff();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var applied = await Schema.MigrateAsync(_data, _partitions, _log, cancellationToken);
                await _events.OpenAsync(cancellationToken);
                LogOpened(_log, applied, _events.Head.Position);
                break;
            }
            catch (Exception error) when (PostgresErrors.IsOutage(error))
            {
                var delay = backoff.Next() * 10; // 1 s doubling to 50 s: a start-up waits for the database
                LogStartRetry(_log, attempt, error.Message, delay.TotalSeconds);
                await Task.Delay(delay, _time, cancellationToken);
            }
        }

        _running = Task.WhenAll(_writer.RunAsync(_stopping.Token), WriteBehindAsync(_stopping.Token));
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await FlushAsync(cancellationToken);
        await _stopping.CancelAsync();
        await _running;
        var stats = _stats.Snapshot();
        LogStopped(_log, stats.Transactions, stats.Commits, stats.WriteBehindBatches, stats.WriteBehindRows, stats.RoundTrips);
    }

    public async ValueTask DisposeAsync()
    {
        // The container may dispose the store once per registration that resolves to it.
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        await _stopping.CancelAsync();
        await _running;
        await _events.DisposeAsync();
        _health.Dispose();
        _stats.Dispose();
    }

    public async ValueTask<long[]> ClaimPartitionsAsync(string siloId, int partitions, CancellationToken cancellationToken = default)
    {
        var epochs = new long[partitions];
        await using var connection = await _data.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        // Rows are locked in partition order, the order writers' fences lock them in: no deadlock.
        await using var command = new NpgsqlCommand(
            "WITH locked AS (SELECT partition FROM presence_partitions WHERE partition < @n ORDER BY partition FOR UPDATE) " +
            "UPDATE presence_partitions p SET owner = @silo, epoch = p.epoch + 1, lease_expires_at = NULL FROM locked " +
            "WHERE p.partition = locked.partition RETURNING p.partition, p.epoch", connection, transaction);
        command.Parameters.AddWithValue("n", partitions);
        command.Parameters.AddWithValue("silo", siloId);
        await using (var row = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await row.ReadAsync(cancellationToken))
            {
                epochs[row.GetInt32(0)] = row.GetInt64(1);
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return epochs;
    }

    public ValueTask CommitAsync(PartitionCommit commit, CancellationToken cancellationToken = default)
    {
        if (!IsAvailable)
        {
            throw new StorageUnavailableException("storage is unavailable; retry later");
        }

        _writeBehind.Forget(commit.Removals);
        return new ValueTask(_writer.CommitAsync(commit));
    }

    public void WriteBehind(int partition, long epoch, IReadOnlyList<DeviceRecord> devices) =>
        _writeBehind.Add(partition, epoch, devices);

    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        var backoff = new Backoff();
        while (!await _writeBehind.WriteAsync(cancellationToken) || !_writer.IsIdle)
        {
            await Task.Delay(backoff.Next(), cancellationToken);
        }
    }

    public ValueTask<DeviceRecord?> ReadDeviceAsync(DeviceKey key, CancellationToken cancellationToken = default) =>
        Read(async () =>
        {
            await using var command = _data.CreateCommand("SELECT " + DeviceRows.Columns + " FROM presence_devices WHERE tenant_id = @t AND device_id = @d");
            command.Parameters.AddWithValue("t", key.TenantId);
            command.Parameters.AddWithValue("d", key.DeviceId);
            await using var row = await command.ExecuteReaderAsync(cancellationToken);
            return await row.ReadAsync(cancellationToken) ? DeviceRows.Read(row) : null;
        });

    public async IAsyncEnumerable<DeviceRecord> ReadOnlineDevicesAsync(
        int partitionCount, IReadOnlySet<int> partitions, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await using var command = _data.CreateCommand("SELECT " + DeviceRows.Columns + " FROM presence_devices WHERE status = 1 AND partition = ANY(@p)");
        command.Parameters.AddWithValue("p", partitions.ToArray());
        var row = await Read(async () => await command.ExecuteReaderAsync(cancellationToken));
        await using (row)
        {
            while (await Read(async () => await row.ReadAsync(cancellationToken)))
            {
                yield return DeviceRows.Read(row);
            }
        }
    }

    public ValueTask<IReadOnlyList<SessionRecord>> ReadEndedSessionsAsync(DeviceKey key, int limit, CancellationToken cancellationToken = default) =>
        Read<IReadOnlyList<SessionRecord>>(async () =>
        {
            await using var command = _data.CreateCommand(
                "SELECT session_id, started_at, ended_at, end_reason, heartbeats FROM presence_sessions " +
                "WHERE tenant_id = @t AND device_id = @d ORDER BY ended_at DESC, session_id DESC LIMIT @l");
            command.Parameters.AddWithValue("t", key.TenantId);
            command.Parameters.AddWithValue("d", key.DeviceId);
            command.Parameters.AddWithValue("l", limit);
            var sessions = new List<SessionRecord>();
            await using var row = await command.ExecuteReaderAsync(cancellationToken);
            while (await row.ReadAsync(cancellationToken))
            {
                sessions.Add(new SessionRecord(row.GetInt64(0), row.GetDateTime(1), row.GetDateTime(2), (StatusReason)row.GetInt16(3), row.GetInt64(4)));
            }

            return sessions;
        });

    public ValueTask<DevicePage> ListDevicesAsync(string tenantId, DeviceQuery query, CancellationToken cancellationToken = default) =>
        Read(async () =>
        {
            // Ids are ASCII below U+007F, so prefix .. prefix + U+007F bounds every id with that prefix (COLLATE "C").
            await using var command = _data.CreateCommand(
                "SELECT " + DeviceRows.Columns + " FROM presence_devices WHERE tenant_id = @t AND device_id > @after " +
                "AND device_id >= @low AND device_id < @high AND (@status < 0 OR status = @status) ORDER BY device_id LIMIT @l");
            command.Parameters.AddWithValue("t", tenantId);
            command.Parameters.AddWithValue("after", query.After ?? "");
            command.Parameters.AddWithValue("low", query.Prefix ?? "");
            command.Parameters.AddWithValue("high", (query.Prefix ?? "") + "\u007f");
            command.Parameters.AddWithValue("status", (short)(query.Status switch { StatusFilter.Online => 1, StatusFilter.Offline => 0, _ => -1 }));
            command.Parameters.AddWithValue("l", query.Limit + 1);
            var devices = new List<DeviceRecord>(Math.Min(query.Limit + 1, 128));
            await using var row = await command.ExecuteReaderAsync(cancellationToken);
            while (await row.ReadAsync(cancellationToken))
            {
                devices.Add(DeviceRows.Read(row));
            }

            if (devices.Count <= query.Limit)
            {
                return new DevicePage(devices, null);
            }

            devices.RemoveAt(devices.Count - 1);
            return new DevicePage(devices, devices[^1].DeviceId);
        });

    public ValueTask<DeviceCounts> CountDevicesAsync(string tenantId, DateTime newSince, CancellationToken cancellationToken = default) =>
        Read(async () =>
        {
            await using var command = _data.CreateCommand(
                "SELECT count(*), count(*) FILTER (WHERE status = 1), count(*) FILTER (WHERE first_seen_at >= @since) " +
                "FROM presence_devices WHERE tenant_id = @t");
            command.Parameters.AddWithValue("t", tenantId);
            command.Parameters.AddWithValue("since", newSince);
            await using var row = await command.ExecuteReaderAsync(cancellationToken);
            await row.ReadAsync(cancellationToken);
            return new DeviceCounts(row.GetInt64(0), row.GetInt64(1), row.GetInt64(2));
        });

    /// <summary>
    /// Deletes the oldest events older than <paramref name="before"/>, a batch per transaction, and moves the log's
    /// <c>trimmed_to</c> with them (cursors before it are expired). Stops at the first newer event: the log is cut
    /// as a prefix, never with holes.
    /// </summary>
    public ValueTask<long> TrimEventsAsync(DateTime before, int maxRows, CancellationToken cancellationToken = default) =>
        Read(async () =>
        {
            const int Batch = 10_000;
            long deleted = 0;
            while (deleted < maxRows)
            {
                await using var connection = await _data.OpenConnectionAsync(cancellationToken);
                await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                await using var command = new NpgsqlCommand(
                    "SELECT pg_advisory_xact_lock(" + TrimLockKey + "); " +
                    "WITH l AS (SELECT trimmed_to, head FROM presence_log WHERE id = 1), " +
                    "cut AS (SELECT coalesce((SELECT min(position) - 1 FROM presence_events, l WHERE position > l.trimmed_to " +
                    "AND position <= l.trimmed_to + @batch AND time >= @before), least(l.trimmed_to + @batch, l.head)) AS cut, l.trimmed_to FROM l), " +
                    "gone AS (DELETE FROM presence_events e USING cut WHERE e.position > cut.trimmed_to AND e.position <= cut.cut RETURNING 1) " +
                    "UPDATE presence_log SET trimmed_to = cut.cut FROM cut WHERE id = 1 AND cut.cut > cut.trimmed_to " +
                    "RETURNING presence_log.trimmed_to, (SELECT count(*) FROM gone)", connection, transaction);
                command.Parameters.AddWithValue("batch", (long)Math.Min(Batch, maxRows - deleted));
                command.Parameters.AddWithValue("before", before);
                long trimmedTo = 0, count = 0;
                await using (var row = await command.ExecuteReaderAsync(cancellationToken))
                {
                    await row.NextResultAsync(cancellationToken);
                    if (await row.ReadAsync(cancellationToken))
                    {
                        trimmedTo = row.GetInt64(0);
                        count = row.GetInt64(1);
                    }
                }

                await transaction.CommitAsync(cancellationToken);
                if (count == 0)
                {
                    break;
                }

                _events.Trimmed(trimmedTo);
                deleted += count;
            }

            return deleted;
        });

    public ValueTask<long> TrimSessionsAsync(DateTime before, int maxRows, CancellationToken cancellationToken = default) =>
        Read(async () =>
        {
            long deleted = 0;
            while (deleted < maxRows)
            {
                await using var command = _data.CreateCommand(
                    "DELETE FROM presence_sessions WHERE ctid IN (SELECT ctid FROM presence_sessions WHERE ended_at < @before LIMIT @batch)");
                command.Parameters.AddWithValue("before", before);
                command.Parameters.AddWithValue("batch", (int)Math.Min(10_000, maxRows - deleted));
                var count = await command.ExecuteNonQueryAsync(cancellationToken);
                deleted += count;
                if (count == 0)
                {
                    break;
                }
            }

            return deleted;
        });

    public ValueTask<IReadOnlyList<DeviceKey>> ReadSilentDevicesAsync(DateTime before, int limit, CancellationToken cancellationToken = default) =>
        Read<IReadOnlyList<DeviceKey>>(async () =>
        {
            await using var command = _data.CreateCommand(
                "SELECT tenant_id, device_id FROM presence_devices WHERE status = 0 AND last_seen_at < @before LIMIT @limit");
            command.Parameters.AddWithValue("before", before);
            command.Parameters.AddWithValue("limit", limit);
            var keys = new List<DeviceKey>();
            await using var row = await command.ExecuteReaderAsync(cancellationToken);
            while (await row.ReadAsync(cancellationToken))
            {
                keys.Add(new DeviceKey(row.GetString(0), row.GetString(1)));
            }

            return keys;
        });

    /// <summary>Runs a read; an outage becomes <see cref="StorageUnavailableException"/>.</summary>
    /// <summary>Runs a statement, turning an outage into <see cref="StorageUnavailableException"/> (and marking health down).</summary>
    internal async ValueTask<T> Read<T>(Func<Task<T>> read)
    {
        try
        {
            return await read();
        }
        catch (Exception error) when (PostgresErrors.IsOutage(error))
        {
            _health.Failed(error);
            throw PostgresErrors.Unavailable(error);
        }
    }

    private async Task WriteBehindAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                await Task.Delay(_flushInterval, _time, cancellationToken);
                await _writeBehind.WriteAsync(cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping: FlushAsync wrote what was left.
        }
    }

    [LoggerMessage(EventId = 3040, Level = LogLevel.Information, Message = "PostgreSQL storage ready: {Applied} migrations applied, event log at position {Head}")]
    private static partial void LogOpened(ILogger logger, int applied, long head);

    [LoggerMessage(EventId = 3041, Level = LogLevel.Warning, Message = "PostgreSQL is not reachable at start-up (attempt {Attempt}: {Reason}); retrying in {Seconds:0.0} s")]
    private static partial void LogStartRetry(ILogger logger, int attempt, string reason, double seconds);

    [LoggerMessage(EventId = 3042, Level = LogLevel.Information,
        Message = "PostgreSQL storage stopped: {Transactions} durable transactions ({Commits} partition commits), {Batches} write-behind batches ({Devices} devices), {RoundTrips} round trips")]
    private static partial void LogStopped(ILogger logger, long transactions, long commits, long batches, long devices, long roundTrips);
}
