using Presence.Runtime.Silo;

namespace Presence.Gateway.Cluster;

/// <summary>What the operations endpoints ask of the silos behind this gateway, embedded or in a cluster.</summary>
public interface ISiloDirectory
{
    /// <summary>Storage answers and every partition has a reachable owner.</summary>
    bool IsReady { get; }

    /// <summary>Heartbeats the tenant's devices sent in the last minute, summed over the silos.</summary>
    ValueTask<long> HeartbeatsLastMinuteAsync(string tenantId, CancellationToken cancellationToken);

    /// <summary>The <c>GET /api/v1/cluster</c> view; <paramref name="gatewayAddress"/> is how this gateway was reached.</summary>
    ValueTask<ClusterDescription> DescribeAsync(string gatewayAddress, CancellationToken cancellationToken);
}

public sealed record ClusterDescription(int PartitionsTotal, int PartitionsUnowned, IReadOnlyList<SiloDescription> Silos);

public sealed record SiloDescription(
    string SiloId, string Address, string Status, int Partitions, long Devices, DateTime StartedAt, DateTime LastHeartbeatAt);

/// <summary>Embedded mode: the one silo in this process, owning every partition, reached at the gateway's own address.</summary>
internal sealed class EmbeddedSiloDirectory(SiloRuntime silo, TimeProvider time) : ISiloDirectory
{
    public bool IsReady => silo.IsReady;

    public ValueTask<long> HeartbeatsLastMinuteAsync(string tenantId, CancellationToken cancellationToken) =>
        ValueTask.FromResult(silo.HeartbeatsLastMinute(tenantId));

    public ValueTask<ClusterDescription> DescribeAsync(string gatewayAddress, CancellationToken cancellationToken) =>
        ValueTask.FromResult(new ClusterDescription(silo.PartitionCount, silo.PartitionCount - silo.OwnedPartitions().Count,
        [
            new SiloDescription(silo.SiloId, gatewayAddress, silo.IsReady ? "active" : "joining", silo.OwnedPartitions().Count,
                silo.Activations, silo.StartedAt, time.GetUtcNow().UtcDateTime),
        ]));
}
