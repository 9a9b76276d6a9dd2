using Microsoft.Extensions.Logging;
using Npgsql;

namespace Presence.Storage.Postgres;

/// <summary>
/// Whether PostgreSQL answers. Any writer's failure marks it down (logged once per outage, not per failure); a
/// probe then polls with backoff until the database answers, so the silo turns ready again even when nothing is
/// waiting to be written.
/// </summary>
internal sealed partial class StorageHealth(NpgsqlDataSource data, TimeProvider time, ILogger log) : IDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private int _down;
    private long _downSince;

    public bool IsAvailable => Volatile.Read(ref _down) == 0;

    public void Failed(Exception error)
    {
        if (Interlocked.Exchange(ref _down, 1) == 0)
        {
            _downSince = time.GetTimestamp();
            LogDown(log, error.GetType().Name, error.Message);
            _ = ProbeAsync(_stopping.Token);
        }
    }

    public void Succeeded()
    {
        if (Interlocked.Exchange(ref _down, 0) == 1)
        {
            LogUp(log, time.GetElapsedTime(_downSince).TotalSeconds);
        }
    }

    /// <summary>Stops the probe (the token source is not disposed: a late failure may still read it).</summary>
    public void Dispose() => _stopping.Cancel();

    private async Task ProbeAsync(CancellationToken cancellationToken)
    {
        var backoff = new Backoff();
        while (!IsAvailable && !cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(backoff.Next(), cancellationToken);
                await using var command = data.CreateCommand("SELECT 1");
                await command.ExecuteScalarAsync(cancellationToken);
                Succeeded();
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception error) when (PostgresErrors.IsOutage(error))
            {
                // Still down; the next attempt waits longer.
            }
        }
    }

    [LoggerMessage(EventId = 3010, Level = LogLevel.Error,
        Message = "PostgreSQL is unavailable ({Kind}: {Reason}): serving online devices from memory, refusing durable changes with 503, retrying with backoff")]
    private static partial void LogDown(ILogger logger, string kind, string reason);

    [LoggerMessage(EventId = 3011, Level = LogLevel.Information, Message = "PostgreSQL is available again after {Seconds:0.0} s; catching up")]
    private static partial void LogUp(ILogger logger, double seconds);
}
