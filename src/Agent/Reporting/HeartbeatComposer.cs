using Microsoft.Extensions.Logging;

namespace Presence.Agent.Reporting;

/// <summary>Collects the host's report and writes it as a heartbeat; warns once if containers had to be left out.</summary>
internal sealed class HeartbeatComposer(HeartbeatJson.Identity identity, HostReporter reporter, ILogger logger)
{
    private int _warnedCut;

    public HeartbeatJson.Identity Identity => identity;

    public HostReporter Reporter => reporter;

    /// <param name="frame">A <c>/ws/device</c> frame (with <c>"type":"heartbeat"</c>) rather than an HTTP body.</param>
    public async Task<byte[]> ComposeAsync(bool frame, CancellationToken cancellationToken)
    {
        var report = await reporter.CollectAsync(cancellationToken);
        var heartbeat = HeartbeatJson.Heartbeat(identity, report, frame, out var sent);
        if (report.Containers is { } all && sent < all.Count && Interlocked.Exchange(ref _warnedCut, 1) == 0)
        {
            AgentLog.ContainersCut(logger, sent, all.Count);
        }

        return heartbeat;
    }
}
