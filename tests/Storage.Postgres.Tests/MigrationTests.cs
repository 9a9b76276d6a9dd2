using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Presence.Storage.Postgres.Tests.Support;
using Presence.Testing;

namespace Presence.Storage.Postgres.Tests;

/// <summary>Schema migrations: applied once, recorded, safe to race, and the partition count fixed for good.</summary>
public sealed class MigrationTests(PostgresFixture fixture, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    private const string Tables =
        "SELECT table_name || '.' || column_name || ':' || data_type FROM information_schema.columns " +
        "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position";

    private const string Indexes = "SELECT indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname";

    private const string Functions = "SELECT proname || ' ' || md5(prosrc) FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY proname";

    private const string Recorded = "SELECT version || ' ' || name || ' ' || applied_at FROM presence_schema_migrations ORDER BY version";

    [Fact]
    public void The_assembly_embeds_the_migrations_in_version_order()
    {
        Assert.NotEmpty(Schema.Migrations);
        Assert.Equal(1, Schema.Migrations[0].Version);
        Assert.Equal("0001_initial", Schema.Migrations[0].Name);
        Assert.Equal(Enumerable.Range(1, Schema.Migrations.Count), Schema.Migrations.Select(m => m.Version));
    }

    [Fact]
    public async Task An_empty_database_gets_every_migration_applied_and_recorded()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var data = NpgsqlDataSource.Create(database);

        var applied = await Schema.MigrateAsync(data, 16, NullLogger.Instance, CancellationToken.None);

        Assert.Equal(Schema.Migrations.Count, applied);
        Assert.Equal(
            Schema.Migrations.Select(m => $"{m.Version} {m.Name}"),
            await Sql.RowsAsync(database, "SELECT version || ' ' || name FROM presence_schema_migrations ORDER BY version"));
        Assert.Equal(
            ["presence_api_keys", "presence_devices", "presence_events", "presence_log", "presence_meta", "presence_partitions", "presence_schema_migrations", "presence_sessions", "presence_silos"],
            await Sql.RowsAsync(database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"));
        Assert.Equal(["partitions|16"], await Sql.RowsAsync(database, "SELECT key, value FROM presence_meta"));
        Assert.Equal(["16|0|15|0"], await Sql.RowsAsync(database, "SELECT count(*), min(partition), max(partition), max(epoch) FROM presence_partitions"));
        Assert.Equal(["0|0"], await Sql.RowsAsync(database, "SELECT head, trimmed_to FROM presence_log"));
        Assert.True(await Sql.ScalarAsync<long>(database, "SELECT epoch FROM presence_log") > 0);
    }

    [Fact]
    public async Task A_migrated_database_is_left_as_it_is()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using (var first = await TestStore.StartAsync(database, output))
        {
            Assert.True(first.Log.Logged(3030)); // "Schema migration 1 (0001_initial) applied"
        }

        var before = await SchemaSnapshotAsync(database);
        var epoch = await Sql.ScalarAsync<long>(database, "SELECT epoch FROM presence_log");

        await using (var second = await TestStore.StartAsync(database, output))
        {
            Assert.False(second.Log.Logged(3030));
            Assert.Contains(second.Log.Entries, e => e.Id.Id == 3040 && e.Message.StartsWith("PostgreSQL storage ready: 0 migrations applied", StringComparison.Ordinal));
            Assert.Equal(epoch, second.Events.Epoch);
        }

        await using var data = NpgsqlDataSource.Create(database);
        Assert.Equal(0, await Schema.MigrateAsync(data, TestStore.DefaultPartitions, NullLogger.Instance, CancellationToken.None));
        Assert.Equal(before, await SchemaSnapshotAsync(database));
        Assert.Equal(epoch, await Sql.ScalarAsync<long>(database, "SELECT epoch FROM presence_log"));
    }

    [Fact]
    public async Task Stores_starting_together_on_an_empty_database_apply_each_migration_once()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        var stores = Enumerable.Range(0, 4).Select(i => TestStore.Create(database, output, name: "store" + i)).ToList();
        try
        {
            await Task.WhenAll(stores.Select(s => s.Store.StartAsync(CancellationToken.None)));

            Assert.Equal(Schema.Migrations.Count, stores.Sum(s => s.Log.Entries.Count(e => e.Id.Id == 3030)));
            Assert.Equal(
                Schema.Migrations.Select(m => $"{m.Version}|1"),
                await Sql.RowsAsync(database, "SELECT version, count(*) FROM presence_schema_migrations GROUP BY version ORDER BY version"));
            Assert.Single(stores.Select(s => s.Events.Epoch).Distinct());
            Assert.Equal(1L, await Sql.ScalarAsync<long>(database, "SELECT count(*) FROM presence_log"));
            Assert.Equal((long)TestStore.DefaultPartitions, await Sql.ScalarAsync<long>(database, "SELECT count(*) FROM presence_partitions"));
        }
        finally
        {
            foreach (var store in stores)
            {
                await store.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Concurrent_migrations_apply_each_script_exactly_once_in_total()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        var sources = Enumerable.Range(0, 4).Select(_ => NpgsqlDataSource.Create(database)).ToList();
        try
        {
            var applied = await Task.WhenAll(sources.Select(s => Schema.MigrateAsync(s, 32, NullLogger.Instance, CancellationToken.None)));

            Assert.Equal(Schema.Migrations.Count, applied.Sum());
            Assert.Equal(Schema.Migrations.Count, await Sql.ScalarAsync<long>(database, "SELECT count(*) FROM presence_schema_migrations"));
        }
        finally
        {
            foreach (var source in sources)
            {
                await source.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_database_of_1024_partitions_refuses_a_store_of_512()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using (await TestStore.StartAsync(database, output, partitions: 1024))
        {
        }

        var before = await PartitionStateAsync(database);
        var store = TestStore.Create(database, output, partitions: 512);
        await using (store)
        {
            var error = await Assert.ThrowsAsync<StorageConfigurationException>(() => store.Store.StartAsync(CancellationToken.None));

            Assert.Contains("Presence:Cluster:Partitions", error.Message, StringComparison.Ordinal);
            Assert.Contains("512", error.Message, StringComparison.Ordinal);
            Assert.Contains("1024", error.Message, StringComparison.Ordinal);
        }

        Assert.Equal(before, await PartitionStateAsync(database));

        // The configured count still works.
        await using var again = await TestStore.OwnAsync(database, output, partitions: 1024);
        Assert.Equal(1024, again.Epochs.Length);
        Assert.All(again.Epochs, epoch => Assert.Equal(1, epoch));
    }

    /// <summary>The refusal must not change the database: a misconfigured start leaves no partitions of its own.</summary>
    [Fact]
    public async Task A_database_of_512_partitions_refuses_a_store_of_1024_without_changing_anything()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using (await TestStore.StartAsync(database, output, partitions: 512))
        {
        }

        var before = await PartitionStateAsync(database);
        var store = TestStore.Create(database, output, partitions: 1024);
        await using (store)
        {
            var error = await Assert.ThrowsAsync<StorageConfigurationException>(() => store.Store.StartAsync(CancellationToken.None));
            Assert.Contains("Presence:Cluster:Partitions", error.Message, StringComparison.Ordinal);
        }

        Assert.Equal(before, await PartitionStateAsync(database));
    }

    private static async Task<List<string>> SchemaSnapshotAsync(string database) =>
    [
        .. await Sql.RowsAsync(database, Tables),
        .. await Sql.RowsAsync(database, Indexes),
        .. await Sql.RowsAsync(database, Functions),
        .. await Sql.RowsAsync(database, Recorded),
    ];

    private static async Task<List<string>> PartitionStateAsync(string database) =>
    [
        .. await Sql.RowsAsync(database, "SELECT key, value FROM presence_meta ORDER BY key"),
        .. await Sql.RowsAsync(database, "SELECT count(*), max(partition), sum(epoch) FROM presence_partitions"),
    ];
}
