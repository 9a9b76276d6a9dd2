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

    [LoggerMessage(EventId = 1005, Level = LogLevel.Critical,
        Message = "Partition {Partition} was taken over by another process (epoch {Epoch} is stale): it no longer writes or serves; restart this process if that was not intended")]
    public static partial void PartitionFenced(this ILogger logger, int partition, long epoch);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Information,
        Message = "Recovery: {Devices} devices were online in storage ({Partitions} partitions); each has one timeout from {ClaimedAt:o} before it is declared offline ({Seconds:0.0} s to load)")]
    public static partial void Recovered(this ILogger logger, long devices, int partitions, DateTime claimedAt, double seconds);

    [LoggerMessage(EventId = 1007, Level = LogLevel.Error, Message = "Recovery of online devices failed; devices are loaded as calls arrive instead")]
    public static partial void RecoveryFailed(this ILogger logger, Exception error);

    [LoggerMessage(EventId = 1008, Level = LogLevel.Warning,
        Message = "Partition {Partition} (epoch {Epoch}) is no longer this silo's lease: another silo owns it now; it stops serving")]
    public static partial void PartitionLost(this ILogger logger, int partition, long epoch);
}
