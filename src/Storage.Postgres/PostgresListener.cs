using Npgsql;
using Presence.Runtime.Storage;

namespace Presence.Storage.Postgres;

/// <summary>
/// A <c>LISTEN</c> on one channel that outlives outages: on a dedicated pooled connection, reconnecting with backoff;
/// after every (re)subscription <c>listening</c> runs, so the caller can catch up on what was sent while nobody listened.
/// </summary>
internal static class PostgresListener
{
    public static async Task RunAsync(
        NpgsqlDataSource data,
        string channel,
        Action<string> notified,
        Func<CancellationToken, Task> listening,
        Action<Exception> failed,
        CancellationToken cancellationToken)
    {
        var backoff = new Backoff();
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await data.OpenConnectionAsync(cancellationToken);
                connection.Notification += (_, e) => notified(e.Payload);
                await using (var listen = new NpgsqlCommand("LISTEN " + channel, connection))
                {
                    await listen.ExecuteNonQueryAsync(cancellationToken);
                }

                await listening(cancellationToken);
                backoff.Reset();
                try
                {
                    while (true)
                    {
                        await connection.WaitAsync(cancellationToken);
                    }
                }
                finally
                {
                    await UnlistenAsync(connection);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception error) when (PostgresErrors.IsOutage(error) || error is UnavailableException)
            {
                failed(error);
                try
                {
                    await Task.Delay(backoff.Next(), cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>The connection goes back to the pool without its LISTEN (the pool does not reset connections).</summary>
    private static async Task UnlistenAsync(NpgsqlConnection connection)
    {
        try
        {
            await using var unlisten = new NpgsqlCommand("UNLISTEN *", connection);
            await unlisten.ExecuteNonQueryAsync(CancellationToken.None);
        }
        catch (Exception error) when (PostgresErrors.IsOutage(error) || error is InvalidOperationException)
        {
            // A broken connection is discarded by the pool anyway.
        }
    }
}
