using Presence.Agent.Docker;
using Presence.Agent.Host;

namespace Presence.Agent.Reporting;

/// <summary>What a heartbeat (and the <c>report</c> command) tells about the host at one moment; <c>Containers</c> is null without Docker.</summary>
internal sealed record HostReport(HostMetrics Metrics, IReadOnlyList<ContainerInfo>? Containers);

/// <summary>Collects a <see cref="HostReport"/>: metrics from <c>/proc</c>, containers from Docker when its socket is there.</summary>
internal sealed class HostReporter(ProcMetricsReader metrics, DockerEngine docker)
{
    public async Task<HostReport> CollectAsync(CancellationToken cancellationToken) =>
        new(metrics.Read(), await docker.ListAsync(cancellationToken));
}
