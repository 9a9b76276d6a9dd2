using System.Diagnostics;
using Npgsql;

namespace Presence.Storage.Postgres.Tests.Support;

/// <summary>Direct SQL for arranging and checking, on unpooled connections (none survives an outage broken).</summary>
internal static class Sql
{
    public static string Unpooled(string connectionString) =>
        new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, ApplicationName = "presence-test-sql" }.ConnectionString;

    public static async Task<NpgsqlConnection> OpenAsync(string connectionString)
    {
        var connection = new NpgsqlConnection(Unpooled(connectionString));
        try
        {
            await connection.OpenAsync();
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    public static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = await OpenAsync(connectionString);
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    public static async Task<T> ScalarAsync<T>(string connectionString, string sql)
    {
        await using var connection = await OpenAsync(connectionString);
        return await ScalarAsync<T>(connection, sql);
    }

    public static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql, NpgsqlTransaction? transaction = null)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>Every row of a query, each rendered as one string (columns joined with '|').</summary>
    public static async Task<List<string>> RowsAsync(string connectionString, string sql)
    {
        await using var connection = await OpenAsync(connectionString);
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync())
        {
            var values = new object[reader.FieldCount];
            reader.GetValues(values);
            rows.Add(string.Join('|', values.Select(v => v is DBNull ? "NULL" : Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture))));
        }

        return rows;
    }

    /// <summary>
    /// Polls <paramref name="condition"/> until it holds, failing after <paramref name="timeout"/>. Only for what
    /// another process decides (PostgreSQL's lock waits, its coming back after an outage): nothing to await there.
    /// </summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(20);
        var started = Stopwatch.GetTimestamp();
        while (!await condition())
        {
            if (Stopwatch.GetElapsedTime(started) > limit)
            {
                Assert.Fail($"Timed out after {limit.TotalSeconds} s waiting until {what}");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>Whether the backend <paramref name="pid"/> waits for a lock (a row lock shows as a transactionid wait).</summary>
    public static async Task<bool> WaitsForLockAsync(string connectionString, int pid)
    {
        await using var connection = await OpenAsync(connectionString);
        await using var command = new NpgsqlCommand(
            "SELECT wait_event_type = 'Lock' AND EXISTS (SELECT 1 FROM pg_locks WHERE pid = @pid AND NOT granted) " +
            "FROM pg_stat_activity WHERE pid = @pid", connection);
        command.Parameters.AddWithValue("pid", pid);
        return await command.ExecuteScalarAsync() is true;
    }
}
