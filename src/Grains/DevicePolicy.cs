using Presence.Grains.Abstractions;

namespace Presence.Grains;

/// <summary>The configured rules a device grain applies (timeouts, grace, rate limit).</summary>
public sealed record DevicePolicy
{
    public TimeSpan DefaultTimeout { get; init; } = TimeSpan.FromSeconds(90);
    public TimeSpan DisconnectGrace { get; init; } = TimeSpan.FromSeconds(5);
    public int HeartbeatsPerMinute { get; init; } = 120;

    /// <summary>Session ids: random, non-zero, unique per device for all practical purposes.</summary>
    public Func<long> NewSessionId { get; init; } = static () => Random.Shared.NextInt64(1, long.MaxValue);

    public TimeSpan TimeoutOf(DeviceRecord device) => device.Timeout > TimeSpan.Zero ? device.Timeout : DefaultTimeout;
}
