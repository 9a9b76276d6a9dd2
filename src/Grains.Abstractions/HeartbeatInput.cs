namespace Presence.Grains.Abstractions;

/// <summary>A validated heartbeat: the fields a device may send, each null when absent.</summary>
public sealed record HeartbeatInput(
    string DeviceId,
    string? DeviceName = null,
    string? Platform = null,
    string? AppVersion = null,
    MetricSet? Metrics = null,
    IReadOnlyList<ContainerInfo>? Containers = null);

public enum HeartbeatOutcome : byte
{
    Accepted,
    RateLimited,
}

/// <summary>The grain's answer to a heartbeat: the device after it, or how long to wait when rate limited.</summary>
public readonly record struct HeartbeatResult(HeartbeatOutcome Outcome, DeviceRecord? Device, TimeSpan RetryAfter)
{
    public static HeartbeatResult Accepted(DeviceRecord device) => new(HeartbeatOutcome.Accepted, device, TimeSpan.Zero);

    public static HeartbeatResult Limited(TimeSpan retryAfter) => new(HeartbeatOutcome.RateLimited, null, retryAfter);
}
