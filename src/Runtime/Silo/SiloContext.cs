using Microsoft.Extensions.Logging;
using Presence.Grains;
using Presence.Runtime.Storage;

namespace Presence.Runtime.Silo;

/// <summary>What every partition of a silo shares: policy, storage, clock and instruments.</summary>
internal sealed class SiloContext(
    DevicePolicy policy,
    IPresenceStore store,
    TimeProvider time,
    TimeSpan timerTick,
    TimeSpan flushInterval,
    TimeSpan collectionAge,
    ILogger log,
    SiloMetrics metrics)
{
    public DevicePolicy Policy { get; } = policy;
    public IPresenceStore Store { get; } = store;
    public TimeSpan TimerTick { get; } = timerTick;
    public TimeSpan FlushInterval { get; } = flushInterval;
    public TimeSpan CollectionAge { get; } = collectionAge;
    public ILogger Log { get; } = log;
    public SiloMetrics Metrics { get; } = metrics;
    public TenantActivity Activity { get; } = new();

    /// <summary>Two partitions at a time work off timer backlogs, leaving the other threads to requests.</summary>
    public ExpiryLane Expiries { get; } = new(width: 2);

    public DateTime Now() => time.GetUtcNow().UtcDateTime;
}
