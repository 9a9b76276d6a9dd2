using System.Buffers;
using System.Text;
using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Presence.Grains.Abstractions;
using Presence.Runtime.Partitioning;

namespace Presence.Storage.Postgres;

/// <summary>
/// How a <see cref="DeviceRecord"/> maps to a <c>presence_devices</c> row: the column list, a reader, and
/// column-wise arrays so that a batch of devices is written by one statement over <c>unnest</c>.
/// </summary>
internal static class DeviceRows
{
    public const string Columns =
        "tenant_id, device_id, device_name, platform, app_version, status, first_seen_at, last_seen_at, status_changed_at, " +
        "session_id, session_started_at, session_heartbeats, metrics::text, containers::text, labels::text, timeout_ms, version, sequence, secret_stamp, secret_hash";

    /// <summary>The unnest(...) of a batch, with the columns named as in the table (partition and epoch included).</summary>
    public const string Unnest =
        "unnest(@tenant_id::text[], @device_id::text[], @partition::int[], @epoch::bigint[], @device_name::text[], @platform::text[], " +
        "@app_version::text[], @status::smallint[], @first_seen_at::timestamptz[], @last_seen_at::timestamptz[], @status_changed_at::timestamptz[], " +
        "@session_id::bigint[], @session_started_at::timestamptz[], @session_heartbeats::bigint[], @metrics::jsonb[], @containers::jsonb[], " +
        "@labels::jsonb[], @timeout_ms::bigint[], @version::bigint[], @sequence::bigint[], @secret_stamp::bigint[], @secret_hash::bytea[]) " +
        "AS d(tenant_id, device_id, partition, epoch, device_name, platform, app_version, status, first_seen_at, last_seen_at, " +
        "status_changed_at, session_id, session_started_at, session_heartbeats, metrics, containers, labels, timeout_ms, version, sequence, " +
        "secret_stamp, secret_hash)";

    /// <summary>
    /// The columns write-behind replaces (all but the key and the secret). Secrets change only in durable commits,
    /// which also set <see cref="SecretAssignments"/>.
    /// </summary>
    public const string Assignments =
        "partition = d.partition, epoch = d.epoch, device_name = d.device_name, platform = d.platform, app_version = d.app_version, " +
        "status = d.status, first_seen_at = d.first_seen_at, last_seen_at = d.last_seen_at, status_changed_at = d.status_changed_at, " +
        "session_id = d.session_id, session_started_at = d.session_started_at, session_heartbeats = d.session_heartbeats, " +
        "metrics = d.metrics, containers = d.containers, labels = d.labels, timeout_ms = d.timeout_ms, version = d.version, sequence = d.sequence";

    public const string SecretAssignments = "secret_stamp = d.secret_stamp, secret_hash = d.secret_hash";

    /// <summary>Reads a row selected with <see cref="Columns"/>, starting at column <paramref name="at"/>.</summary>
    public static DeviceRecord Read(NpgsqlDataReader row, int at = 0) => new()
    {
        TenantId = row.GetString(at),
        DeviceId = row.GetString(at + 1),
        DeviceName = row.GetString(at + 2),
        Platform = SharedValues.Text(row.IsDBNull(at + 3) ? null : row.GetString(at + 3)),
        AppVersion = SharedValues.Text(row.IsDBNull(at + 4) ? null : row.GetString(at + 4)),
        Status = (DeviceStatus)row.GetInt16(at + 5),
        FirstSeenAt = row.GetDateTime(at + 6),
        LastSeenAt = row.GetDateTime(at + 7),
        StatusChangedAt = row.GetDateTime(at + 8),
        SessionId = row.GetInt64(at + 9),
        SessionStartedAt = row.GetDateTime(at + 10),
        SessionHeartbeats = row.GetInt64(at + 11),
        Metrics = ReadMetrics(row.GetString(at + 12)),
        Containers = ReadContainers(row.GetString(at + 13)),
        Labels = ReadLabels(row.GetString(at + 14)),
        Timeout = TimeSpan.FromMilliseconds(row.GetInt64(at + 15)),
        Version = row.GetInt64(at + 16),
        Sequence = row.GetInt64(at + 17),
        Credential = row.IsDBNull(at + 18) ? null : new DeviceCredential(row.GetInt64(at + 18), row.GetFieldValue<byte[]>(at + 19)),
    };

    /// <summary>Binds a batch of devices as the parameters <see cref="Unnest"/> names.</summary>
    public static void Bind(NpgsqlParameterCollection command, IReadOnlyList<(DeviceRecord Device, int Partition, long Epoch)> rows)
    {
        var n = rows.Count;
        var json = new ArrayBufferWriter<byte>(256);
        using var writer = new Utf8JsonWriter(json);
        string Json<T>(T value, Action<Utf8JsonWriter, T> write)
        {
            json.ResetWrittenCount();
            writer.Reset();
            write(writer, value);
            writer.Flush();
            return Encoding.UTF8.GetString(json.WrittenSpan);
        }

        Add(command, "tenant_id", NpgsqlDbType.Text, rows, static r => r.Device.TenantId);
        Add(command, "device_id", NpgsqlDbType.Text, rows, static r => r.Device.DeviceId);
        Add(command, "partition", NpgsqlDbType.Integer, rows, static r => r.Partition);
        Add(command, "epoch", NpgsqlDbType.Bigint, rows, static r => r.Epoch);
        Add(command, "device_name", NpgsqlDbType.Text, rows, static r => r.Device.DeviceName);
        Add(command, "platform", NpgsqlDbType.Text, rows, static r => r.Device.Platform);
        Add(command, "app_version", NpgsqlDbType.Text, rows, static r => r.Device.AppVersion);
        Add(command, "status", NpgsqlDbType.Smallint, rows, static r => (short)r.Device.Status);
        Add(command, "first_seen_at", NpgsqlDbType.TimestampTz, rows, static r => r.Device.FirstSeenAt);
        Add(command, "last_seen_at", NpgsqlDbType.TimestampTz, rows, static r => r.Device.LastSeenAt);
        Add(command, "status_changed_at", NpgsqlDbType.TimestampTz, rows, static r => r.Device.StatusChangedAt);
        Add(command, "session_id", NpgsqlDbType.Bigint, rows, static r => r.Device.SessionId);
        Add(command, "session_started_at", NpgsqlDbType.TimestampTz, rows, static r => r.Device.SessionStartedAt);
        Add(command, "session_heartbeats", NpgsqlDbType.Bigint, rows, static r => r.Device.SessionHeartbeats);
        var metrics = new string[n];
        var containers = new string[n];
        var labels = new string[n];
        for (var i = 0; i < n; i++)
        {
            var device = rows[i].Device;
            metrics[i] = Json(device.Metrics, PresenceJson.WriteMetrics);
            containers[i] = device.Containers.Count == 0 ? "[]" : Json(device.Containers, PresenceJson.WriteContainers);
            labels[i] = device.Labels.Count == 0 ? "{}" : Json(device.Labels, PresenceJson.WriteLabels);
        }

        command.Add(new NpgsqlParameter<string[]>("metrics", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = metrics });
        command.Add(new NpgsqlParameter<string[]>("containers", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = containers });
        command.Add(new NpgsqlParameter<string[]>("labels", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = labels });
        Add(command, "timeout_ms", NpgsqlDbType.Bigint, rows, static r => (long)r.Device.Timeout.TotalMilliseconds);
        Add(command, "version", NpgsqlDbType.Bigint, rows, static r => r.Device.Version);
        Add(command, "sequence", NpgsqlDbType.Bigint, rows, static r => r.Device.Sequence);
        Add(command, "secret_stamp", NpgsqlDbType.Bigint, rows, static r => r.Device.Credential?.Stamp);
        Add(command, "secret_hash", NpgsqlDbType.Bytea, rows, static r => r.Device.Credential?.Hash);
    }

    /// <summary>Adds one array parameter: the values of one column for every row.</summary>
    public static void Add<TRow, T>(NpgsqlParameterCollection command, string name, NpgsqlDbType type, IReadOnlyList<TRow> rows, Func<TRow, T> column)
    {
        var values = new T[rows.Count];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = column(rows[i]);
        }

        command.Add(new NpgsqlParameter<T[]>(name, NpgsqlDbType.Array | type) { TypedValue = values });
    }

    /// <summary>The partition a device belongs to, stored with it so a new owner finds its devices.</summary>
    public static int PartitionOf(DeviceKey key, int partitions) => PartitionHash.Of(key, partitions);

    private static MetricSet ReadMetrics(string json)
    {
        using var document = JsonDocument.Parse(json);
        var count = document.RootElement.GetPropertyCount();
        if (count == 0)
        {
            return MetricSet.Empty;
        }

        var keys = new string[count];
        var values = new double[count];
        var i = 0;
        foreach (var property in document.RootElement.EnumerateObject())
        {
            keys[i] = property.Name;
            values[i++] = property.Value.GetDouble();
        }

        return new MetricSet(SharedValues.KeySet(keys), values);
    }

    private static IReadOnlyList<ContainerInfo> ReadContainers(string json)
    {
        using var document = JsonDocument.Parse(json);
        if (document.RootElement.GetArrayLength() == 0)
        {
            return [];
        }

        return document.RootElement.EnumerateArray()
            .Select(c => new ContainerInfo(
                c.GetProperty("name").GetString()!,
                c.GetProperty("image").GetString()!,
                c.GetProperty("state").GetString()!,
                c.GetProperty("ports").GetString()!))
            .ToArray();
    }

    private static IReadOnlyDictionary<string, string> ReadLabels(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.GetPropertyCount() == 0
            ? DeviceRecord.NoLabels
            : document.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!, StringComparer.Ordinal);
    }
}
