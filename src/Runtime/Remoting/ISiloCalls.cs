using Presence.Grains.Abstractions;

namespace Presence.Runtime.Remoting;

/// <summary>What a silo serves over the wire: the grain calls plus the per-tenant heartbeat count (for GET /api/v1/stats).</summary>
public interface ISiloCalls : IDeviceGrains
{
    long HeartbeatsLastMinute(string tenantId);
}
