using Presence.Grains.Abstractions;
using Presence.Runtime.Remoting;

namespace Presence.Bench.Transport;

/// <summary>A silo that answers every call at once with a fixed result: the benchmark measures the transport only.</summary>
internal sealed class TrivialSilo(DeviceKey key) : ISiloCalls
{
    private readonly HeartbeatResult _accepted = HeartbeatResult.Accepted(new DeviceRecord
    {
        TenantId = key.TenantId,
        DeviceId = key.DeviceId,
        DeviceName = "bench device",
        Status = DeviceStatus.Online,
        SessionId = 0xaa,
        LastSeenAt = DateTime.UtcNow,
        Version = 1,
        Sequence = 1,
    });

    public ValueTask<HeartbeatResult> HeartbeatAsync(DeviceKey key, HeartbeatInput input, CancellationToken cancellationToken = default) => new(_accepted);

    public ValueTask<ProvisionResult> ProvisionAsync(DeviceKey key, ProvisionInput input, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException();

    public ValueTask<DeviceRecord?> GetAsync(DeviceKey key, CancellationToken cancellationToken = default) => new(_accepted.Device);

    public ValueTask<bool> RemoveAsync(DeviceKey key, CancellationToken cancellationToken = default) => new(false);

    public ValueTask<IReadOnlyList<SessionRecord>?> GetSessionsAsync(DeviceKey key, int limit, CancellationToken cancellationToken = default) => new((IReadOnlyList<SessionRecord>?)null);

    public ValueTask ChannelOpenedAsync(DeviceKey key, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public ValueTask ChannelClosedAsync(DeviceKey key, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public ValueTask<bool> CommandResultAsync(DeviceKey key, CommandResult result, CancellationToken cancellationToken = default) => new(false);

    public long HeartbeatsLastMinute(string tenantId) => 0;
}
