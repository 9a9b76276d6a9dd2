using Microsoft.Extensions.Logging;
using Presence.Agent.Commands;
using Presence.Agent.Connection;
using Presence.Agent.Docker;
using Presence.Agent.Host;
using Presence.Agent.Reporting;

namespace Presence.Agent;

/// <summary>
/// The device agent: heartbeats with the host's metrics and containers, over HTTP or a device channel, at the
/// gateway's interval, with backoff while the gateway is away, until stopped.
/// </summary>
internal sealed class DeviceAgent(AgentSettings settings, ILoggerFactory loggers)
{
    /// <summary>Runs until <paramref name="stop"/> is cancelled, then returns (SIGTERM is a clean stop).</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        var logger = loggers.CreateLogger("Presence.Agent");
        var time = settings.Time;
        using var ownHandler = settings.Handler is null ? new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) } : null;
        var handler = settings.Handler ?? ownHandler!;
        using var docker = new DockerEngine(settings.DockerSocket, time, loggers.CreateLogger("Presence.Agent.Docker"));
        using var gateway = new GatewayClient(settings.Server, handler, time);
        var reporter = new HostReporter(new ProcMetricsReader(settings.ProcRoot), docker);
        var identity = new HeartbeatJson.Identity(settings.DeviceId, settings.DeviceName, settings.Platform, settings.AppVersion);
        var composer = new HeartbeatComposer(identity, reporter, logger);
        var credentials = new DeviceCredentials(settings.DeviceId, settings.Secret, settings.SharedSecret, gateway, time, logger);
        var pacer = new Pacer(time, settings.Jitter, new Connectivity(logger, time), logger);

        AgentLog.Starting(logger, settings.AppVersion, settings.DeviceId, settings.Server.ToString(),
            settings.WebSocket ? "a device channel (/ws/device)" : "HTTP", AuthName(credentials.Mode), settings.ProcRoot);
        if (!File.Exists(Path.Combine(settings.ProcRoot, "stat")))
        {
            AgentLog.NoProc(logger, settings.ProcRoot);
        }

        try
        {
            await (settings.WebSocket
                ? new DeviceChannelLoop(settings.Server, handler, credentials, composer, new DeviceCommands(reporter), pacer, time, logger).RunAsync(stop)
                : new HttpHeartbeatLoop(gateway, credentials, composer, pacer).RunAsync(stop));
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            AgentLog.Stopped(logger);
        }
    }

    private static string AuthName(AuthMode mode) => mode switch
    {
        AuthMode.DeviceToken => "device-token",
        AuthMode.SharedSecret => "shared-secret",
        _ => "none",
    };
}
