using Npgsql;
using Presence.Testing;

namespace Presence.Runtime.Tests;

/// <summary>The throwaway PostgreSQL server the storage tests run against: databases, outages, crashes, clean-up.</summary>
public sealed class PostgresServerTests(PostgresFixture fixture) : IClassFixture<PostgresFixture>
{
    private PostgresServer Server => fixture.Server;

    [Fact]
    public async Task Serves_only_loopback_as_a_superuser()
    {
        Assert.True(Server.IsRunning);
        Assert.True(Directory.Exists(Server.DataDirectory));

        await using var connection = await OpenAsync(Server.ConnectionString);

        Assert.Equal("127.0.0.1", await ScalarAsync<string>(connection, "SHOW listen_addresses"));
        Assert.Equal(Server.Port.ToString(), await ScalarAsync<string>(connection, "SHOW port"));
        Assert.Equal("on", await ScalarAsync<string>(connection, "SHOW is_superuser"));
        Assert.Equal("postgres", await ScalarAsync<string>(connection, "SELECT current_database()"));
    }

    [Fact]
    public async Task Created_databases_are_distinct_empty_and_usable()
    {
        var first = await Server.CreateDatabaseAsync();
        var second = await Server.CreateDatabaseAsync();

        await using var one = await OpenAsync(first);
        await using var two = await OpenAsync(second);
        var names = (await ScalarAsync<string>(one, "SELECT current_database()"),
            await ScalarAsync<string>(two, "SELECT current_database()"));
        Assert.NotEqual(names.Item1, names.Item2);

        await ExecuteAsync(one, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)");
        await ExecuteAsync(one, "INSERT INTO items VALUES (1, 'one'), (2, 'two')");

        Assert.Equal("two", await ScalarAsync<string>(one, "SELECT name FROM items WHERE id = 2"));
        Assert.Equal(0L, await ScalarAsync<long>(two, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"));
    }

    [Fact]
    public async Task An_outage_breaks_connections_and_the_server_comes_back_on_its_port_with_its_data()
    {
        var database = await Server.CreateDatabaseAsync();
        var port = Server.Port;
        await using (var setup = await OpenAsync(database))
        {
            await ExecuteAsync(setup, "CREATE TABLE items (id int PRIMARY KEY)");
            await ExecuteAsync(setup, "INSERT INTO items VALUES (1)");
        }

        await using var open = await OpenAsync(database);
        await Server.StopAsync();

        Assert.False(Server.IsRunning);
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => ScalarAsync<int>(open, "SELECT 1"));
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => OpenAsync(Unpooled(database)));

        await Server.StartAgainAsync();

        Assert.True(Server.IsRunning);
        Assert.Equal(port, Server.Port);
        await using var again = await OpenAsync(Unpooled(database));
        Assert.Equal(1L, await ScalarAsync<long>(again, "SELECT count(*) FROM items"));
    }

    [Fact]
    public async Task Committed_data_survives_a_crash()
    {
        var database = await Server.CreateDatabaseAsync();
        await using (var connection = await OpenAsync(Unpooled(database)))
        {
            await ExecuteAsync(connection, "CREATE TABLE items (id int PRIMARY KEY)");
            await ExecuteAsync(connection, "INSERT INTO items SELECT generate_series(1, 1000)");
        }

        await Server.CrashAsync();

        Assert.False(Server.IsRunning);

        await Server.StartAgainAsync();

        await using var again = await OpenAsync(Unpooled(database));
        Assert.Equal(1000L, await ScalarAsync<long>(again, "SELECT count(*) FROM items"));
    }

    [Fact]
    public async Task Disposing_stops_the_server_and_deletes_its_directory()
    {
        var server = await PostgresServer.StartAsync();
        var connectionString = Unpooled(server.ConnectionString);
        await using (var connection = await OpenAsync(connectionString))
        {
            Assert.Equal(1, await ScalarAsync<int>(connection, "SELECT 1"));
        }

        await server.DisposeAsync();

        Assert.False(server.IsRunning);
        Assert.False(Directory.Exists(server.DataDirectory));
        Assert.False(Directory.Exists(Path.GetDirectoryName(server.DataDirectory)));
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => OpenAsync(connectionString));
    }

    /// <summary>Connections opened after an outage must not come from a pool that holds broken ones.</summary>
    private static string Unpooled(string connectionString) =>
        new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString;

    private static async Task<NpgsqlConnection> OpenAsync(string connectionString)
    {
        var connection = new NpgsqlConnection(connectionString);
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

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }
}
