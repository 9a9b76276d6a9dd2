using System.Runtime.ExceptionServices;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;
using Presence.Storage.Postgres.Tests.Support;
using Presence.Testing;

namespace Presence.Storage.Postgres.Tests;

/// <summary>
/// Outages: the server stops under a running store. Durable changes and reads fail as unavailable, the store notices
/// when the server is back, and what it kept is written exactly once. Every test starts the server again before it
/// ends (the class shares one).
/// </summary>
public sealed class OutageTests(PostgresFixture fixture, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private PostgresServer Server => fixture.Server;

    [Fact]
    public async Task Write_behind_buffered_in_an_outage_is_written_after_it()
    {
        var database = await Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var devices = Enumerable.Range(0, 3).Select(i => Samples.Device("wb-" + i)).ToList();
        foreach (var device in devices)
        {
            await store.RegisterAsync(device);
        }

        Task flushing;
        await Server.StopAsync();
        try
        {
            store.WriteBehind([.. devices.Select(d => d with { Version = 2, SessionHeartbeats = 5 })]);
            flushing = store.Store.FlushAsync().Bound();
            store.WriteBehind(devices[0] with { Version = 3, SessionHeartbeats = 9 });
            Assert.False(flushing.IsCompleted);
        }
        finally
        {
            await Server.StartAgainAsync();
        }

        await flushing.WaitAsync(Timeout);
        await store.Store.FlushAsync().WaitAsync(Timeout);

        Same.Device(devices[0] with { Version = 3, SessionHeartbeats = 9 }, await store.Store.ReadDeviceAsync(devices[0].Key));
        Same.Device(devices[1] with { Version = 2, SessionHeartbeats = 5 }, await store.Store.ReadDeviceAsync(devices[1].Key));
        Same.Device(devices[2] with { Version = 2, SessionHeartbeats = 5 }, await store.Store.ReadDeviceAsync(devices[2].Key));
        await Sql.UntilAsync(() => Task.FromResult(store.Store.IsAvailable), "the store sees the server again", Timeout);
    }

    /// <summary>
    /// A COMMIT the server made durable but never answered (it stopped while the COMMIT waited for a synchronous
    /// standby that does not exist): the store finds out with pg_xact_status and neither loses nor repeats it.
    /// </summary>
    [Fact]
    public async Task A_commit_whose_answer_was_lost_is_resolved_as_committed_and_not_written_again()
    {
        var database = await Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output, name: "unanswered");
        var key = Samples.Key("u");
        await store.RegisterAsync(Samples.Device("u", 1), Samples.Registered(key));
        var commit = store.CommitFor(key);
        commit.Upserts.Add(Samples.Device("u", 2, 2));
        commit.Events.Add(Samples.Status(key, 2));

        try
        {
            // From now on every COMMIT waits for a standby that never comes; connections opened now know it.
            await Sql.ExecuteAsync(Server.ConnectionString, "ALTER SYSTEM SET synchronous_standby_names = 'nobody'");
            await Sql.ExecuteAsync(Server.ConnectionString, "SELECT pg_reload_conf()");
            await Sql.UntilAsync(
                async () => await Sql.ScalarAsync<string>(database, "SHOW synchronous_standby_names") == "nobody",
                "the server has reloaded its configuration");
            store.Data.Clear();

            var committing = store.Store.CommitAsync(commit).Bound();
            await Sql.UntilAsync(
                async () => await Sql.ScalarAsync<long>(database,
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND application_name = 'presence-unanswered'") == 1,
                "the store's COMMIT waits for the standby");
            Assert.False(committing.IsCompleted);

            // Committed locally; the answer is lost with the server. The next start runs without the standby.
            await Sql.ExecuteAsync(Server.ConnectionString, "ALTER SYSTEM RESET synchronous_standby_names");
            await Server.StopAsync();
            await Assert.ThrowsAsync<StorageUnavailableException>(() => committing);
        }
        finally
        {
            if (!Server.IsRunning)
            {
                await Server.StartAgainAsync();
            }

            await Sql.ExecuteAsync(Server.ConnectionString, "ALTER SYSTEM RESET synchronous_standby_names");
            await Sql.ExecuteAsync(Server.ConnectionString, "SELECT pg_reload_conf()");
        }

        // The writer resolves the unanswered COMMIT before it writes anything else: once a later commit of the
        // device is done, so is the resolution.
        await Sql.UntilAsync(() => Task.FromResult(store.Store.IsAvailable), "the store sees the server again", Timeout);
        var later = store.CommitFor(key);
        later.Upserts.Add(Samples.Device("u", 3, 3));
        later.Events.Add(Samples.Status(key, 3));
        await store.Store.CommitAsync(later).Bound();

        Assert.Contains(store.Log.Entries, e => e.Id.Id == 3001 && e.Message.EndsWith("turned out committed", StringComparison.Ordinal));
        Assert.Equal(["1|0|1", "2|1|2", "3|1|3"], await Sql.RowsAsync(database, "SELECT position, type, sequence FROM presence_events ORDER BY position"));
        Same.Device(Samples.Device("u", 3, 3), await store.Store.ReadDeviceAsync(key));
        Assert.Equal(2, commit.Events[0].Position);
        Assert.Equal(3, later.Events[0].Position);
        var (events, _) = await store.ReadAllAsync(Samples.Tenant, new EventCursor(store.Events.Epoch, 0));
        Assert.Equal([1L, 2, 3], events.Select(e => e.Position));
    }

    /// <summary>
    /// A partition that got <see cref="StorageUnavailableException"/> from a commit refuses its next durable change up
    /// front only if <see cref="IPresenceStore.IsAvailable"/> is already false then: the store must mark itself down
    /// before it fails the commit's waiters, not after. The waiter's continuation runs on the thread pool and races
    /// the writer; to make the race deterministic, any exception thrown after the waiter has failed (the writer's
    /// rethrow on its way to marking the store down) holds its thread until the waiter has looked.
    /// </summary>
    [Fact]
    public async Task A_commit_failed_by_an_outage_finds_the_store_unavailable_when_it_throws()
    {
        var database = await Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output, name: "race");
        var key = Samples.Key("r");
        await using var blocker = await Sql.OpenAsync(database);
        var hold = await blocker.BeginTransactionAsync();
        await Sql.ScalarAsync<int>(blocker, $"SELECT partition FROM presence_partitions WHERE partition = {store.PartitionOf(key)} FOR UPDATE", hold);
        var commit = store.CommitFor(key);
        commit.Upserts.Add(Samples.Device("r"));
        using var looked = new ManualResetEventSlim();
        var committing = store.Store.CommitAsync(commit).AsTask();
        var outcome = committing.ContinueWith(
            t =>
            {
                var seen = (t.Exception?.InnerException, store.Store.IsAvailable);
                looked.Set();
                return seen;
            },
            TaskScheduler.Default);
        await Sql.UntilAsync(
            async () => await Sql.ScalarAsync<long>(database, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'presence-race' AND wait_event_type = 'Lock'") == 1,
            "the commit waits for its partition's row");

        void HoldThrower(object? sender, FirstChanceExceptionEventArgs e)
        {
            if (committing.IsFaulted && !looked.IsSet)
            {
                looked.Wait(TimeSpan.FromSeconds(2));
            }
        }

        (Exception? Error, bool Available) failed;
        AppDomain.CurrentDomain.FirstChanceException += HoldThrower;
        try
        {
            await Server.StopAsync();
            failed = await outcome.WaitAsync(Timeout);
        }
        finally
        {
            AppDomain.CurrentDomain.FirstChanceException -= HoldThrower;
            await Server.StartAgainAsync();
        }

        Assert.IsType<StorageUnavailableException>(failed.Error);
        Assert.False(failed.Available, "IsAvailable was still true when CommitAsync threw StorageUnavailableException");
    }

    /// <summary>
    /// A new owner reads the online devices it must watch; in an outage that read must fail as unavailable (as every
    /// other read does), not with the driver's exception.
    /// </summary>
    [Fact]
    public async Task Reading_online_devices_in_an_outage_reports_storage_unavailable()
    {
        var database = await Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        await store.RegisterAsync(Samples.Device("on"));

        await Server.StopAsync();
        try
        {
            var error = await Record.ExceptionAsync(async () =>
            {
                await foreach (var device in store.Store.ReadOnlineDevicesAsync(store.Partitions, Enumerable.Range(0, store.Partitions).ToHashSet()))
                {
                    Assert.Fail($"read {device.DeviceId} from a stopped server");
                }
            });

            Assert.IsType<StorageUnavailableException>(error);
        }
        finally
        {
            await Server.StartAgainAsync();
        }
    }

    /// <summary>Ids of <paramref name="count"/> devices of one partition.</summary>
    private static string[] OnePartition(TestStore store, int count)
    {
        var ids = Enumerable.Range(0, 1000).Select(i => "o-" + i).ToList();
        var partition = store.PartitionOf(Samples.Key(ids[0]));
        return [.. ids.Where(id => store.PartitionOf(Samples.Key(id)) == partition).Take(count)];
    }

    private static PartitionCommit Registration(string deviceId)
    {
        var key = Samples.Key(deviceId);
        var commit = new PartitionCommit { Partition = DeviceRows.PartitionOf(key, TestStore.DefaultPartitions), Epoch = 1 };
        commit.Upserts.Add(Samples.Device(deviceId));
        commit.Events.Add(Samples.Registered(key));
        commit.Events.Add(Samples.Status(key, 2));
        return commit;
    }
}
