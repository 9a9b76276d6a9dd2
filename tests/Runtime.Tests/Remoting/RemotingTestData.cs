using Presence.Grains.Abstractions;

namespace Presence.Runtime.Tests.Remoting;

internal static class RemotingTestData
{
    public static DeviceRecord FullDevice(string deviceId) => new()
    {
        TenantId = "tenant-a",
        DeviceId = deviceId,
        DeviceName = "Gerät \U0001F600 " + deviceId,
        Platform = "linux",
        AppVersion = "2.0.0-rc.1",
        Status = DeviceStatus.Online,
        FirstSeenAt = new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc).AddTicks(7),
        LastSeenAt = DateTime.MaxValue,
        StatusChangedAt = new DateTime(2026, 11, 22, 0, 0, 0, DateTimeKind.Utc),
        SessionId = long.MinValue,
        SessionStartedAt = new DateTime(2026, 11, 21, 0, 0, 0, DateTimeKind.Utc),
        SessionHeartbeats = long.MaxValue,
        Metrics = new MetricSet(["cpu_pct", "mem_pct"], [99.5, double.Epsilon]),
        Containers = [new ContainerInfo("db", "postgres:17", "exited", "")],
        Labels = new Dictionary<string, string>(StringComparer.Ordinal) { ["rack"] = "3", ["site"] = "Zürich" },
        Timeout = TimeSpan.FromTicks(12_345_678_901),
        Version = 42,
        Sequence = -3,
        Credential = new DeviceCredential(-7, [.. Enumerable.Range(0, 64).Select(i => (byte)i)]),
    };

    /// <summary>Every property equal (collections by content; a record's own equality compares them by reference).</summary>
    public static void AssertSameDevice(DeviceRecord expected, DeviceRecord actual)
    {
        Assert.Equal(Scalars(expected), Scalars(actual));
        Assert.Equal(expected.Metrics.Keys, actual.Metrics.Keys);
        Assert.Equal(expected.Metrics.Values, actual.Metrics.Values);
        Assert.Equal(expected.Containers, actual.Containers);
        Assert.Equal(expected.Labels.OrderBy(l => l.Key, StringComparer.Ordinal), actual.Labels.OrderBy(l => l.Key, StringComparer.Ordinal));
        Assert.Equal(expected.Credential?.Stamp, actual.Credential?.Stamp);
        Assert.Equal(expected.Credential?.Hash, actual.Credential?.Hash);
    }

    private static DeviceRecord Scalars(DeviceRecord device) =>
        device with { Metrics = default, Containers = NoContainers, Labels = DeviceRecord.NoLabels, Credential = null };

    private static readonly ContainerInfo[] NoContainers = [];
}
