namespace Presence.Grains.Abstractions;

public enum DeviceStatus : byte
{
    Offline = 0,
    Online = 1,
}

/// <summary>Why a device's status changed, as written in <c>device.status</c> events and session end reasons.</summary>
public enum StatusReason : byte
{
    Heartbeat = 0,
    Timeout = 1,
    Disconnected = 2,
    Removed = 3,
}

public static class StatusNames
{
    public static string Name(this DeviceStatus status) => status == DeviceStatus.Online ? "online" : "offline";

    public static string Name(this StatusReason reason) => reason switch
    {
        StatusReason.Heartbeat => "heartbeat",
        StatusReason.Timeout => "timeout",
        StatusReason.Disconnected => "disconnected",
        _ => "removed",
    };
}
