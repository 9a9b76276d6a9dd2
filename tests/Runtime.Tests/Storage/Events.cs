using Presence.Grains.Abstractions;

namespace Presence.Runtime.Tests.Storage;

/// <summary>Events as a grain would emit them, for storage tests.</summary>
internal static class Events
{
    public static readonly DateTime T0 = new(2026, 11, 22, 10, 0, 0, DateTimeKind.Utc);

    public static DeviceEvent Status(string tenantId, string deviceId, long sequence = 2) => new()
    {
        TenantId = tenantId,
        DeviceId = deviceId,
        Type = DeviceEventType.Status,
        Sequence = sequence,
        Time = T0,
        Status = DeviceStatus.Online,
        Reason = StatusReason.Heartbeat,
    };

    public static List<DeviceEvent> Many(int count, string tenantId = "default", string deviceId = "d") =>
        Enumerable.Range(1, count).Select(i => Status(tenantId, deviceId, i)).ToList();
}
