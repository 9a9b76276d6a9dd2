using Npgsql;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;
using Presence.Storage.Postgres.Tests.Support;
using Presence.Testing;

namespace Presence.Storage.Postgres.Tests;

/// <summary>Durable commits: what goes in comes out, atomically, with events at dense positions in commit order.</summary>
public sealed class CommitTests(PostgresFixture fixture, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    [Fact]
    public async Task A_registration_round_trips_to_the_microsecond()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var device = Samples.Device("sensor-1");
        var events = new[] { Samples.Registered(device.Key), Samples.Status(device.Key, 2), Samples.CommandResult(device.Key, 3, "cmd-1") };

        await store.RegisterAsync(device, events);

        Same.Device(device, await store.Store.ReadDeviceAsync(device.Key));
        Assert.Null(await store.Store.ReadDeviceAsync(Samples.Key("sensor-2")));
        Assert.Null(await store.Store.ReadDeviceAsync(Samples.Key("sensor-1", "other-tenant")));

        // Positions 1..n in commit order, assigned to the committed events themselves.
        Assert.Equal([1L, 2, 3], events.Select(e => e.Position));
        var epoch = store.Events.Epoch;
        Assert.Equal(epoch, await Sql.ScalarAsync<long>(database, "SELECT epoch FROM presence_log"));
        await store.WaitForHeadAsync(3);
        Assert.Equal(new EventCursor(epoch, 3), store.Events.Head);

        var page = await store.Events.ReadAsync(Samples.Tenant, new EventCursor(epoch, 0), 100);
        Assert.Equal(CursorState.Valid, page.State);
        Same.Events(events, page.Events);
        Assert.Equal($"{epoch:x}-3", page.Next.ToString());
        Assert.True(EventCursor.TryParse(page.Next.ToString(), out var parsed));
        Assert.Equal(page.Next, parsed);

        // Another process reads the same events from the table (its in-memory tail starts at the head).
        await using var reader = await TestStore.StartAsync(database, output, name: "reader");
        var stored = await reader.Events.ReadAsync(Samples.Tenant, new EventCursor(epoch, 0), 100);
        Same.Events(events, stored.Events);
        Assert.Equal(page.Next, stored.Next);
        Same.Device(device, await reader.Store.ReadDeviceAsync(device.Key));
    }

    [Fact]
    public async Task Events_are_read_per_tenant_and_device_in_pages()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output, retention: 4);
        var a = Samples.Key("a");
        var b = Samples.Key("b");
        var other = Samples.Key("a", "globex");
        var all = new List<DeviceEvent>();
        for (var i = 1; i <= 5; i++)
        {
            var commit = new[] { Samples.Status(a, i), Samples.Status(b, i), Samples.Status(other, i) };
            all.AddRange(commit);
            await store.RegisterAsync(Samples.Device(a.DeviceId, version: i, sequence: i), commit[0]);
            await store.RegisterAsync(Samples.Device(b.DeviceId, version: i, sequence: i), commit[1]);
            await store.RegisterAsync(Samples.Device(other.DeviceId, version: i, sequence: i, tenantId: other.TenantId), commit[2]);
        }

        Assert.Equal(Enumerable.Range(1, 15).Select(i => (long)i), all.Select(e => e.Position));
        var start = new EventCursor(store.Events.Epoch, 0);
        await using var reader = await TestStore.StartAsync(database, output, retention: 4, name: "reader");
        foreach (var s in new[] { store, reader })
        {
            // Pages of 2 (the owner's tail holds only the last 4 events; older reads go to the table).
            var (acme, _) = await s.ReadAllAsync(Samples.Tenant, start, pageSize: 2);
            Same.Events(all.Where(e => e.TenantId == Samples.Tenant).ToList(), acme);
            var (globex, end) = await s.ReadAllAsync("globex", start, pageSize: 2);
            Same.Events(all.Where(e => e.TenantId == "globex").ToList(), globex);
            Assert.Equal(15, end.Position);

            var onlyB = await s.Events.ReadAsync(Samples.Tenant, start, 100, deviceId: "b");
            Same.Events(all.Where(e => e.Key == b).ToList(), onlyB.Events);
            Assert.Empty((await s.Events.ReadAsync("nobody", start, 100)).Events);
        }
    }

    [Fact]
    public async Task Ended_sessions_are_read_newest_first()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var device = Samples.Device("s-1");
        await store.RegisterAsync(device);
        var sessions = new[]
        {
            Samples.Session(1, 0, 100),
            Samples.Session(2, 200, 300, StatusReason.Disconnected),
            Samples.Session(3, 400, 450.000001),
        };

        var commit = store.CommitFor(device.Key);
        commit.EndedSessions.Add((device.Key, sessions[0]));
        commit.EndedSessions.Add((device.Key, sessions[2]));
        await store.Store.CommitAsync(commit).Bound();
        commit = store.CommitFor(device.Key);
        commit.EndedSessions.Add((device.Key, sessions[1]));
        commit.EndedSessions.Add((Samples.Key("s-2"), Samples.Session(9, 0, 999)));
        await store.Store.CommitAsync(commit).Bound();

        var read = await store.Store.ReadEndedSessionsAsync(device.Key, 10);
        Assert.Equal(sessions.Reverse(), read);
        Assert.All(read, s => Assert.Equal(DateTimeKind.Utc, s.StartedAt.Kind));
        Assert.Equal(sessions.Reverse().Take(2), await store.Store.ReadEndedSessionsAsync(device.Key, 2));
        Assert.Empty(await store.Store.ReadEndedSessionsAsync(Samples.Key("s-3"), 10));
    }

    [Fact]
    public async Task A_removal_deletes_the_device_and_its_sessions()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var device = Samples.Device("gone");
        var kept = Samples.Device("kept");
        await store.RegisterAsync(device, Samples.Registered(device.Key));
        await store.RegisterAsync(kept);
        var commit = store.CommitFor(device.Key);
        commit.EndedSessions.Add((device.Key, Samples.Session(1, 0, 10)));
        await store.Store.CommitAsync(commit).Bound();
        commit = store.CommitFor(kept.Key);
        commit.EndedSessions.Add((kept.Key, Samples.Session(1, 0, 10)));
        await store.Store.CommitAsync(commit).Bound();

        var removed = Samples.Removed(device.Key, 2);
        await store.RemoveAsync(device.Key, removed);

        Assert.Null(await store.Store.ReadDeviceAsync(device.Key));
        Assert.Empty(await store.Store.ReadEndedSessionsAsync(device.Key, 10));
        Assert.Equal(0L, await Sql.ScalarAsync<long>(database, "SELECT count(*) FROM presence_sessions WHERE device_id = 'gone'"));
        Same.Device(kept, await store.Store.ReadDeviceAsync(kept.Key));
        Assert.Single(await store.Store.ReadEndedSessionsAsync(kept.Key, 10));

        // The log keeps the device's history, removal included.
        var (events, _) = await store.ReadAllAsync(Samples.Tenant, new EventCursor(store.Events.Epoch, 0));
        Assert.Equal([DeviceEventType.Registered, DeviceEventType.Removed], events.Select(e => e.Type));
        Assert.Equal(2, removed.Position);
    }

    [Fact]
    public async Task A_removal_and_registration_in_one_commit_make_a_new_device()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var old = Samples.Device("again", version: 9, sequence: 9);
        await store.RegisterAsync(old);
        var commit = store.CommitFor(old.Key);
        commit.EndedSessions.Add((old.Key, Samples.Session(1, 0, 10)));
        await store.Store.CommitAsync(commit).Bound();

        var fresh = Samples.Device("again", version: 1, sequence: 1, firstSeenAt: Samples.At(1000));
        commit = store.CommitFor(old.Key);
        commit.Removals.Add(old.Key);
        commit.Upserts.Add(fresh);
        await store.Store.CommitAsync(commit).Bound();

        Same.Device(fresh, await store.Store.ReadDeviceAsync(old.Key));
        Assert.Empty(await store.Store.ReadEndedSessionsAsync(old.Key, 10));
    }

    [Fact]
    public async Task Of_several_upserts_of_a_device_in_one_commit_the_last_is_kept()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var key = Samples.Key("dup");

        var commit = store.CommitFor(key);
        commit.Upserts.AddRange([Samples.Device("dup", 1, 1), Samples.Device("dup", 2, 2), Samples.Device("dup", 3, 3)]);
        await store.Store.CommitAsync(commit).Bound();
        Same.Device(Samples.Device("dup", 3, 3), await store.Store.ReadDeviceAsync(key));

        commit = store.CommitFor(key);
        commit.Upserts.AddRange([Samples.Device("dup", 4, 4, status: DeviceStatus.Offline), Samples.Device("dup", 5, 6)]);
        await store.Store.CommitAsync(commit).Bound();
        Same.Device(Samples.Device("dup", 5, 6), await store.Store.ReadDeviceAsync(key));
    }

    [Fact]
    public async Task A_stale_upsert_never_overwrites_a_newer_row()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var newest = Samples.Device("v", version: 5, sequence: 7);
        await store.RegisterAsync(newest);

        await store.RegisterAsync(Samples.Device("v", version: 4, sequence: 9));
        await store.RegisterAsync(Samples.Device("v", version: 5, sequence: 6, status: DeviceStatus.Offline));
        await store.RegisterAsync(Samples.Device("v", version: 5, sequence: 7, status: DeviceStatus.Offline));
        Same.Device(newest, await store.Store.ReadDeviceAsync(newest.Key));

        // The same version with a later event is newer.
        var later = Samples.Device("v", version: 5, sequence: 8, status: DeviceStatus.Offline);
        await store.RegisterAsync(later);
        Same.Device(later, await store.Store.ReadDeviceAsync(newest.Key));
    }

    [Fact]
    public async Task Commits_of_many_partitions_at_once_are_all_written_with_dense_positions()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var devices = Enumerable.Range(0, 200).Select(i => Samples.Device($"bulk-{i:D3}")).ToList();
        var events = devices.Select(d => Samples.Registered(d.Key)).ToList();

        await Task.WhenAll(devices.Select((d, i) => store.RegisterAsync(d, events[i])));

        Assert.Equal(Enumerable.Range(1, 200).Select(i => (long)i), events.Select(e => e.Position).Order());
        Assert.Equal(200L, await Sql.ScalarAsync<long>(database, "SELECT count(*) FROM presence_devices"));
        Assert.Equal(["200|1|200|200"], await Sql.RowsAsync(database, "SELECT count(*), min(position), max(position), (SELECT head FROM presence_log) FROM presence_events"));
        var (read, _) = await store.ReadAllAsync(Samples.Tenant, new EventCursor(store.Events.Epoch, 0), pageSize: 33);
        Same.Events(events.OrderBy(e => e.Position).ToList(), read);

        // Group commit: fewer transactions than commits (they queued while one was written).
        var stats = store.Store.Stats;
        Assert.Equal(200, stats.Commits);
        Assert.True(stats.Transactions < 200, $"{stats.Transactions} transactions");
        output.WriteLine($"{stats}");
    }

    /// <summary>
    /// FlushAsync (and so StopAsync, which cancels the writer right after it) must not complete while a commit is
    /// being written: the commit is then neither in the queue nor done.
    /// </summary>
    [Fact]
    public async Task A_flush_waits_for_a_commit_being_written()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output, name: "flush");
        var key = Samples.Key("f");
        await using var blocker = await Sql.OpenAsync(database);
        await using var hold = await blocker.BeginTransactionAsync();
        await Sql.ScalarAsync<int>(blocker, $"SELECT partition FROM presence_partitions WHERE partition = {store.PartitionOf(key)} FOR UPDATE", hold);
        var commit = store.CommitFor(key);
        commit.Upserts.Add(Samples.Device("f"));
        commit.Events.Add(Samples.Registered(key));
        var written = store.Store.CommitAsync(commit).Bound();
        await Sql.UntilAsync(
            async () => await Sql.ScalarAsync<long>(database, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'presence-flush' AND wait_event_type = 'Lock'") == 1,
            "the commit waits for its partition's row");

        var flushing = store.Store.FlushAsync();
        var flushedEarly = flushing.IsCompleted;
        await hold.RollbackAsync();
        await written;
        await flushing.Bound();

        Assert.False(flushedEarly, "FlushAsync completed while a commit was still being written");
        Same.Device(Samples.Device("f"), await store.Store.ReadDeviceAsync(key));
    }

    /// <summary>
    /// A commit PostgreSQL rejects (here a command result whose output holds U+0000: the device channel accepts any
    /// output up to its length limit, but PostgreSQL text cannot hold NUL) must fail alone. Group commit puts other
    /// partitions' commits into the same transaction; they must not fail, and be lost, with it.
    /// </summary>
    [Fact]
    public async Task A_commit_PostgreSQL_rejects_does_not_fail_other_partitions_commits_of_its_transaction()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output, name: "poison");
        var keys = Enumerable.Range(0, 100).Select(i => Samples.Key("k-" + i)).ToList();
        var first = keys[0];
        var bad = keys.First(k => store.PartitionOf(k) != store.PartitionOf(first));
        var good = keys.First(k => store.PartitionOf(k) != store.PartitionOf(first) && store.PartitionOf(k) != store.PartitionOf(bad));

        // The first commit waits for a row lock, so the next two queue up and go into one transaction.
        await using var blocker = await Sql.OpenAsync(database);
        var hold = await blocker.BeginTransactionAsync();
        await Sql.ScalarAsync<int>(blocker, $"SELECT partition FROM presence_partitions WHERE partition = {store.PartitionOf(first)} FOR UPDATE", hold);
        var written = store.RegisterAsync(Samples.Device(first.DeviceId));
        await Sql.UntilAsync(
            async () => await Sql.ScalarAsync<long>(database, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'presence-poison' AND wait_event_type = 'Lock'") == 1,
            "the first commit waits for its partition's row");
        var poisoned = store.RegisterAsync(Samples.Device(bad.DeviceId), Nul(bad));
        var innocent = store.RegisterAsync(Samples.Device(good.DeviceId), Samples.Registered(good));
        await hold.RollbackAsync();
        await written;

        var poisonError = await Record.ExceptionAsync(() => poisoned);
        var innocentError = await Record.ExceptionAsync(() => innocent);

        output.WriteLine($"poisoned commit: {poisonError?.GetType().Name}: {poisonError?.Message}");
        Assert.Null(innocentError);
        Same.Device(Samples.Device(good.DeviceId), await store.Store.ReadDeviceAsync(good));
    }

    /// <summary>A command result whose output holds U+0000, which PostgreSQL text cannot hold.</summary>
    private static DeviceEvent Nul(DeviceKey key) => new()
    {
        TenantId = key.TenantId,
        DeviceId = key.DeviceId,
        Type = DeviceEventType.CommandResult,
        Sequence = 2,
        Time = Samples.T0,
        CommandId = "cmd-1",
        Ok = true,
        Output = "before\0after",
    };

    [Fact]
    public async Task Devices_are_listed_by_id_counted_and_recovered_by_partition()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var ids = new[] { "a-1", "a-2", "a-3", "b-1", "b-2", "c" };
        foreach (var (id, i) in ids.Select((id, i) => (id, i)))
        {
            await store.RegisterAsync(Samples.Device(id, firstSeenAt: Samples.At(i * 10), status: i % 2 == 0 ? DeviceStatus.Online : DeviceStatus.Offline));
        }

        await store.RegisterAsync(Samples.Device("a-1", tenantId: "globex"));

        var page = await store.Store.ListDevicesAsync(Samples.Tenant, new DeviceQuery(StatusFilter.Any, null, null, 4));
        Assert.Equal(["a-1", "a-2", "a-3", "b-1"], page.Devices.Select(d => d.DeviceId));
        Assert.Equal("b-1", page.Next);
        page = await store.Store.ListDevicesAsync(Samples.Tenant, new DeviceQuery(StatusFilter.Any, null, page.Next, 4));
        Assert.Equal(["b-2", "c"], page.Devices.Select(d => d.DeviceId));
        Assert.Null(page.Next);

        page = await store.Store.ListDevicesAsync(Samples.Tenant, new DeviceQuery(StatusFilter.Any, "a-", "a-1", 10));
        Assert.Equal(["a-2", "a-3"], page.Devices.Select(d => d.DeviceId));
        page = await store.Store.ListDevicesAsync(Samples.Tenant, new DeviceQuery(StatusFilter.Online, null, null, 10));
        Assert.Equal(["a-1", "a-3", "b-2"], page.Devices.Select(d => d.DeviceId));
        page = await store.Store.ListDevicesAsync(Samples.Tenant, new DeviceQuery(StatusFilter.Offline, "b", null, 10));
        Assert.Equal(["b-1"], page.Devices.Select(d => d.DeviceId));
        var listed = await store.Store.ListDevicesAsync(Samples.Tenant, new DeviceQuery(StatusFilter.Any, "a-2", null, 1));
        Same.Device(Samples.Device("a-2", firstSeenAt: Samples.At(10), status: DeviceStatus.Offline), Assert.Single(listed.Devices));

        Assert.Equal(new DeviceCounts(6, 3, 3), await store.Store.CountDevicesAsync(Samples.Tenant, Samples.At(30)));
        Assert.Equal(new DeviceCounts(0, 0, 0), await store.Store.CountDevicesAsync("nobody", Samples.At(0)));

        // Online devices of some partitions: what a new owner of those partitions must watch.
        var online = new[] { "a-1", "a-3", "b-2" }.Select(id => Samples.Key(id)).Append(Samples.Key("a-1", "globex")).ToList();
        var some = online.Take(2).Select(store.PartitionOf).ToHashSet();
        var recovered = new List<DeviceRecord>();
        await foreach (var device in store.Store.ReadOnlineDevicesAsync(store.Partitions, some))
        {
            recovered.Add(device);
        }

        Assert.Equal(
            online.Where(k => some.Contains(store.PartitionOf(k))).OrderBy(k => k.ToString(), StringComparer.Ordinal),
            recovered.Select(d => d.Key).OrderBy(k => k.ToString(), StringComparer.Ordinal));
    }
}
