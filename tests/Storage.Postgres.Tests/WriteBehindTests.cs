using Presence.Grains.Abstractions;
using Presence.Storage.Postgres.Tests.Support;
using Presence.Testing;

namespace Presence.Storage.Postgres.Tests;

/// <summary>Write-behind: updates only, never older state, never a removed device, never another incarnation.</summary>
public sealed class WriteBehindTests(PostgresFixture fixture, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    [Fact]
    public async Task A_newer_state_is_written_on_flush()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        await store.RegisterAsync(Samples.Device("wb", version: 1));

        var newer = Samples.Device("wb", version: 2) with
        {
            Metrics = new MetricSet(["cpu_pct"], [99.5]),
            Containers = [],
            Labels = DeviceRecord.NoLabels,
            SessionHeartbeats = 1234,
        };
        store.WriteBehind(Samples.Device("wb", version: 3, sequence: 0) with { Metrics = new MetricSet(["x"], [1]) });
        store.WriteBehind(newer with { Version = 4 });

        Same.Device(Samples.Device("wb", version: 1), await store.Store.ReadDeviceAsync(newer.Key)); // not before the flush
        await store.Store.FlushAsync().Bound();

        Same.Device(newer with { Version = 4 }, await store.Store.ReadDeviceAsync(newer.Key));
        Assert.Equal(1, store.Store.Stats.WriteBehindRows);
    }

    [Fact]
    public async Task An_older_version_does_not_overwrite()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var current = Samples.Device("wb", version: 5, sequence: 5);
        await store.RegisterAsync(current);

        store.WriteBehind(Samples.Device("wb", version: 4, sequence: 9));
        await store.Store.FlushAsync().Bound();
        store.WriteBehind(Samples.Device("wb", version: 5, sequence: 5) with { SessionHeartbeats = 777 });
        await store.Store.FlushAsync().Bound();

        Same.Device(current, await store.Store.ReadDeviceAsync(current.Key));
    }

    [Fact]
    public async Task A_removed_device_is_not_resurrected()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var key = Samples.Key("wb");
        await store.RegisterAsync(Samples.Device("wb", version: 1));

        // Buffered before the removal: the removal drops it.
        store.WriteBehind(Samples.Device("wb", version: 2));
        await store.RemoveAsync(key, Samples.Removed(key, 2));
        await store.Store.FlushAsync().Bound();
        Assert.Null(await store.Store.ReadDeviceAsync(key));

        // Handed over after the removal (late): an update finds no row and inserts none.
        store.WriteBehind(Samples.Device("wb", version: 3));
        await store.Store.FlushAsync().Bound();
        Assert.Null(await store.Store.ReadDeviceAsync(key));
        Assert.Equal(0L, await Sql.ScalarAsync<long>(database, "SELECT count(*) FROM presence_devices"));
    }

    [Fact]
    public async Task A_previous_incarnation_does_not_overwrite_the_new_one()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var key = Samples.Key("wb");
        await store.RegisterAsync(Samples.Device("wb", version: 10, sequence: 10, firstSeenAt: Samples.At(0)));
        await store.RemoveAsync(key);
        var reborn = Samples.Device("wb", version: 1, sequence: 1, firstSeenAt: Samples.At(500));
        await store.RegisterAsync(reborn);

        store.WriteBehind(Samples.Device("wb", version: 11, sequence: 11, firstSeenAt: Samples.At(0)));
        await store.Store.FlushAsync().Bound();
        Same.Device(reborn, await store.Store.ReadDeviceAsync(key));

        var next = Samples.Device("wb", version: 2, sequence: 1, firstSeenAt: Samples.At(500));
        store.WriteBehind(next);
        await store.Store.FlushAsync().Bound();
        Same.Device(next, await store.Store.ReadDeviceAsync(key));
    }

    [Fact]
    public async Task Many_devices_are_written_in_batches()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var devices = Enumerable.Range(0, 6_000).Select(i => Samples.Device($"many-{i:D4}")).ToList();
        foreach (var partition in devices.GroupBy(d => store.PartitionOf(d.Key)))
        {
            var commit = store.CommitFor(partition.First().Key);
            commit.Upserts.AddRange(partition);
            await store.Store.CommitAsync(commit).Bound();
        }

        store.WriteBehind([.. devices.Select(d => d with { Version = 2, SessionHeartbeats = 42 })]);
        await store.Store.FlushAsync().Bound();

        Assert.Equal(["6000|2|2|42"], await Sql.RowsAsync(database, "SELECT count(*), min(version), max(version), min(session_heartbeats) FROM presence_devices"));
        Assert.Equal(2, store.Store.Stats.WriteBehindBatches);
    }
}
