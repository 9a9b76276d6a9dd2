using Microsoft.Extensions.Logging;

namespace Presence.Agent;

/// <summary>
/// The agent's log lines, with stable event ids (5xxx; Docker is 51xx). Connectivity changes are logged once each
/// (connected, lost or unreachable with the reason, back after N attempts); every attempt and every wait only at Debug
/// (<c>--verbose</c>). No line carries a secret or a token.
/// </summary>
internal static partial class AgentLog
{
    public const int NextHeartbeatId = 5010;

    [LoggerMessage(EventId = 5001, Level = LogLevel.Information,
        Message = "Presence agent {Version} for device {DeviceId}: gateway {Server} over {Transport}, auth {Auth}, metrics from {ProcRoot}")]
    public static partial void Starting(ILogger logger, string version, string deviceId, string server, string transport, string auth, string procRoot);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Information, Message = "Connected to the gateway; heartbeat every {Seconds} s")]
    public static partial void Connected(ILogger logger, double seconds);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Warning,
        Message = "Lost the gateway: {Reason}; retrying after 1 s, 3 s, 9 s, then every 30 s")]
    public static partial void Lost(ILogger logger, string reason);

    [LoggerMessage(EventId = 5004, Level = LogLevel.Warning,
        Message = "Cannot reach the gateway: {Reason}; retrying after 1 s, 3 s, 9 s, then every 30 s")]
    public static partial void Unreachable(ILogger logger, string reason);

    [LoggerMessage(EventId = 5005, Level = LogLevel.Information,
        Message = "Connected to the gateway again after {Attempts} failed attempts over {Seconds:0} s")]
    public static partial void Restored(ILogger logger, int attempts, double seconds);

    [LoggerMessage(EventId = 5006, Level = LogLevel.Information, Message = "The gateway asks for a heartbeat every {Seconds} s")]
    public static partial void IntervalChanged(ILogger logger, double seconds);

    [LoggerMessage(EventId = 5007, Level = LogLevel.Warning, Message = "The gateway rate-limits this device; waiting {Seconds} s as it asks")]
    public static partial void RateLimited(ILogger logger, double seconds);

    [LoggerMessage(EventId = 5008, Level = LogLevel.Debug, Message = "Attempt {Attempt} failed: {Reason}")]
    public static partial void AttemptFailed(ILogger logger, int attempt, string reason);

    [LoggerMessage(EventId = 5009, Level = LogLevel.Debug, Message = "Heartbeat accepted")]
    public static partial void HeartbeatAccepted(ILogger logger);

    /// <summary>Written once the wait has begun (its timer exists), so a reader of the log knows what the agent waits for.</summary>
    [LoggerMessage(EventId = NextHeartbeatId, Level = LogLevel.Debug, Message = "Next heartbeat in {Seconds} s ({Why})")]
    public static partial void NextHeartbeat(ILogger logger, double seconds, string why);

    [LoggerMessage(EventId = 5011, Level = LogLevel.Information, Message = "Device token obtained; it expires at {ExpiresAt:O}, renewal due at {RenewAt:O}")]
    public static partial void TokenObtained(ILogger logger, DateTimeOffset expiresAt, DateTimeOffset renewAt);

    [LoggerMessage(EventId = 5012, Level = LogLevel.Information, Message = "The gateway closed the device channel with 4001 ({Reason}); getting a new token")]
    public static partial void ChannelRevoked(ILogger logger, string reason);

    [LoggerMessage(EventId = 5013, Level = LogLevel.Debug, Message = "Command {Name} ({CommandId}) answered, ok: {Ok}")]
    public static partial void CommandAnswered(ILogger logger, string name, string commandId, bool ok);

    [LoggerMessage(EventId = 5014, Level = LogLevel.Warning, Message = "The gateway refused a heartbeat frame: {Code}: {Message}")]
    public static partial void FrameRefused(ILogger logger, string code, string message);

    [LoggerMessage(EventId = 5015, Level = LogLevel.Warning,
        Message = "Only {Sent} of {Total} containers fit in a heartbeat (64 KiB); the rest are left out")]
    public static partial void ContainersCut(ILogger logger, int sent, int total);

    [LoggerMessage(EventId = 5016, Level = LogLevel.Debug, Message = "Device token renewal due: reconnecting the device channel with a new token")]
    public static partial void ChannelRenewing(ILogger logger);

    [LoggerMessage(EventId = 5019, Level = LogLevel.Warning,
        Message = "No /proc at {ProcRoot}: heartbeats carry no metrics (in a container, mount the host's: -v /proc:/host/proc:ro)")]
    public static partial void NoProc(ILogger logger, string procRoot);

    [LoggerMessage(EventId = 5017, Level = LogLevel.Information, Message = "Presence agent stopped")]
    public static partial void Stopped(ILogger logger);

    [LoggerMessage(EventId = 5018, Level = LogLevel.Critical, Message = "Presence agent failed")]
    public static partial void Failed(ILogger logger, Exception exception);
}
