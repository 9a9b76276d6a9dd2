using System.Net;
using System.Text.Json;
using Npgsql;
using Presence.Grains.Abstractions;
using Presence.Testing;

namespace Presence.Gateway.Tests.Postgres;

/// <summary>What the outage tests do to PostgreSQL and check of the gateway.</summary>
internal static class Faults
{
    public static DeviceKey Key(string deviceId) => new(DeviceKey.DefaultTenant, deviceId);

    public static async Task<HttpStatusCode> ReadyAsync(this PresenceServer server)
    {
        using var response = await server.Http.GetAsync("/readyz");
        return response.StatusCode;
    }

    /// <summary>A 503 in the one error shape, with <c>Retry-After</c>.</summary>
    public static async Task AssertUnavailableAsync(HttpResponseMessage response)
    {
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync();
            var request = $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri?.PathAndQuery}";
            Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{request}: expected 503, got {(int)response.StatusCode} {body}");
            Assert.Equal("UNAVAILABLE", JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString());
            Assert.True(response.Headers.RetryAfter?.Delta > TimeSpan.Zero, $"{request}: 503 without a Retry-After");
        }
    }

    /// <summary>A test that stopped or crashed the shared server leaves it running, whatever happened.</summary>
    public static async Task EnsureRunningAsync(this PostgresServer server)
    {
        if (!server.IsRunning)
        {
            await server.StartAgainAsync();
        }
    }

    /// <summary>An unpooled connection (so nothing broken by an outage is reused).</summary>
    public static async Task<NpgsqlConnection> OpenAsync(string connectionString)
    {
        var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        return connection;
    }

    public static async Task<object?> ExecuteAsync(this NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }

    /// <summary>
    /// Fault injection into the test's own database: from now on a transaction that appends events waits, at COMMIT,
    /// for an advisory lock that <paramref name="connection"/> holds until it closes or the server stops.
    /// </summary>
    public static async Task HoldCommitsAsync(NpgsqlConnection connection)
    {
        await connection.ExecuteAsync(
            "CREATE FUNCTION presence_test_hold_commit() RETURNS trigger LANGUAGE plpgsql AS " +
            "$$ BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NULL; END $$");
        await connection.ExecuteAsync(
            "CREATE CONSTRAINT TRIGGER presence_test_hold_commit AFTER INSERT ON presence_events " +
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION presence_test_hold_commit()");
        await connection.ExecuteAsync("SELECT pg_advisory_lock(4242)");
    }

    /// <summary>Waits (bounded) until a session of the database waits at COMMIT for the lock of <see cref="HoldCommitsAsync"/>.</summary>
    public static Task WaitUntilACommitIsHeldAsync(NpgsqlConnection connection) =>
        Api.EventuallyAsync(
            async () => await connection.ExecuteAsync(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'commit%' " +
                "AND wait_event_type = 'Lock' AND wait_event = 'advisory'") is 1L,
            TimeSpan.FromSeconds(10),
            "a commit waits at COMMIT");

    /// <summary>Sets (or with null resets) the server's <c>wal_writer_delay</c>.</summary>
    public static async Task SetWalWriterDelayAsync(this PostgresServer server, string? delay)
    {
        await using var admin = await OpenAsync(server.ConnectionString);
        await admin.ExecuteAsync(delay is null ? "ALTER SYSTEM RESET wal_writer_delay" : $"ALTER SYSTEM SET wal_writer_delay = '{delay}'");
        await admin.ExecuteAsync("SELECT pg_reload_conf()");
    }
}
