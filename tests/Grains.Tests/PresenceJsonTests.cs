using System.Buffers;
using System.Text.Json;
using Presence.Grains.Abstractions;

namespace Presence.Grains.Tests;

public sealed class PresenceJsonTests
{
    private static readonly DateTime At = new DateTime(2026, 11, 22, 10, 0, 0, DateTimeKind.Utc).AddMilliseconds(123);

    [Fact]
    public void Times_are_rfc3339_utc_with_milliseconds_and_z()
    {
        Assert.Equal("2026-11-22T10:00:00.123Z", PresenceJson.FormatTime(At));
        Assert.Equal("2026-11-22T10:00:00.000Z", PresenceJson.FormatTime(new DateTime(2026, 11, 22, 10, 0, 0, DateTimeKind.Utc)));
        Assert.Equal("2027-01-02T03:04:05.006Z", PresenceJson.FormatTime(new DateTime(2027, 1, 2, 3, 4, 5, 6, DateTimeKind.Utc)));
        Assert.Equal("2026-11-22T23:59:59.999Z", PresenceJson.FormatTime(new DateTime(2026, 11, 22, 23, 59, 59, DateTimeKind.Utc).AddTicks(9_999_999)));
    }

    [Fact]
    public void Written_times_match_formatted_times()
    {
        var json = Render(writer =>
        {
            writer.WriteStartObject();
            PresenceJson.WriteTime(writer, "t", At);
            writer.WriteEndObject();
        });

        Assert.Equal("2026-11-22T10:00:00.123Z", json.RootElement.GetProperty("t").GetString());
    }

    [Fact]
    public void Session_ids_are_16_lowercase_hex_digits()
    {
        Assert.Equal("00000000000000ff", PresenceJson.FormatSessionId(255));
        Assert.Equal("7fffffffffffffff", PresenceJson.FormatSessionId(long.MaxValue));
    }

    [Fact]
    public void Device_json_has_the_contract_field_names()
    {
        var json = RenderDevice(OnlineDevice(), TimeSpan.FromSeconds(90));

        string[] expected =
        [
            "device_id", "device_name", "platform", "app_version", "status", "last_seen_at", "first_seen_at",
            "status_changed_at", "session_id", "metrics", "containers", "timeout_s", "labels", "version",
        ];
        Assert.Equal(expected.Order(StringComparer.Ordinal), json.RootElement.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Device_json_carries_the_device_state()
    {
        var root = RenderDevice(OnlineDevice(), TimeSpan.FromSeconds(90)).RootElement;

        Assert.Equal("agent-42", root.GetProperty("device_id").GetString());
        Assert.Equal("Rack 3 agent", root.GetProperty("device_name").GetString());
        Assert.Equal("linux", root.GetProperty("platform").GetString());
        Assert.Equal("1.4.2", root.GetProperty("app_version").GetString());
        Assert.Equal("online", root.GetProperty("status").GetString());
        Assert.Equal("2026-11-22T10:00:00.123Z", root.GetProperty("last_seen_at").GetString());
        Assert.Equal("2026-11-21T09:00:00.000Z", root.GetProperty("first_seen_at").GetString());
        Assert.Equal("2026-11-22T09:30:00.000Z", root.GetProperty("status_changed_at").GetString());
        Assert.Equal("00000000000abc12", root.GetProperty("session_id").GetString());
        Assert.Equal(12.5, root.GetProperty("metrics").GetProperty("cpu_pct").GetDouble());
        Assert.Equal(86400, root.GetProperty("metrics").GetProperty("uptime_s").GetDouble());
        var container = Assert.Single(root.GetProperty("containers").EnumerateArray().ToArray());
        Assert.Equal("web", container.GetProperty("name").GetString());
        Assert.Equal("nginx:1.27", container.GetProperty("image").GetString());
        Assert.Equal("running", container.GetProperty("state").GetString());
        Assert.Equal("80/tcp", container.GetProperty("ports").GetString());
        Assert.Equal(90, root.GetProperty("timeout_s").GetInt64());
        Assert.Equal("3", root.GetProperty("labels").GetProperty("rack").GetString());
        Assert.Equal(41, root.GetProperty("version").GetInt64());
    }

    [Fact]
    public void Offline_device_has_no_session_id()
    {
        var root = RenderDevice(OnlineDevice() with { Status = DeviceStatus.Offline }, TimeSpan.FromSeconds(90)).RootElement;

        Assert.Equal("offline", root.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("session_id").ValueKind);
    }

    [Fact]
    public void Device_json_round_trips_names_that_need_escaping()
    {
        const string name = "Küche \"3\" <rack> & \\ \ud83d\ude80 机架";

        var root = RenderDevice(OnlineDevice() with { DeviceName = name }, TimeSpan.FromSeconds(90)).RootElement;

        Assert.Equal(name, root.GetProperty("device_name").GetString());
    }

    [Theory]
    [InlineData(0, 90, 90)]
    [InlineData(10, 90, 10)]
    [InlineData(1.5, 90, 2)]
    [InlineData(0, 2.2, 3)]
    [InlineData(0.2, 90, 1)]
    public void Device_timeout_is_whole_seconds_of_its_own_or_the_default_timeout(double own, double configured, long expected)
    {
        var device = OnlineDevice() with { Timeout = TimeSpan.FromSeconds(own) };

        var root = RenderDevice(device, TimeSpan.FromSeconds(configured)).RootElement;

        Assert.Equal(expected, root.GetProperty("timeout_s").GetInt64());
    }

    [Fact]
    public void Status_event_is_a_cloudevent_with_presence_extensions()
    {
        var e = new DeviceEvent
        {
            TenantId = "default", DeviceId = "agent-42", Type = DeviceEventType.Status, Sequence = 17, Time = At,
            Status = DeviceStatus.Offline, PreviousStatus = DeviceStatus.Online, Reason = StatusReason.Timeout,
            LastSeenAt = At.AddSeconds(-90), SessionId = 0xabc12,
        };
        var cursor = new EventCursor(0x5eed, 1234);

        var root = Parse(PresenceJson.RenderEvent(e, cursor)).RootElement;

        string[] names = ["specversion", "id", "source", "type", "time", "tenantid", "deviceid", "sequence", "data"];
        Assert.Equal(names.Order(StringComparer.Ordinal), root.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal("1.0", root.GetProperty("specversion").GetString());
        Assert.Equal("5eed-1234", root.GetProperty("id").GetString());
        Assert.True(EventCursor.TryParse(root.GetProperty("id").GetString(), out var parsed));
        Assert.Equal(cursor, parsed);
        Assert.Equal("/tenants/default/devices/agent-42", root.GetProperty("source").GetString());
        Assert.Equal("device.status", root.GetProperty("type").GetString());
        Assert.Equal("2026-11-22T10:00:00.123Z", root.GetProperty("time").GetString());
        Assert.Equal("default", root.GetProperty("tenantid").GetString());
        Assert.Equal("agent-42", root.GetProperty("deviceid").GetString());
        Assert.Equal(17, root.GetProperty("sequence").GetInt64());

        var data = root.GetProperty("data");
        Assert.Equal("offline", data.GetProperty("status").GetString());
        Assert.Equal("online", data.GetProperty("previous_status").GetString());
        Assert.Equal("timeout", data.GetProperty("reason").GetString());
        Assert.Equal("2026-11-22T09:58:30.123Z", data.GetProperty("last_seen_at").GetString());
        Assert.Equal("00000000000abc12", data.GetProperty("session_id").GetString());
    }

    [Theory]
    [InlineData(StatusReason.Heartbeat, "heartbeat")]
    [InlineData(StatusReason.Timeout, "timeout")]
    [InlineData(StatusReason.Disconnected, "disconnected")]
    [InlineData(StatusReason.Removed, "removed")]
    public void Status_reasons_have_their_contract_names(StatusReason reason, string name)
    {
        var e = new DeviceEvent
        {
            TenantId = "default", DeviceId = "d", Type = DeviceEventType.Status, Sequence = 2, Time = At,
            Status = DeviceStatus.Offline, PreviousStatus = DeviceStatus.Online, Reason = reason,
        };

        var data = Parse(PresenceJson.RenderEvent(e, new EventCursor(1, 2))).RootElement.GetProperty("data");

        Assert.Equal(name, data.GetProperty("reason").GetString());
    }

    [Fact]
    public void Registered_event_carries_name_platform_and_first_seen()
    {
        var e = new DeviceEvent
        {
            TenantId = "acme", DeviceId = "a:b@c", Type = DeviceEventType.Registered, Sequence = 1, Time = At,
            DeviceName = "Rack 3 agent", Platform = "linux",
        };

        var root = Parse(PresenceJson.RenderEvent(e, new EventCursor(1, 9))).RootElement;

        Assert.Equal("device.registered", root.GetProperty("type").GetString());
        Assert.Equal("/tenants/acme/devices/a:b@c", root.GetProperty("source").GetString());
        Assert.Equal("acme", root.GetProperty("tenantid").GetString());
        Assert.Equal(1, root.GetProperty("sequence").GetInt64());
        var data = root.GetProperty("data");
        Assert.Equal("Rack 3 agent", data.GetProperty("device_name").GetString());
        Assert.Equal("linux", data.GetProperty("platform").GetString());
        Assert.Equal("2026-11-22T10:00:00.123Z", data.GetProperty("first_seen_at").GetString());
    }

    [Fact]
    public void Removed_and_command_result_events_have_their_types_and_data()
    {
        var removed = new DeviceEvent
        {
            TenantId = "default", DeviceId = "d", Type = DeviceEventType.Removed, Sequence = 4, Time = At, LastSeenAt = At,
        };
        var result = new DeviceEvent
        {
            TenantId = "default", DeviceId = "d", Type = DeviceEventType.CommandResult, Sequence = 5, Time = At,
            CommandId = "cmd-1", Ok = true, Output = "rebooting",
        };

        var removedJson = Parse(PresenceJson.RenderEvent(removed, new EventCursor(1, 4))).RootElement;
        var resultJson = Parse(PresenceJson.RenderEvent(result, new EventCursor(1, 5))).RootElement;

        Assert.Equal("device.removed", removedJson.GetProperty("type").GetString());
        Assert.Equal("2026-11-22T10:00:00.123Z", removedJson.GetProperty("data").GetProperty("last_seen_at").GetString());
        Assert.Equal("command.result", resultJson.GetProperty("type").GetString());
        var data = resultJson.GetProperty("data");
        Assert.Equal("cmd-1", data.GetProperty("command_id").GetString());
        Assert.True(data.GetProperty("ok").GetBoolean());
        Assert.Equal("rebooting", data.GetProperty("output").GetString());
    }

    [Fact]
    public void Event_json_uses_the_position_the_log_assigned()
    {
        var e = new DeviceEvent { TenantId = "default", DeviceId = "d", Type = DeviceEventType.Removed, Sequence = 3, Time = At };
        e.AssignPosition(42);

        var json = e.ToJson(0xfeed);

        Assert.Equal("feed-42", Parse(json.ToArray()).RootElement.GetProperty("id").GetString());
        Assert.True(json.Span.SequenceEqual(e.ToJson(0xfeed).Span));
    }

    [Fact]
    public void Event_position_is_assigned_once()
    {
        var e = new DeviceEvent { TenantId = "default", DeviceId = "d", Type = DeviceEventType.Removed, Sequence = 3, Time = At };
        e.AssignPosition(1);

        Assert.Throws<InvalidOperationException>(() => e.AssignPosition(2));
        Assert.Equal(1, e.Position);
    }

    [Fact]
    public void Session_json_has_the_contract_fields()
    {
        var open = Render(w => PresenceJson.WriteSession(w, new SessionRecord(0xabc12, At, null, null, 3))).RootElement;
        var ended = Render(w => PresenceJson.WriteSession(w, new SessionRecord(0xabc11, At, At.AddMinutes(1), StatusReason.Disconnected, 7))).RootElement;

        Assert.Equal("00000000000abc12", open.GetProperty("session_id").GetString());
        Assert.Equal("2026-11-22T10:00:00.123Z", open.GetProperty("started_at").GetString());
        Assert.Equal(JsonValueKind.Null, open.GetProperty("ended_at").ValueKind);
        Assert.Equal(JsonValueKind.Null, open.GetProperty("end_reason").ValueKind);
        Assert.Equal(3, open.GetProperty("heartbeats").GetInt64());
        Assert.Equal("2026-11-22T10:01:00.123Z", ended.GetProperty("ended_at").GetString());
        Assert.Equal("disconnected", ended.GetProperty("end_reason").GetString());
        Assert.Equal(7, ended.GetProperty("heartbeats").GetInt64());
    }

    private static DeviceRecord OnlineDevice() => new()
    {
        TenantId = "default",
        DeviceId = "agent-42",
        DeviceName = "Rack 3 agent",
        Platform = "linux",
        AppVersion = "1.4.2",
        Status = DeviceStatus.Online,
        FirstSeenAt = new DateTime(2026, 11, 21, 9, 0, 0, DateTimeKind.Utc),
        LastSeenAt = At,
        StatusChangedAt = new DateTime(2026, 11, 22, 9, 30, 0, DateTimeKind.Utc),
        SessionId = 0xabc12,
        SessionStartedAt = new DateTime(2026, 11, 22, 9, 30, 0, DateTimeKind.Utc),
        SessionHeartbeats = 40,
        Metrics = new MetricSet(["cpu_pct", "uptime_s"], [12.5, 86400]),
        Containers = [new ContainerInfo("web", "nginx:1.27", "running", "80/tcp")],
        Labels = new Dictionary<string, string> { ["rack"] = "3" },
        Version = 41,
        Sequence = 2,
    };

    private static JsonDocument RenderDevice(DeviceRecord device, TimeSpan defaultTimeout) =>
        Render(writer => PresenceJson.WriteDevice(writer, device, defaultTimeout));

    private static JsonDocument Render(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer);
        }

        return Parse(buffer.WrittenSpan.ToArray());
    }

    private static JsonDocument Parse(byte[] utf8) => JsonDocument.Parse(utf8);
}
