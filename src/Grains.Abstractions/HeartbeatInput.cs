namespace Presence.Grains.Abstractions;

/// <summary>A validated heartbeat: the fields a device may send, each null when absent.</summary>
public sealed record HeartbeatInput(
    string DeviceId,
    string? DeviceName = null,
    string? Platform = null,
    string? AppVersion = null,
    MetricSet? Metrics = null,
    IReadOnlyList<ContainerInfo>? Containers = null)
{
    /// <summary>
    /// Device-token mode: the credential stamp of the caller's token. The heartbeat is accepted only by a device that
    /// exists and still has this stamp (it was not rotated); null when the auth mode has no device tokens.
    /// </summary>
    public long? CredentialStamp { get; init; }
}

public enum HeartbeatOutcome : byte
{
    Accepted,
    RateLimited,

    /// <summary>The token's credential is not the device's current one (rotated, or the device is gone).</summary>
    Unauthorized,
}

/// <summary>The grain's answer to a heartbeat: the device after it, or how long to wait when rate limited.</summary>
public readonly record struct HeartbeatResult(HeartbeatOutcome Outcome, DeviceRecord? Device, TimeSpan RetryAfter)
{
    public static HeartbeatResult Accepted(DeviceRecord device) => new(HeartbeatOutcome.Accepted, device, TimeSpan.Zero);

    public static HeartbeatResult Limited(TimeSpan retryAfter) => new(HeartbeatOutcome.RateLimited, null, retryAfter);

    public static readonly HeartbeatResult Unauthorized = new(HeartbeatOutcome.Unauthorized, null, TimeSpan.Zero);
}
