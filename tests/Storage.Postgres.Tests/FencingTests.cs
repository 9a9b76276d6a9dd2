using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;
using Presence.Storage.Postgres.Tests.Support;
using Presence.Testing;

namespace Presence.Storage.Postgres.Tests;

/// <summary>Partition epochs: a take-over fences off every later write of the previous owner.</summary>
public sealed class FencingTests(PostgresFixture fixture, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    /// <summary>
    /// Npgsql's <c>Include Error Detail</c> off (the default, and what <c>AddPostgresStorage</c> builds) and on: the
    /// store learns which partitions are stale from the DETAIL of presence_fence's error.
    /// </summary>
    public static TheoryData<bool> ErrorDetail => new() { false, true };

    [Fact]
    public async Task Claiming_bumps_every_partition_epoch_and_records_the_owner()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var a = await TestStore.OwnAsync(database, output, name: "a");
        Assert.All(a.Epochs, e => Assert.Equal(1, e));

        await using var b = await TestStore.OwnAsync(database, output, name: "b");

        Assert.All(b.Epochs, e => Assert.Equal(2, e));
        Assert.Equal([$"{TestStore.DefaultPartitions}|b|2|2"], await Sql.RowsAsync(database, "SELECT count(*), max(owner), min(epoch), max(epoch) FROM presence_partitions"));
    }

    [Theory]
    [MemberData(nameof(ErrorDetail))]
    public async Task After_a_take_over_the_old_owner_persists_nothing_and_the_new_one_works(bool includeErrorDetail)
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var a = await TestStore.OwnAsync(database, output, name: "a", includeErrorDetail: includeErrorDetail);
        var device = Samples.Device("d", version: 1);
        await a.RegisterAsync(device, Samples.Registered(device.Key));

        await using var b = await TestStore.OwnAsync(database, output, name: "b", includeErrorDetail: includeErrorDetail);
        var head = await Sql.ScalarAsync<long>(database, "SELECT head FROM presence_log");

        // A's commit: refused as a whole.
        var stale = a.CommitFor(device.Key);
        stale.Upserts.Add(Samples.Device("d", version: 2));
        stale.Upserts.Add(Samples.Device("other"));
        stale.EndedSessions.Add((device.Key, Samples.Session(1, 0, 1)));
        stale.Events.Add(Samples.Status(device.Key, 2));
        var fenced = await Assert.ThrowsAsync<PartitionFencedException>(() => a.Store.CommitAsync(stale).Bound());
        Assert.Equal(stale.Partition, fenced.Partition);
        Assert.Equal(1, fenced.Epoch);

        var removal = a.CommitFor(device.Key);
        removal.Removals.Add(device.Key);
        await Assert.ThrowsAsync<PartitionFencedException>(() => a.Store.CommitAsync(removal).Bound());

        // A's write-behind: dropped.
        a.WriteBehind(Samples.Device("d", version: 3));
        await a.Store.FlushAsync().Bound();
        Assert.True(a.Log.Logged(3020));

        Same.Device(device, await b.Store.ReadDeviceAsync(device.Key));
        Assert.Null(await b.Store.ReadDeviceAsync(Samples.Key("other")));
        Assert.Empty(await b.Store.ReadEndedSessionsAsync(device.Key, 10));
        Assert.Equal(head, await Sql.ScalarAsync<long>(database, "SELECT head FROM presence_log"));
        Assert.Equal(head, await Sql.ScalarAsync<long>(database, "SELECT count(*) FROM presence_events"));
        Assert.Equal(0, stale.Events[0].Position);
        Assert.True(a.Store.IsAvailable); // fencing is no outage

        // B's writes go through.
        var status = Samples.Status(device.Key, 2);
        await b.RegisterAsync(Samples.Device("d", version: 4), status);
        Assert.Equal(head + 1, status.Position);
        b.WriteBehind(Samples.Device("d", version: 5));
        await b.Store.FlushAsync().Bound();
        Same.Device(Samples.Device("d", version: 5), await b.Store.ReadDeviceAsync(device.Key));
    }

    [Theory]
    [MemberData(nameof(ErrorDetail))]
    public async Task A_fenced_commit_does_not_take_other_partitions_commits_with_it(bool includeErrorDetail)
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var a = await TestStore.OwnAsync(database, output, name: "a", includeErrorDetail: includeErrorDetail);
        var (lost, kept) = TwoPartitions(a);
        await Sql.ExecuteAsync(database, $"UPDATE presence_partitions SET epoch = epoch + 1, owner = 'b' WHERE partition = {a.PartitionOf(lost)}");

        // Handed over together, so that they may share a transaction.
        var keptEvent = Samples.Registered(kept);
        var commits = new[] { (lost, Samples.Registered(lost)), (kept, keptEvent) }.Select(c =>
        {
            var commit = a.CommitFor(c.Item1);
            commit.Upserts.Add(Samples.Device(c.Item1.DeviceId));
            commit.Events.Add(c.Item2);
            return a.Store.CommitAsync(commit).Bound();
        }).ToList();

        await Assert.ThrowsAsync<PartitionFencedException>(() => commits[0]);
        await commits[1];

        Assert.Null(await a.Store.ReadDeviceAsync(lost));
        Same.Device(Samples.Device(kept.DeviceId), await a.Store.ReadDeviceAsync(kept));
        Assert.Equal(1, keptEvent.Position);
        Assert.Equal([kept.DeviceId], await Sql.RowsAsync(database, "SELECT device_id FROM presence_events"));
    }

    /// <summary>
    /// FlushAsync promises that everything handed to write-behind is written when it completes. When a batch holds
    /// devices of a partition taken over and of partitions still owned, only the former may be dropped.
    /// </summary>
    [Theory]
    [MemberData(nameof(ErrorDetail))]
    public async Task A_flush_writes_the_owned_partitions_devices_even_when_another_partition_was_taken_over(bool includeErrorDetail)
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var a = await TestStore.OwnAsync(database, output, name: "a", includeErrorDetail: includeErrorDetail);
        var (lost, kept) = TwoPartitions(a);
        await a.RegisterAsync(Samples.Device(lost.DeviceId, version: 1));
        await a.RegisterAsync(Samples.Device(kept.DeviceId, version: 1));
        await Sql.ExecuteAsync(database, $"UPDATE presence_partitions SET epoch = epoch + 1, owner = 'b' WHERE partition = {a.PartitionOf(lost)}");

        a.WriteBehind(Samples.Device(lost.DeviceId, version: 2), Samples.Device(kept.DeviceId, version: 2));
        await a.Store.FlushAsync().Bound();

        Same.Device(Samples.Device(lost.DeviceId, version: 1), await a.Store.ReadDeviceAsync(lost));
        Same.Device(Samples.Device(kept.DeviceId, version: 2), await a.Store.ReadDeviceAsync(kept));
    }

    /// <summary>
    /// A process that lost a partition and claimed it again holds buffered states of both epochs for it: the stale
    /// one must be dropped and the current one written, whatever their order in the buffer.
    /// </summary>
    [Theory]
    [MemberData(nameof(ErrorDetail))]
    public async Task Write_behind_of_a_stale_and_a_current_epoch_in_one_partition_writes_only_the_current(bool includeErrorDetail)
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var a = await TestStore.OwnAsync(database, output, name: "a", includeErrorDetail: includeErrorDetail);
        var (first, second) = OnePartition(a);
        await a.RegisterAsync(Samples.Device(first.DeviceId, version: 1));
        await a.RegisterAsync(Samples.Device(second.DeviceId, version: 1));
        var partition = a.PartitionOf(first);
        var old = a.Epochs[partition];

        a.Store.WriteBehind(partition, old, [Samples.Device(first.DeviceId, version: 2)]);
        await a.ClaimAsync();
        a.Store.WriteBehind(partition, a.Epochs[partition], [Samples.Device(second.DeviceId, version: 2)]);
        await a.Store.FlushAsync().Bound();

        Same.Device(Samples.Device(first.DeviceId, version: 1), await a.Store.ReadDeviceAsync(first));
        Same.Device(Samples.Device(second.DeviceId, version: 2), await a.Store.ReadDeviceAsync(second));
    }

    private static (DeviceKey, DeviceKey) TwoPartitions(TestStore store)
    {
        var keys = Enumerable.Range(0, 100).Select(i => Samples.Key("p-" + i)).ToList();
        var first = keys[0];
        return (first, keys.First(k => store.PartitionOf(k) != store.PartitionOf(first)));
    }

    private static (DeviceKey, DeviceKey) OnePartition(TestStore store)
    {
        var keys = Enumerable.Range(0, 100).Select(i => Samples.Key("p-" + i)).ToList();
        var first = keys[0];
        return (first, keys.Skip(1).First(k => store.PartitionOf(k) == store.PartitionOf(first)));
    }
}
