using Presence.Grains.Abstractions;

namespace Presence.Storage.Postgres.Tests.Support;

/// <summary>Devices, sessions and events as grains make them, with times of microsecond precision (timestamptz's).</summary>
internal static class Samples
{
    public const string Tenant = "acme";

    /// <summary>A time with every digit down to the microsecond set, so truncation or rounding would show.</summary>
    public static readonly DateTime T0 = new DateTime(2026, 11, 22, 10, 0, 0, DateTimeKind.Utc).AddTicks(1_234_567_0);

    public static DateTime At(double seconds) => T0.AddTicks((long)(seconds * 1_000_000) * 10);

    public static DeviceKey Key(string deviceId, string tenantId = Tenant) => new(tenantId, deviceId);

    /// <summary>An online device with metrics, containers and labels; <paramref name="version"/> moves its times and values.</summary>
    public static DeviceRecord Device(string deviceId, long version = 1, long sequence = 1, DateTime? firstSeenAt = null,
        DeviceStatus status = DeviceStatus.Online, string tenantId = Tenant)
    {
        var first = firstSeenAt ?? T0;
        return new DeviceRecord
        {
            TenantId = tenantId,
            DeviceId = deviceId,
            DeviceName = $"Device {deviceId} \u00e9\u4e2d",
            Platform = "linux",
            AppVersion = "2.4." + version,
            Status = status,
            FirstSeenAt = first,
            LastSeenAt = first.AddTicks(version * 10_000_010),
            StatusChangedAt = first.AddTicks(50),
            SessionId = 7_000_000_000 + version,
            SessionStartedAt = first.AddTicks(30),
            SessionHeartbeats = version * 3,
            Metrics = new MetricSet(["cpu_pct", "mem_mb", "temp_c", "a"], [12.5 + version, 1024, -3.25e-7, 0.1 + 0.2]),
            Containers =
            [
                new ContainerInfo("web", "nginx:1.27", "running", "80/tcp,443/tcp"),
                new ContainerInfo("db \"main\"", "postgres:15", "exited", ""),
            ],
            Labels = new Dictionary<string, string>(StringComparer.Ordinal) { ["site"] = "berlin", ["rack"] = "r-" + version, ["emoji"] = "\ud83d\ude80" },
            Timeout = TimeSpan.FromSeconds(45),
            Version = version,
            Sequence = sequence,
        };
    }

    public static DeviceEvent Registered(DeviceKey key, long sequence = 1, DateTime? time = null) => new()
    {
        TenantId = key.TenantId,
        DeviceId = key.DeviceId,
        Type = DeviceEventType.Registered,
        Sequence = sequence,
        Time = time ?? T0,
        DeviceName = "Device " + key.DeviceId,
        Platform = "linux",
    };

    public static DeviceEvent Status(DeviceKey key, long sequence, DeviceStatus status = DeviceStatus.Online, DateTime? time = null) => new()
    {
        TenantId = key.TenantId,
        DeviceId = key.DeviceId,
        Type = DeviceEventType.Status,
        Sequence = sequence,
        Time = time ?? At(sequence),
        Status = status,
        PreviousStatus = status == DeviceStatus.Online ? DeviceStatus.Offline : DeviceStatus.Online,
        Reason = status == DeviceStatus.Online ? StatusReason.Heartbeat : StatusReason.Timeout,
        LastSeenAt = At(sequence - 0.5),
        SessionId = 7_000_000_000 + sequence,
    };

    public static DeviceEvent CommandResult(DeviceKey key, long sequence, string commandId, bool ok = true) => new()
    {
        TenantId = key.TenantId,
        DeviceId = key.DeviceId,
        Type = DeviceEventType.CommandResult,
        Sequence = sequence,
        Time = At(sequence),
        CommandId = commandId,
        Ok = ok,
        Output = ok ? "done\nline 2" : "failed: \"x\"",
    };

    public static DeviceEvent Removed(DeviceKey key, long sequence) => new()
    {
        TenantId = key.TenantId,
        DeviceId = key.DeviceId,
        Type = DeviceEventType.Removed,
        Sequence = sequence,
        Time = At(sequence),
    };

    public static SessionRecord Session(long id, double startedAt, double endedAt, StatusReason reason = StatusReason.Timeout) =>
        new(id, At(startedAt), At(endedAt), reason, id * 10);
}

/// <summary>Field-by-field comparisons (records hold arrays and dictionaries, which compare by reference).</summary>
internal static class Same
{
    public static void Device(DeviceRecord expected, DeviceRecord? actual)
    {
        Assert.NotNull(actual);
        Assert.Equal(expected.TenantId, actual.TenantId);
        Assert.Equal(expected.DeviceId, actual.DeviceId);
        Assert.Equal(expected.DeviceName, actual.DeviceName);
        Assert.Equal(expected.Platform, actual.Platform);
        Assert.Equal(expected.AppVersion, actual.AppVersion);
        Assert.Equal(expected.Status, actual.Status);
        Time(expected.FirstSeenAt, actual.FirstSeenAt);
        Time(expected.LastSeenAt, actual.LastSeenAt);
        Time(expected.StatusChangedAt, actual.StatusChangedAt);
        Assert.Equal(expected.SessionId, actual.SessionId);
        Time(expected.SessionStartedAt, actual.SessionStartedAt);
        Assert.Equal(expected.SessionHeartbeats, actual.SessionHeartbeats);
        Assert.Equal(Metrics(expected.Metrics), Metrics(actual.Metrics));
        Assert.Equal(expected.Containers, actual.Containers);
        Assert.Equal(expected.Labels.OrderBy(l => l.Key, StringComparer.Ordinal), actual.Labels.OrderBy(l => l.Key, StringComparer.Ordinal));
        Assert.Equal(expected.Timeout, actual.Timeout);
        Assert.Equal(expected.Version, actual.Version);
        Assert.Equal(expected.Sequence, actual.Sequence);
    }

    /// <summary>Metrics as a map: jsonb keeps object keys in its own order (shorter keys first), not the device's.</summary>
    public static SortedDictionary<string, double> Metrics(MetricSet metrics)
    {
        var map = new SortedDictionary<string, double>(StringComparer.Ordinal);
        for (var i = 0; i < metrics.Count; i++)
        {
            map.Add(metrics.Keys[i], metrics.Values[i]);
        }

        return map;
    }

    public static void Event(DeviceEvent expected, DeviceEvent actual)
    {
        Assert.Equal(expected.Position, actual.Position);
        Assert.Equal(expected.TenantId, actual.TenantId);
        Assert.Equal(expected.DeviceId, actual.DeviceId);
        Assert.Equal(expected.Type, actual.Type);
        Assert.Equal(expected.Sequence, actual.Sequence);
        Time(expected.Time, actual.Time);
        Assert.Equal(expected.Status, actual.Status);
        Assert.Equal(expected.PreviousStatus, actual.PreviousStatus);
        Assert.Equal(expected.Reason, actual.Reason);
        Time(expected.LastSeenAt, actual.LastSeenAt);
        Assert.Equal(expected.SessionId, actual.SessionId);
        Assert.Equal(expected.DeviceName, actual.DeviceName);
        Assert.Equal(expected.Platform, actual.Platform);
        Assert.Equal(expected.CommandId, actual.CommandId);
        Assert.Equal(expected.Ok, actual.Ok);
        Assert.Equal(expected.Output, actual.Output);
    }

    public static void Events(IReadOnlyList<DeviceEvent> expected, IReadOnlyList<DeviceEvent> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            Event(expected[i], actual[i]);
        }
    }

    /// <summary>Equal to the tick (microseconds in, microseconds out), and UTC when set.</summary>
    public static void Time(DateTime expected, DateTime actual)
    {
        Assert.Equal(expected.Ticks, actual.Ticks);
        if (actual != default)
        {
            Assert.Equal(DateTimeKind.Utc, actual.Kind);
        }
    }
}
