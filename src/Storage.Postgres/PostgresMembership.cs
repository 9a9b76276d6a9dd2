using Npgsql;
using NpgsqlTypes;
using Presence.Runtime.Cluster;

namespace Presence.Storage.Postgres;

/// <summary>
/// Membership (<c>presence_silos</c>) and partition leases (<c>presence_partitions</c>) on PostgreSQL. Each operation
/// is one statement; lease changes lock rows in partition order with <c>SKIP LOCKED</c>, so they never wait for (or
/// deadlock with) a commit holding a partition's fence, and an epoch moves only under that row lock. Outages surface
/// as <see cref="Runtime.Storage.StorageUnavailableException"/>.
/// </summary>
public sealed class PostgresMembership(NpgsqlDataSource data, PostgresPresenceStore store) : IMembershipStore
{
    /// <summary>Rows of silos dead for longer than this are deleted (the cluster view shows recent deaths only).</summary>
    private static readonly TimeSpan DeadRowsKept = TimeSpan.FromHours(1);

    public Task JoinAsync(SiloEntry silo, CancellationToken cancellationToken) => Run(async () =>
    {
        await using var command = data.CreateCommand(
            "INSERT INTO presence_silos (silo_id, address, generation, status, started_at, last_heartbeat_at, devices) " +
            "VALUES (@id, @address, @generation, @status, @started, @seen, @devices)");
        command.Parameters.AddWithValue("id", silo.SiloId);
        command.Parameters.AddWithValue("address", silo.Address);
        command.Parameters.AddWithValue("generation", silo.Generation);
        command.Parameters.AddWithValue("status", (short)silo.Status);
        command.Parameters.AddWithValue("started", silo.StartedAt);
        command.Parameters.AddWithValue("seen", silo.LastHeartbeatAt);
        command.Parameters.AddWithValue("devices", silo.Devices);
        await command.ExecuteNonQueryAsync(cancellationToken);
        return true;
    });

    public Task<SiloStatus?> HeartbeatAsync(string siloId, SiloStatus status, long devices, DateTime now, CancellationToken cancellationToken) => Run(async () =>
    {
        // The old status is read in the same statement (a self-join sees the row as it was before the update).
        await using var command = data.CreateCommand(
            "UPDATE presence_silos s SET status = @status, last_heartbeat_at = @now, devices = @devices " +
            "FROM presence_silos before WHERE s.silo_id = @id AND before.silo_id = s.silo_id RETURNING before.status");
        command.Parameters.AddWithValue("id", siloId);
        command.Parameters.AddWithValue("status", (short)status);
        command.Parameters.AddWithValue("now", now);
        command.Parameters.AddWithValue("devices", devices);
        var previous = await command.ExecuteScalarAsync(cancellationToken);
        return previous is short value ? (SiloStatus?)value : null;
    });

    public Task<IReadOnlyList<string>> DeclareDeadAsync(DateTime staleBefore, CancellationToken cancellationToken) => Run<IReadOnlyList<string>>(async () =>
    {
        await using var batch = data.CreateBatch();
        var declare = new NpgsqlBatchCommand(
            "UPDATE presence_silos SET status = 3 WHERE status <> 3 AND last_heartbeat_at < @stale RETURNING silo_id");
        declare.Parameters.AddWithValue("stale", staleBefore);
        var forget = new NpgsqlBatchCommand("DELETE FROM presence_silos WHERE status = 3 AND last_heartbeat_at < @forget");
        forget.Parameters.AddWithValue("forget", staleBefore - DeadRowsKept);
        batch.BatchCommands.Add(declare);
        batch.BatchCommands.Add(forget);
        var dead = new List<string>();
        await using var row = await batch.ExecuteReaderAsync(cancellationToken);
        while (await row.ReadAsync(cancellationToken))
        {
            dead.Add(row.GetString(0));
        }

        return dead;
    });

    public Task<IReadOnlyDictionary<int, long>> RenewAsync(string siloId, DateTime until, CancellationToken cancellationToken) =>
        Run<IReadOnlyDictionary<int, long>>(async () =>
        {
            await using var command = data.CreateCommand(
                "UPDATE presence_partitions SET lease_expires_at = @until WHERE owner = @id RETURNING partition, epoch");
            command.Parameters.AddWithValue("id", siloId);
            command.Parameters.AddWithValue("until", until);
            return await ReadEpochsAsync(command, cancellationToken);
        });

    public Task<IReadOnlyList<AcquiredPartition>> AcquireAsync(
        string siloId, IReadOnlyCollection<int> partitions, DateTime now, DateTime until, CancellationToken cancellationToken) =>
        Run<IReadOnlyList<AcquiredPartition>>(async () =>
        {
            await using var command = data.CreateCommand(
                "WITH free AS (SELECT partition FROM presence_partitions " +
                "  WHERE partition = ANY(@parts) AND (lease_expires_at IS NULL OR lease_expires_at < @now) " +
                "  ORDER BY partition FOR UPDATE SKIP LOCKED) " +
                "UPDATE presence_partitions p SET owner = @id, epoch = p.epoch + 1, lease_expires_at = @until " +
                "FROM free WHERE p.partition = free.partition RETURNING p.partition, p.epoch");
            command.Parameters.AddWithValue("parts", partitions.ToArray());
            command.Parameters.AddWithValue("now", now);
            command.Parameters.AddWithValue("id", siloId);
            command.Parameters.AddWithValue("until", until);
            var epochs = await ReadEpochsAsync(command, cancellationToken);
            return epochs.Select(e => new AcquiredPartition(e.Key, e.Value)).OrderBy(a => a.Partition).ToList();
        });

    public Task ReleaseAsync(string siloId, IReadOnlyCollection<AcquiredPartition> partitions, CancellationToken cancellationToken) => Run(async () =>
    {
        await using var command = data.CreateCommand(
            "WITH mine AS (SELECT p.partition FROM presence_partitions p JOIN unnest(@parts, @epochs) AS r(partition, epoch) " +
            "  ON p.partition = r.partition AND p.epoch = r.epoch WHERE p.owner = @id ORDER BY p.partition FOR UPDATE OF p) " +
            "UPDATE presence_partitions p SET owner = NULL, lease_expires_at = NULL FROM mine WHERE p.partition = mine.partition");
        command.Parameters.AddWithValue("id", siloId);
        command.Parameters.Add(new NpgsqlParameter("parts", NpgsqlDbType.Array | NpgsqlDbType.Integer) { Value = partitions.Select(p => p.Partition).ToArray() });
        command.Parameters.Add(new NpgsqlParameter("epochs", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { Value = partitions.Select(p => p.Epoch).ToArray() });
        await command.ExecuteNonQueryAsync(cancellationToken);
        return true;
    });

    public Task<ClusterView> ReadAsync(CancellationToken cancellationToken) => Run(async () =>
    {
        await using var batch = data.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            "SELECT silo_id, address, generation, status, started_at, last_heartbeat_at, devices FROM presence_silos ORDER BY started_at, silo_id"));
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT partition, owner, epoch, lease_expires_at FROM presence_partitions ORDER BY partition"));
        await using var row = await batch.ExecuteReaderAsync(cancellationToken);
        var silos = new List<SiloEntry>();
        while (await row.ReadAsync(cancellationToken))
        {
            silos.Add(new SiloEntry(row.GetString(0), row.GetString(1), row.GetInt64(2), (SiloStatus)row.GetInt16(3),
                row.GetDateTime(4), row.GetDateTime(5), row.GetInt64(6)));
        }

        await row.NextResultAsync(cancellationToken);
        var partitions = new List<PartitionLease>(1024);
        while (await row.ReadAsync(cancellationToken))
        {
            partitions.Add(new PartitionLease(row.GetInt32(0), row.IsDBNull(1) ? null : row.GetString(1), row.GetInt64(2),
                row.IsDBNull(3) ? null : row.GetDateTime(3)));
        }

        return new ClusterView(silos, partitions);
    });

    private static async Task<IReadOnlyDictionary<int, long>> ReadEpochsAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        var epochs = new Dictionary<int, long>();
        await using var row = await command.ExecuteReaderAsync(cancellationToken);
        while (await row.ReadAsync(cancellationToken))
        {
            epochs[row.GetInt32(0)] = row.GetInt64(1);
        }

        return epochs;
    }

    private async Task<T> Run<T>(Func<Task<T>> operation) => await store.Read(operation);
}
