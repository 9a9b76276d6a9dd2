using System.Buffers;
using System.Globalization;
using System.Text.Json;

namespace Presence.Grains.Abstractions;

/// <summary>
/// Renders the public JSON shapes of API.md (Device, Event, Session) with <see cref="Utf8JsonWriter"/>:
/// no reflection and no intermediate strings on the hot path.
/// </summary>
public static class PresenceJson
{
    private const string TimeFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";
    private const string SessionIdFormat = "x16";

    public static string FormatTime(DateTime utc) => utc.ToString(TimeFormat, CultureInfo.InvariantCulture);

    public static string FormatSessionId(long sessionId) => sessionId.ToString(SessionIdFormat, CultureInfo.InvariantCulture);

    /// <summary>Durations in responses are whole seconds; a fractional timeout is rounded up.</summary>
    public static long WholeSeconds(TimeSpan duration) => Math.Max(1, (long)Math.Ceiling(duration.TotalSeconds));

    public static void WriteTime(Utf8JsonWriter writer, string name, DateTime utc)
    {
        Span<char> buffer = stackalloc char[32];
        utc.TryFormat(buffer, out var written, TimeFormat, CultureInfo.InvariantCulture);
        writer.WriteString(name, buffer[..written]);
    }

    /// <summary>As <see cref="WriteTime"/>, but <c>null</c> for <c>default</c> (a time that has not happened).</summary>
    public static void WriteTimeOrNull(Utf8JsonWriter writer, string name, DateTime utc)
    {
        if (utc == default)
        {
            writer.WriteNull(name);
            return;
        }

        WriteTime(writer, name, utc);
    }

    public static void WriteSessionId(Utf8JsonWriter writer, string name, long sessionId)
    {
        if (sessionId == 0)
        {
            writer.WriteNull(name);
            return;
        }

        Span<char> buffer = stackalloc char[16];
        sessionId.TryFormat(buffer, out _, SessionIdFormat, CultureInfo.InvariantCulture);
        writer.WriteString(name, buffer);
    }

    /// <param name="secret">A newly issued device secret, shown this once (provisioning, rotation).</param>
    public static void WriteDevice(Utf8JsonWriter writer, DeviceRecord device, TimeSpan defaultTimeout, string? secret = null)
    {
        writer.WriteStartObject();
        writer.WriteString("device_id", device.DeviceId);
        writer.WriteString("device_name", device.DeviceName);
        writer.WriteString("platform", device.Platform);
        writer.WriteString("app_version", device.AppVersion);
        writer.WriteString("status", device.Status.Name());
        WriteTimeOrNull(writer, "last_seen_at", device.HasBeenSeen ? device.LastSeenAt : default);
        WriteTime(writer, "first_seen_at", device.FirstSeenAt);
        WriteTime(writer, "status_changed_at", device.StatusChangedAt);
        WriteSessionId(writer, "session_id", device.Status == DeviceStatus.Online ? device.SessionId : 0);
        writer.WritePropertyName("metrics");
        WriteMetrics(writer, device.Metrics);
        writer.WritePropertyName("containers");
        WriteContainers(writer, device.Containers);
        writer.WriteNumber("timeout_s", WholeSeconds(device.Timeout > TimeSpan.Zero ? device.Timeout : defaultTimeout));
        writer.WritePropertyName("labels");
        WriteLabels(writer, device.Labels);
        writer.WriteNumber("version", device.Version);
        if (secret is not null)
        {
            writer.WriteString("secret", secret);
        }

        writer.WriteEndObject();
    }

    /// <summary><c>{"cpu_pct":12.5,...}</c></summary>
    public static void WriteMetrics(Utf8JsonWriter writer, MetricSet metrics)
    {
        writer.WriteStartObject();
        for (var i = 0; i < metrics.Count; i++)
        {
            writer.WriteNumber(metrics.Keys[i], metrics.Values[i]);
        }

        writer.WriteEndObject();
    }

    /// <summary><c>[{"name":...,"image":...,"state":...,"ports":...}]</c></summary>
    public static void WriteContainers(Utf8JsonWriter writer, IReadOnlyList<ContainerInfo> containers)
    {
        writer.WriteStartArray();
        foreach (var container in containers)
        {
            writer.WriteStartObject();
            writer.WriteString("name", container.Name);
            writer.WriteString("image", container.Image);
            writer.WriteString("state", container.State);
            writer.WriteString("ports", container.Ports);
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }

    /// <summary><c>{"rack":"3",...}</c></summary>
    public static void WriteLabels(Utf8JsonWriter writer, IReadOnlyDictionary<string, string> labels)
    {
        writer.WriteStartObject();
        foreach (var (name, value) in labels)
        {
            writer.WriteString(name, value);
        }

        writer.WriteEndObject();
    }

    public static void WriteSession(Utf8JsonWriter writer, SessionRecord session)
    {
        writer.WriteStartObject();
        WriteSessionId(writer, "session_id", session.SessionId);
        WriteTime(writer, "started_at", session.StartedAt);
        if (session.EndedAt is { } ended)
        {
            WriteTime(writer, "ended_at", ended);
        }
        else
        {
            writer.WriteNull("ended_at");
        }

        writer.WriteString("end_reason", session.EndReason?.Name());
        writer.WriteNumber("heartbeats", session.Heartbeats);
        writer.WriteEndObject();
    }

    public static ReadOnlySpan<byte> EventFramePrefix => "{\"type\":\"event\",\"event\":"u8;

    public static ReadOnlySpan<byte> EventFrameSuffix => "}"u8;

    /// <summary>The CloudEvents 1.0 structured form of an event, with Presence's extensions.</summary>
    public static byte[] RenderEvent(DeviceEvent e, EventCursor cursor) =>
        RenderEventFrame(e, cursor)[EventFramePrefix.Length..^EventFrameSuffix.Length];

    /// <summary>An event's <c>/ws/events</c> message: the CloudEvents 1.0 structured form, with Presence's extensions, in a frame.</summary>
    public static byte[] RenderEventFrame(DeviceEvent e, EventCursor cursor)
    {
        var buffer = new ArrayBufferWriter<byte>(384);
        buffer.Write(EventFramePrefix);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteEvent(writer, e, cursor);
        }

        buffer.Write(EventFrameSuffix);
        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteEvent(Utf8JsonWriter writer, DeviceEvent e, EventCursor cursor)
    {
        writer.WriteStartObject();
        writer.WriteString("specversion", "1.0");
        writer.WriteString("id", cursor.ToString());
        writer.WriteString("source", $"/tenants/{e.TenantId}/devices/{e.DeviceId}");
        writer.WriteString("type", TypeName(e.Type));
        WriteTime(writer, "time", e.Time);
        writer.WriteString("tenantid", e.TenantId);
        writer.WriteString("deviceid", e.DeviceId);
        writer.WriteNumber("sequence", e.Sequence);
        writer.WriteStartObject("data");
        switch (e.Type)
        {
            case DeviceEventType.Registered:
                writer.WriteString("device_name", e.DeviceName);
                writer.WriteString("platform", e.Platform);
                WriteTime(writer, "first_seen_at", e.Time);
                break;
            case DeviceEventType.Status:
                writer.WriteString("status", e.Status.Name());
                writer.WriteString("previous_status", e.PreviousStatus.Name());
                writer.WriteString("reason", e.Reason.Name());
                WriteTime(writer, "last_seen_at", e.LastSeenAt);
                WriteSessionId(writer, "session_id", e.SessionId);
                break;
            case DeviceEventType.Removed:
                WriteTimeOrNull(writer, "last_seen_at", e.LastSeenAt);
                break;
            case DeviceEventType.CommandResult:
                writer.WriteString("command_id", e.CommandId);
                writer.WriteBoolean("ok", e.Ok);
                writer.WriteString("output", e.Output);
                break;
        }

        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    public static string TypeName(DeviceEventType type) => type switch
    {
        DeviceEventType.Registered => "device.registered",
        DeviceEventType.Status => "device.status",
        DeviceEventType.Removed => "device.removed",
        _ => "command.result",
    };
}
