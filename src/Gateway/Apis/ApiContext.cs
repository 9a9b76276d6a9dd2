using Microsoft.Extensions.Options;
using Presence.Gateway.Auth;
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
    /// The tenant a request acts for, from its authenticated caller: <c>default</c> in auth modes <c>none</c> and
    /// <c>shared-secret</c>, else the API key's or device token's tenant. Every read, write and stream is scoped by it.
    /// </summary>
#pragma warning disable CA1822 // one resolution point for every endpoint
    public string TenantOf(HttpContext context) => context.Caller().TenantId;
#pragma warning restore CA1822
}
