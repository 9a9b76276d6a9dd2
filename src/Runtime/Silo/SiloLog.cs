using Microsoft.Extensions.Logging;

namespace Presence.Runtime.Silo;

/// <summary>The silo's log messages. Device ids appear truncated to 8 characters, never whole.</summary>
internal static partial class SiloLog
{
    [LoggerMessage(EventId = 1001, Level = LogLevel.Information,
        Message = "Silo {SiloId} started: {Partitions} partitions, storage {Storage}, timer tick {TickMs} ms")]
    public static partial void SiloStarted(this ILogger logger, string siloId, int partitions, string storage, double tickMs);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Silo {SiloId} stopping: flushing {Partitions} partitions")]
    public static partial void SiloStopping(this ILogger logger, string siloId, int partitions);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Error, Message = "Partition {Partition} turn failed; its calls were answered with the error")]
    public static partial void TurnFailed(this ILogger logger, Exception error, int partition);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Debug, Message = "Device {Tenant}/{DeviceIdPrefix} went offline")]
    public static partial void DeviceExpired(this ILogger logger, string tenant, string deviceIdPrefix);
}
