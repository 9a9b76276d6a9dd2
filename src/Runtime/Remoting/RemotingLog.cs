using Microsoft.Extensions.Logging;

namespace Presence.Runtime.Remoting;

/// <summary>The silo transport's log messages. Device ids appear truncated to 8 characters; secrets never appear.</summary>
internal static partial class RemotingLog
{
    [LoggerMessage(EventId = 7001, Level = LogLevel.Information, Message = "Silo {SiloId} accepts gateway connections on {Endpoint}")]
    public static partial void Listening(this ILogger logger, string siloId, string endpoint);

    [LoggerMessage(EventId = 7002, Level = LogLevel.Information,
        Message = "Silo {SiloId} stops accepting gateway connections; {Connections} open connections finish their calls")]
    public static partial void Stopping(this ILogger logger, string siloId, int connections);

    [LoggerMessage(EventId = 7003, Level = LogLevel.Debug, Message = "Gateway connection from {Remote} opened")]
    public static partial void ConnectionOpened(this ILogger logger, string remote);

    [LoggerMessage(EventId = 7004, Level = LogLevel.Debug, Message = "Gateway connection from {Remote} closed")]
    public static partial void ConnectionClosed(this ILogger logger, string remote);

    [LoggerMessage(EventId = 7005, Level = LogLevel.Warning,
        Message = "Refused a gateway connection from {Remote}: its cluster secret is missing or wrong")]
    public static partial void SecretRefused(this ILogger logger, string remote);

    [LoggerMessage(EventId = 7006, Level = LogLevel.Warning, Message = "Closed the connection from {Remote}: it broke the protocol ({Reason})")]
    public static partial void ProtocolViolation(this ILogger logger, string remote, string reason);

    [LoggerMessage(EventId = 7007, Level = LogLevel.Warning, Message = "{Method} for {Tenant}/{DeviceIdPrefix} failed; the gateway was answered with the error")]
    public static partial void CallFailed(this ILogger logger, Exception error, string method, string tenant, string deviceIdPrefix);

    [LoggerMessage(EventId = 7008, Level = LogLevel.Error, Message = "Accepting gateway connections failed; the silo no longer accepts new ones")]
    public static partial void AcceptFailed(this ILogger logger, Exception error);

    [LoggerMessage(EventId = 7009, Level = LogLevel.Warning, Message = "Stopping timed out; {Connections} gateway connections were closed with calls in flight")]
    public static partial void StopTimedOut(this ILogger logger, int connections);

    [LoggerMessage(EventId = 7010, Level = LogLevel.Error, Message = "The gateway connection from {Remote} failed unexpectedly and was closed")]
    public static partial void ConnectionFailed(this ILogger logger, Exception error, string remote);
}
