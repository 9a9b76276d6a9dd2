using Presence.Runtime.Cluster;
using Presence.Storage.Postgres.Tests.Support;
using Presence.Testing;

namespace Presence.Storage.Postgres.Tests;

/// <summary>Membership rows and partition leases: each operation is one statement, and none waits for a writer's fence.</summary>
public sealed class MembershipTests(PostgresFixture fixture, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    private static readonly DateTime Now = new(2026, 11, 22, 12, 0, 0, DateTimeKind.Utc);

    [Fact]
    public async Task A_silo_acquires_free_partitions_at_a_new_epoch_renews_them_and_another_takes_them_only_once_expired()
    {
        await using var store = await TestStore.StartAsync(await fixture.Server.CreateDatabaseAsync(), output);
        var membership = new PostgresMembership(store.Data, store.Store);
        await JoinAsync(membership, "silo-a");
        await JoinAsync(membership, "silo-b");

        var acquired = await membership.AcquireAsync("silo-a", [0, 1, 2], Now, Now.AddSeconds(5), CancellationToken.None);
        Assert.Equal([new(0, 1), new(1, 1), new(2, 1)], acquired);
        Assert.Empty(await membership.AcquireAsync("silo-b", [0, 1], Now.AddSeconds(1), Now.AddSeconds(6), CancellationToken.None));

        var renewed = await membership.RenewAsync("silo-a", Now.AddSeconds(8), CancellationToken.None);
        Assert.Equal(new Dictionary<int, long> { [0] = 1, [1] = 1, [2] = 1 }, renewed);
        Assert.Empty(await membership.AcquireAsync("silo-b", [0], Now.AddSeconds(7), Now.AddSeconds(12), CancellationToken.None));

        var takenOver = await membership.AcquireAsync("silo-b", [0], Now.AddSeconds(9), Now.AddSeconds(14), CancellationToken.None);
        Assert.Equal([new AcquiredPartition(0, 2)], takenOver);
        Assert.Equal(new Dictionary<int, long> { [1] = 1, [2] = 1 }, await membership.RenewAsync("silo-a", Now.AddSeconds(15), CancellationToken.None));

        await membership.ReleaseAsync("silo-a", [new(1, 1), new(2, 99)], CancellationToken.None); // 2: not at that epoch
        var view = await membership.ReadAsync(CancellationToken.None);
        Assert.Null(view.Partitions[1].Owner);
        Assert.Equal("silo-a", view.Partitions[2].Owner);
        Assert.Equal("silo-b", view.Partitions[0].Owner);
    }

    [Fact]
    public async Task Stale_silos_are_declared_dead_once_and_a_heartbeat_reports_it()
    {
        await using var store = await TestStore.StartAsync(await fixture.Server.CreateDatabaseAsync(), output);
        var membership = new PostgresMembership(store.Data, store.Store);
        await JoinAsync(membership, "silo-a");
        await JoinAsync(membership, "silo-b");
        Assert.Equal(SiloStatus.Joining, await membership.HeartbeatAsync("silo-a", SiloStatus.Active, 7, Now.AddSeconds(6), CancellationToken.None));

        Assert.Equal(["silo-b"], await membership.DeclareDeadAsync(Now.AddSeconds(1), CancellationToken.None));
        Assert.Empty(await membership.DeclareDeadAsync(Now.AddSeconds(1), CancellationToken.None));

        Assert.Equal(SiloStatus.Dead, await membership.HeartbeatAsync("silo-b", SiloStatus.Active, 0, Now.AddSeconds(7), CancellationToken.None));
        Assert.Null(await membership.HeartbeatAsync("silo-unknown", SiloStatus.Active, 0, Now, CancellationToken.None));
        var a = (await membership.ReadAsync(CancellationToken.None)).Silos.Single(s => s.SiloId == "silo-a");
        Assert.Equal((SiloStatus.Active, 7L), (a.Status, a.Devices));
    }

    [Fact]
    public async Task Renewing_never_waits_for_a_writer_holding_the_fence_and_a_take_over_skips_its_partition()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.StartAsync(database, output);
        var membership = new PostgresMembership(store.Data, store.Store);
        await JoinAsync(membership, "silo-a");
        await membership.AcquireAsync("silo-a", [0, 1, 2, 3], Now, Now.AddSeconds(5), CancellationToken.None);

        // A durable write of silo-a in flight: its transaction holds the fence on partitions 3 and 1.
        await using var writer = await Sql.OpenAsync(database);
        await using var transaction = await writer.BeginTransactionAsync();
        await Sql.ScalarAsync<object>(writer, "SELECT presence_fence(ARRAY[3, 1], ARRAY[1, 1]::bigint[])", transaction);

        var renewed = await membership.RenewAsync("silo-a", Now.AddSeconds(20), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(4, renewed.Count);

        // Expired for silo-b: partitions 1 and 3 are locked by the writer, so they are left for a later round.
        var taken = await membership.AcquireAsync("silo-b", [0, 1, 2, 3], Now.AddSeconds(30), Now.AddSeconds(35), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal([0, 2], taken.Select(p => p.Partition));
        await transaction.CommitAsync();
    }

    private static Task JoinAsync(PostgresMembership membership, string siloId) =>
        membership.JoinAsync(new SiloEntry(siloId, "127.0.0.1:1", 1, SiloStatus.Joining, Now, Now, 0), CancellationToken.None);
}
