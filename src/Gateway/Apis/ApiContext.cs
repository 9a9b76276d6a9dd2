using Microsoft.Extensions.Options;
using Presence.Grains.Abstractions;
using Presence.Runtime.Options;
using Presence.Runtime.Storage;

namespace Presence.Gateway.Apis;

/// <summary>What every endpoint needs besides the grains: clock, configured intervals, storage reads, the caller's tenant.</summary>
public sealed class ApiContext(TimeProvider time, IOptions<HeartbeatOptions> heartbeat, IPresenceStore store)
{
    public TimeProvider Time { get; } = time;

    public IPresenceStore Store { get; } = store;

    public TimeSpan PollInterval { get; } = TimeSpan.FromSeconds(heartbeat.Value.IntervalSeconds);

    public TimeSpan DefaultTimeout { get; } = TimeSpan.FromSeconds(heartbeat.Value.TimeoutSeconds);

    public DateTime Now => Time.GetUtcNow().UtcDateTime;

    /// <summary>
    /// The tenant a request acts for. Auth mode <c>none</c> serves the single tenant <c>default</c>;
    /// credentialed modes resolve it from the device token or API key.
    /// </summary>
#pragma warning disable CA1822 // one resolution point for every endpoint, credentials or not
    public string TenantOf(HttpContext context) => DeviceKey.DefaultTenant;
#pragma warning restore CA1822
}
