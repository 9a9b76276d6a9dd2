using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Presence.Runtime.Options;
using Presence.Runtime.Storage;

namespace Presence.Runtime.Silo;

/// <summary>
/// Bounded background jobs, every <c>Presence:Storage:HousekeepingIntervalMinutes</c>: event retention
/// (<c>Presence:Events:RetentionHours</c>), session history retention (<c>Presence:Storage:SessionRetentionDays</c>)
/// and, when <c>Presence:Devices:DeleteAfterDays</c> is set, removal of devices silent that long (through their
/// grains, so portals get <c>device.removed</c>). Each run does at most a fixed amount of work and logs what it did.
/// </summary>
public sealed partial class Housekeeping(
    SiloRuntime silo,
    TimeProvider time,
    IOptions<EventsOptions> events,
    IOptions<StorageOptions> storage,
    IOptions<DevicesOptions> devices,
    ILogger<Housekeeping> log) : IHostedService, IDisposable
{
    /// <summary>Most rows one run deletes per job, so a run never holds the database for long.</summary>
    public const int MaxRowsPerRun = 100_000;

    /// <summary>Most devices one run removes.</summary>
    public const int MaxDevicesPerRun = 10_000;

    private readonly SemaphoreSlim _running = new(1, 1);
    private ITimer? _timer;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var interval = TimeSpan.FromMinutes(storage.Value.HousekeepingIntervalMinutes);
        _timer = time.CreateTimer(static state => _ = ((Housekeeping)state!).RunScheduledAsync(), this, interval, interval);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _timer?.Dispose();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        _timer?.Dispose();
        _running.Dispose();
    }

    /// <summary>One run of every job (what the timer does); returns what was deleted.</summary>
    public async Task<HousekeepingResult> RunOnceAsync(CancellationToken cancellationToken = default)
    {
        await _running.WaitAsync(cancellationToken);
        try
        {
            var now = time.GetUtcNow().UtcDateTime;
            var store = silo.Store;
            var eventsBefore = now - TimeSpan.FromHours(events.Value.RetentionHours);
            var sessionsBefore = now - TimeSpan.FromDays(storage.Value.SessionRetentionDays);
            var trimmedEvents = await store.TrimEventsAsync(eventsBefore, MaxRowsPerRun, cancellationToken);
            var trimmedSessions = await store.TrimSessionsAsync(sessionsBefore, MaxRowsPerRun, cancellationToken);
            long removed = 0;
            if (devices.Value.DeleteAfterDays > 0)
            {
                var silentBefore = now - TimeSpan.FromDays(devices.Value.DeleteAfterDays);
                foreach (var key in await store.ReadSilentDevicesAsync(silentBefore, MaxDevicesPerRun, cancellationToken))
                {
                    try
                    {
                        removed += await silo.RemoveIfSilentAsync(key, silentBefore) ? 1 : 0;
                    }
                    catch (Cluster.NotOwnerException)
                    {
                        // In a cluster, the device's owner removes it in its own housekeeping.
                    }
                }
            }

            var result = new HousekeepingResult(trimmedEvents, trimmedSessions, removed);
            if (result.Any)
            {
                LogRun(log, trimmedEvents, eventsBefore, trimmedSessions, sessionsBefore, removed);
            }

            return result;
        }
        finally
        {
            _running.Release();
        }
    }

    private async Task RunScheduledAsync()
    {
        try
        {
            await RunOnceAsync();
        }
        catch (UnavailableException error)
        {
            LogSkipped(log, error.Message);
        }
        catch (Exception error)
        {
            LogFailed(log, error);
        }
    }

    [LoggerMessage(EventId = 1101, Level = LogLevel.Information,
        Message = "Housekeeping: deleted {Events} events older than {EventsBefore:o}, {Sessions} sessions ended before {SessionsBefore:o}, removed {Devices} silent devices")]
    private static partial void LogRun(ILogger logger, long events, DateTime eventsBefore, long sessions, DateTime sessionsBefore, long devices);

    [LoggerMessage(EventId = 1102, Level = LogLevel.Warning, Message = "Housekeeping skipped: {Reason}")]
    private static partial void LogSkipped(ILogger logger, string reason);

    [LoggerMessage(EventId = 1103, Level = LogLevel.Error, Message = "Housekeeping failed")]
    private static partial void LogFailed(ILogger logger, Exception error);
}

/// <summary>What one housekeeping run deleted.</summary>
public sealed record HousekeepingResult(long Events, long Sessions, long Devices)
{
    public bool Any => Events + Sessions + Devices > 0;
}
