using Npgsql;
using NpgsqlTypes;
using Presence.Grains.Abstractions;

namespace Presence.Storage.Postgres;

/// <summary>How a <see cref="DeviceEvent"/> maps to a <c>presence_events</c> row.</summary>
internal static class EventRows
{
    public const string Columns =
        "position, tenant_id, device_id, type, sequence, time, status, previous_status, reason, last_seen_at, session_id, " +
        "device_name, platform, command_id, ok, output";

    /// <summary>
    /// Appends a batch: takes the next positions by moving the log's head (the row lock serialises appenders in
    /// commit order), inserts the events at them, rings the doorbell, and returns the new head.
    /// </summary>
    public const string Append =
        "WITH h AS (UPDATE presence_log SET head = head + cardinality(@e_tenant_id::text[]) WHERE id = 1 RETURNING head), " +
        "ins AS (INSERT INTO presence_events (" + Columns + ") " +
        "SELECT h.head - cardinality(@e_tenant_id::text[]) + e.ord, e.tenant_id, e.device_id, e.type, e.sequence, e.time, e.status, " +
        "e.previous_status, e.reason, e.last_seen_at, e.session_id, e.device_name, e.platform, e.command_id, e.ok, e.output " +
        "FROM h, unnest(@e_tenant_id::text[], @e_device_id::text[], @e_type::smallint[], @e_sequence::bigint[], @e_time::timestamptz[], " +
        "@e_status::smallint[], @e_previous_status::smallint[], @e_reason::smallint[], @e_last_seen_at::timestamptz[], @e_session_id::bigint[], " +
        "@e_device_name::text[], @e_platform::text[], @e_command_id::text[], @e_ok::boolean[], @e_output::text[]) WITH ORDINALITY " +
        "AS e(tenant_id, device_id, type, sequence, time, status, previous_status, reason, last_seen_at, session_id, device_name, platform, " +
        "command_id, ok, output, ord)) " +
        "SELECT head, pg_notify('" + PostgresEventLog.Channel + "', head::text) FROM h";

    public static void Bind(NpgsqlParameterCollection command, IReadOnlyList<DeviceEvent> events)
    {
        DeviceRows.Add(command, "e_tenant_id", NpgsqlDbType.Text, events, static e => e.TenantId);
        DeviceRows.Add(command, "e_device_id", NpgsqlDbType.Text, events, static e => e.DeviceId);
        DeviceRows.Add(command, "e_type", NpgsqlDbType.Smallint, events, static e => (short)e.Type);
        DeviceRows.Add(command, "e_sequence", NpgsqlDbType.Bigint, events, static e => e.Sequence);
        DeviceRows.Add(command, "e_time", NpgsqlDbType.TimestampTz, events, static e => e.Time);
        DeviceRows.Add(command, "e_status", NpgsqlDbType.Smallint, events, static e => e.Type == DeviceEventType.Status ? (short?)e.Status : null);
        DeviceRows.Add(command, "e_previous_status", NpgsqlDbType.Smallint, events, static e => e.Type == DeviceEventType.Status ? (short?)e.PreviousStatus : null);
        DeviceRows.Add(command, "e_reason", NpgsqlDbType.Smallint, events, static e => e.Type == DeviceEventType.Status ? (short?)e.Reason : null);
        DeviceRows.Add(command, "e_last_seen_at", NpgsqlDbType.TimestampTz, events, static e => e.LastSeenAt == default ? (DateTime?)null : e.LastSeenAt);
        DeviceRows.Add(command, "e_session_id", NpgsqlDbType.Bigint, events, static e => e.SessionId == 0 ? (long?)null : e.SessionId);
        DeviceRows.Add(command, "e_device_name", NpgsqlDbType.Text, events, static e => e.DeviceName);
        DeviceRows.Add(command, "e_platform", NpgsqlDbType.Text, events, static e => e.Platform);
        DeviceRows.Add(command, "e_command_id", NpgsqlDbType.Text, events, static e => e.CommandId);
        DeviceRows.Add(command, "e_ok", NpgsqlDbType.Boolean, events, static e => e.Type == DeviceEventType.CommandResult ? (bool?)e.Ok : null);
        // PostgreSQL text cannot hold U+0000, which a device may put in a command's output.
        DeviceRows.Add(command, "e_output", NpgsqlDbType.Text, events, static e => e.Output?.Replace('\0', '\uFFFD'));
    }

    /// <summary>Reads a row selected with <see cref="Columns"/>, starting at column <paramref name="at"/>.</summary>
    public static DeviceEvent Read(NpgsqlDataReader row, int at = 0)
    {
        var e = new DeviceEvent
        {
            TenantId = row.GetString(at + 1),
            DeviceId = row.GetString(at + 2),
            Type = (DeviceEventType)row.GetInt16(at + 3),
            Sequence = row.GetInt64(at + 4),
            Time = row.GetDateTime(at + 5),
            Status = row.IsDBNull(at + 6) ? default : (DeviceStatus)row.GetInt16(at + 6),
            PreviousStatus = row.IsDBNull(at + 7) ? default : (DeviceStatus)row.GetInt16(at + 7),
            Reason = row.IsDBNull(at + 8) ? default : (StatusReason)row.GetInt16(at + 8),
            LastSeenAt = row.IsDBNull(at + 9) ? default : row.GetDateTime(at + 9),
            SessionId = row.IsDBNull(at + 10) ? 0 : row.GetInt64(at + 10),
            DeviceName = row.IsDBNull(at + 11) ? null : row.GetString(at + 11),
            Platform = row.IsDBNull(at + 12) ? null : row.GetString(at + 12),
            CommandId = row.IsDBNull(at + 13) ? null : row.GetString(at + 13),
            Ok = !row.IsDBNull(at + 14) && row.GetBoolean(at + 14),
            Output = row.IsDBNull(at + 15) ? null : row.GetString(at + 15),
        };
        e.AssignPosition(row.GetInt64(at));
        return e;
    }
}
