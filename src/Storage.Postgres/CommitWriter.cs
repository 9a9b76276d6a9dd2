using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;

namespace Presence.Storage.Postgres;

/// <summary>
/// Writes partitions' durable commits, many per transaction (group commit across partitions), one transaction at
/// a time, so their events take positions in commit order. A commit that fails for an outage is not written, and
/// neither is anything queued behind it: their callers learn it at once (the partitions reload those devices
/// from storage). A transaction whose COMMIT got no answer is resolved (<c>pg_xact_status</c>, then its last
/// event checked at its position) before anything else is written, and until then the store is not available.
/// </summary>
internal sealed partial class CommitWriter(NpgsqlDataSource data, PostgresEventLog events, StorageHealth health, StorageStats stats, ILogger log)
{
    // Bounds of one transaction: enough to amortise the round trips, small enough to keep commit latency low.
    private const int MaxCommitsPerTransaction = 512;
    private const int MaxRowsPerTransaction = 20_000;

    private readonly object _lock = new();
    private readonly LinkedList<Pending> _queue = new();
    private readonly SemaphoreSlim _signal = new(0);
    private Unresolved? _unresolved;
    private int _writing;

    /// <summary>Queues a copy of <paramref name="commit"/> and completes when it is durable.</summary>
    public Task CommitAsync(PartitionCommit commit)
    {
        var pending = new Pending(commit);
        lock (_lock)
        {
            _queue.AddLast(pending);
        }

        _signal.Release();
        return pending.Done.Task;
    }

    /// <summary>A transaction's COMMIT went unanswered and its outcome is not known yet.</summary>
    public bool HasUnresolved
    {
        get
        {
            lock (_lock)
            {
                return _unresolved is not null;
            }
        }
    }

    /// <summary>True when no commit is waiting or unresolved.</summary>
    public bool IsIdle
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count == 0 && _unresolved is null && _writing == 0;
            }
        }
    }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var backoff = new Backoff();
        while (true)
        {
            if (IsIdle)
            {
                try
                {
                    await _signal.WaitAsync(cancellationToken);

                    // One wake-up takes everything queued: drop the signals of commits a batch already took.
                    while (_signal.Wait(0))
                    {
                    }
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }

            try
            {
                if (_unresolved is { } unresolved)
                {
                    await ResolveAsync(unresolved, cancellationToken);
                    health.Succeeded();
                }

                var batch = Take();
                if (batch.Count > 0)
                {
                    try
                    {
                        await WriteAsync(batch, cancellationToken);
                    }
                    finally
                    {
                        lock (_lock)
                        {
                            _writing = 0;
                        }
                    }

                    health.Succeeded();
                }

                backoff.Reset();
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception error)
            {
                if (!PostgresErrors.IsOutage(error))
                {
                    // Never let the writer die: whatever this was, the commits are kept and retried.
                    LogUnexpected(log, error);
                }

                health.Failed(error);

                // Nothing queued is written either: its partition must not wait for the database.
                lock (_lock)
                {
                    FailWaiters(_queue, error);
                    _queue.Clear();
                }

                try
                {
                    await Task.Delay(backoff.Next(), cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>At most one commit per partition (two of one partition must apply in order), kept ones first.</summary>
    private List<Pending> Take()
    {
        var batch = new List<Pending>();
        var partitions = new HashSet<int>();
        var rows = 0;
        lock (_lock)
        {
            for (var node = _queue.First; node is not null && batch.Count < MaxCommitsPerTransaction && rows < MaxRowsPerTransaction;)
            {
                var next = node.Next;
                if (partitions.Add(node.Value.Partition))
                {
                    _writing = 1; // taken out of the queue, not yet written: the writer is not idle
                    batch.Add(node.Value);
                    rows += node.Value.Rows;
                    _queue.Remove(node);
                }

                node = next;
            }
        }

        return batch;
    }

    private async Task WriteAsync(List<Pending> batch, CancellationToken cancellationToken)
    {
        long? xid = null;
        long head = 0;
        var eventCount = batch.Sum(p => p.Events.Length);
        try
        {
            await using var connection = await data.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await using var statements = Statements(connection, transaction, batch);
            await using (var results = await statements.ExecuteReaderAsync(cancellationToken))
            {
                await results.ReadAsync(cancellationToken);
                xid = results.GetInt64(0);
                while (await results.NextResultAsync(cancellationToken))
                {
                    if (eventCount > 0 && await results.ReadAsync(cancellationToken) && results.FieldCount == 2)
                    {
                        head = results.GetInt64(0);
                    }
                }
            }

            stats.RoundTrip();
            events.Expect(head);
            try
            {
                await transaction.CommitAsync(cancellationToken);
                stats.RoundTrip();
            }
            catch (Exception error) when (PostgresErrors.IsOutage(error))
            {
                // COMMIT was sent but not answered: it may have happened. Find out before writing anything else.
                lock (_lock)
                {
                    _unresolved = new Unresolved(batch, xid.Value, head);
                }

                health.Failed(error);
                FailWaiters(batch, error);
                throw;
            }
        }
        catch (PostgresException error) when (error.SqlState == PostgresErrors.StaleEpoch)
        {
            var stale = PostgresErrors.StalePartitions(error);
            foreach (var pending in batch.Where(p => stale.Contains(p.Partition)))
            {
                pending.Done.TrySetException(new PartitionFencedException(pending.Partition, pending.Epoch));
            }

            Requeue(batch.Where(p => !stale.Contains(p.Partition)));
            return;
        }
        catch (Exception error) when (PostgresErrors.IsOutage(error) && _unresolved?.Batch != batch)
        {
            // Not committed (the transaction never reached COMMIT): nothing of it was applied.
            events.Expect(0);
            health.Failed(error);
            FailWaiters(batch, error);
            throw;
        }
        catch (Exception error) when (!PostgresErrors.IsOutage(error) && error is not OperationCanceledException)
        {
            // A bug, not an outage: retrying would fail forever. The callers get the error (500, logged there).
            events.Expect(0);
            LogRejected(log, error, batch.Count);
            foreach (var pending in batch)
            {
                pending.Done.TrySetException(error);
            }

            return;
        }

        Completed(batch, head, eventCount);
    }

    /// <summary>After COMMIT went unanswered: committed means done; aborted means write it again.</summary>
    private async Task ResolveAsync(Unresolved unresolved, CancellationToken cancellationToken)
    {
        string? status;
        try
        {
            await using var command = data.CreateCommand("SELECT pg_xact_status(@xid::text::xid8)");
            command.Parameters.AddWithValue("xid", unresolved.Xid);
            status = (string?)await command.ExecuteScalarAsync(cancellationToken);
            stats.RoundTrip();
        }
        catch (PostgresException error) when (error.SqlState == PostgresErrorCodes.InvalidParameterValue)
        {
            // "transaction ID is in the future": the server crashed and restarted without it, so it never committed.
            status = "aborted";
        }

        if (status == "in progress")
        {
            throw new NpgsqlException("the unanswered transaction is still in progress");
        }

        lock (_lock)
        {
            _unresolved = null;
        }

        LogResolved(log, unresolved.Xid, status ?? "unknown");
        // A transaction id can be reused after a crash that lost it: the batch's own last event must be where it was put.
        if (status == "committed" && await LastEventIsAtAsync(unresolved, cancellationToken))
        {
            Completed(unresolved.Batch, unresolved.Head, unresolved.Batch.Sum(p => p.Events.Length));
        }
        else
        {
            events.Expect(0); // its positions go to other commits now
        }
    }

    private async Task<bool> LastEventIsAtAsync(Unresolved unresolved, CancellationToken cancellationToken)
    {
        if (unresolved.Batch.LastOrDefault(p => p.Events.Length > 0)?.Events[^1] is not { } last)
        {
            return true; // no events: the status is all there is to go on
        }

        await using var command = data.CreateCommand(
            "SELECT count(*) FROM presence_events WHERE position = @p AND tenant_id = @t AND device_id = @d AND sequence = @s AND type = @y");
        command.Parameters.AddWithValue("p", unresolved.Head);
        command.Parameters.AddWithValue("t", last.TenantId);
        command.Parameters.AddWithValue("d", last.DeviceId);
        command.Parameters.AddWithValue("s", last.Sequence);
        command.Parameters.AddWithValue("y", (short)last.Type);
        return (long)(await command.ExecuteScalarAsync(cancellationToken))! == 1;
    }

    private void Completed(List<Pending> batch, long head, int eventCount)
    {
        stats.Transaction(batch.Count, batch.Sum(p => p.Rows));
        if (eventCount > 0)
        {
            var appended = new List<DeviceEvent>(eventCount);
            var position = head - eventCount;
            foreach (var pending in batch)
            {
                foreach (var e in pending.Events)
                {
                    e.AssignPosition(++position);
                    appended.Add(e);
                }
            }

            events.Committed(appended, head);
        }

        foreach (var pending in batch)
        {
            pending.Done.TrySetResult();
        }
    }

    private void Requeue(IEnumerable<Pending> batch)
    {
        lock (_lock)
        {
            foreach (var pending in batch.Reverse())
            {
                _queue.AddFirst(pending);
            }
        }

        _signal.Release();
    }

    private static void FailWaiters(IEnumerable<Pending> batch, Exception error)
    {
        foreach (var pending in batch)
        {
            pending.Done.TrySetException(PostgresErrors.Unavailable(error));
        }
    }

    /// <summary>The whole transaction but COMMIT, in one round trip.</summary>
    private static NpgsqlBatch Statements(NpgsqlConnection connection, NpgsqlTransaction transaction, List<Pending> batch)
    {
        var statements = new NpgsqlBatch(connection, transaction);
        statements.BatchCommands.Add(new NpgsqlBatchCommand("SELECT pg_current_xact_id()::text::bigint"));

        statements.BatchCommands.Add(PostgresErrors.Fence(batch.Select(p => (p.Partition, p.Epoch))));

        var removals = batch.SelectMany(p => p.Removals).ToList();
        if (removals.Count > 0)
        {
            foreach (var table in new[] { "presence_devices", "presence_sessions" })
            {
                var remove = new NpgsqlBatchCommand(
                    $"DELETE FROM {table} t USING unnest(@r_tenant::text[], @r_device::text[]) AS r(tenant_id, device_id) " +
                    "WHERE t.tenant_id = r.tenant_id AND t.device_id = r.device_id");
                DeviceRows.Add(remove.Parameters, "r_tenant", NpgsqlDbType.Text, removals, static k => k.TenantId);
                DeviceRows.Add(remove.Parameters, "r_device", NpgsqlDbType.Text, removals, static k => k.DeviceId);
                statements.BatchCommands.Add(remove);
            }
        }

        // A turn may change a device durably twice: its last state is the one to write.
        var upserts = batch
            .SelectMany(p => p.Upserts.Select(device => (Device: device, p.Partition, p.Epoch)))
            .GroupBy(row => row.Device.Key)
            .Select(rows => rows.Last())
            .ToList();
        if (upserts.Count > 0)
        {
            var upsert = new NpgsqlBatchCommand(
                "INSERT INTO presence_devices AS t SELECT * FROM " + DeviceRows.Unnest +
                " ON CONFLICT (tenant_id, device_id) DO UPDATE SET " + (DeviceRows.Assignments + ", " + DeviceRows.SecretAssignments).Replace("= d.", "= EXCLUDED.", StringComparison.Ordinal) +
                " WHERE (t.version, t.sequence) < (EXCLUDED.version, EXCLUDED.sequence)");
            DeviceRows.Bind(upsert.Parameters, upserts);
            statements.BatchCommands.Add(upsert);
        }

        var sessions = batch.SelectMany(p => p.Sessions).ToList();
        if (sessions.Count > 0)
        {
            var insert = new NpgsqlBatchCommand(
                "INSERT INTO presence_sessions (tenant_id, device_id, ended_at, session_id, started_at, end_reason, heartbeats) " +
                "SELECT * FROM unnest(@s_tenant::text[], @s_device::text[], @s_ended::timestamptz[], @s_id::bigint[], @s_started::timestamptz[], " +
                "@s_reason::smallint[], @s_heartbeats::bigint[]) ON CONFLICT DO NOTHING");
            DeviceRows.Add(insert.Parameters, "s_tenant", NpgsqlDbType.Text, sessions, static s => s.Key.TenantId);
            DeviceRows.Add(insert.Parameters, "s_device", NpgsqlDbType.Text, sessions, static s => s.Key.DeviceId);
            DeviceRows.Add(insert.Parameters, "s_ended", NpgsqlDbType.TimestampTz, sessions, static s => s.Session.EndedAt!.Value);
            DeviceRows.Add(insert.Parameters, "s_id", NpgsqlDbType.Bigint, sessions, static s => s.Session.SessionId);
            DeviceRows.Add(insert.Parameters, "s_started", NpgsqlDbType.TimestampTz, sessions, static s => s.Session.StartedAt);
            DeviceRows.Add(insert.Parameters, "s_reason", NpgsqlDbType.Smallint, sessions, static s => (short)s.Session.EndReason!.Value);
            DeviceRows.Add(insert.Parameters, "s_heartbeats", NpgsqlDbType.Bigint, sessions, static s => s.Session.Heartbeats);
            statements.BatchCommands.Add(insert);
        }

        var appended = batch.SelectMany(p => p.Events).ToList();
        if (appended.Count > 0)
        {
            var append = new NpgsqlBatchCommand(EventRows.Append);
            EventRows.Bind(append.Parameters, appended);
            statements.BatchCommands.Add(append);
        }

        return statements;
    }

    /// <summary>A copy of one partition commit (the partition reuses its own), and who waits for it.</summary>
    private sealed class Pending(PartitionCommit commit)
    {
        public int Partition { get; } = commit.Partition;
        public long Epoch { get; } = commit.Epoch;
        public DeviceRecord[] Upserts { get; } = [.. commit.Upserts];
        public DeviceKey[] Removals { get; } = [.. commit.Removals];
        public (DeviceKey Key, SessionRecord Session)[] Sessions { get; } = [.. commit.EndedSessions];
        public DeviceEvent[] Events { get; } = [.. commit.Events];
        public int Rows => Upserts.Length + Removals.Length + Sessions.Length + Events.Length;
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed record Unresolved(List<Pending> Batch, long Xid, long Head);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Critical, Message = "PostgreSQL rejected a transaction of {Commits} commits; they were not written")]
    private static partial void LogRejected(ILogger logger, Exception error, int commits);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Error, Message = "The commit writer failed unexpectedly; it retries with backoff")]
    private static partial void LogUnexpected(ILogger logger, Exception error);

    [LoggerMessage(EventId = 3001, Level = LogLevel.Warning, Message = "A transaction whose COMMIT went unanswered (xid {Xid}) turned out {Status}")]
    private static partial void LogResolved(ILogger logger, long xid, string status);
}
