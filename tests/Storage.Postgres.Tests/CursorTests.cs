using Npgsql;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;
using Presence.Storage.Postgres.Tests.Support;
using Presence.Testing;

namespace Presence.Storage.Postgres.Tests;

/// <summary>Cursors outlive the process (the epoch lives in the database), and other processes' appends ring the doorbell.</summary>
public sealed class CursorTests(PostgresFixture fixture, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Cursors_stay_valid_across_a_restart_and_continue_exactly_after_their_position()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        var key = Samples.Key("c");
        var early = new[] { Samples.Registered(key), Samples.Status(key, 2) };
        var late = new[] { Samples.Status(key, 3), Samples.CommandResult(key, 4, "x"), Samples.Status(key, 5, DeviceStatus.Offline) };
        long epoch;
        EventCursor middle, head;
        await using (var a = await TestStore.OwnAsync(database, output, name: "a"))
        {
            await a.RegisterAsync(Samples.Device("c", 2, 2), early);
            middle = new EventCursor(a.Events.Epoch, early[^1].Position);
            await a.RegisterAsync(Samples.Device("c", 3, 3), late[0]);
            await a.RegisterAsync(Samples.Device("c", 5, 5), late[1..]);
            epoch = a.Events.Epoch;
            head = new EventCursor(epoch, late[^1].Position);
            await a.WaitForHeadAsync(head.Position);
            Assert.Equal(head, a.Events.Head);
            await a.Store.StopAsync(CancellationToken.None);
        }

        Assert.Equal(new EventCursor(epoch, 2), middle);
        Assert.Equal(new EventCursor(epoch, 5), head);
        await using var b = await TestStore.OwnAsync(database, output, name: "b");

        Assert.Equal(epoch, b.Events.Epoch);
        Assert.Equal(head, b.Events.Head);
        Assert.Equal(CursorState.Valid, await b.Events.ValidateAsync(middle));
        Assert.Equal(CursorState.Valid, await b.Events.ValidateAsync(head));
        Assert.Equal(CursorState.Valid, await b.Events.ValidateAsync(new EventCursor(epoch, 0)));
        var page = await b.Events.ReadAsync(Samples.Tenant, middle, 100);
        Assert.Equal(CursorState.Valid, page.State);
        Same.Events(late, page.Events);
        Assert.Equal(head, page.Next);
        Same.Events(late[1..], (await b.Events.ReadAsync(Samples.Tenant, middle with { Position = 3 }, 100)).Events);
        Assert.Empty((await b.Events.ReadAsync(Samples.Tenant, head, 100)).Events);
        Same.Events([.. early, .. late], (await b.ReadAllAsync(Samples.Tenant, new EventCursor(epoch, 0), pageSize: 2)).Events);

        // The cursor as clients hold it: its text.
        Assert.True(EventCursor.TryParse(middle.ToString(), out var parsed));
        Assert.Equal(CursorState.Valid, await b.Events.ValidateAsync(parsed));

        // B goes on where A stopped.
        var next = Samples.Status(key, 6);
        await b.RegisterAsync(Samples.Device("c", 6, 6), next);
        Assert.Equal(6, next.Position);
        Same.Events([next], (await b.Events.ReadAsync(Samples.Tenant, head, 100)).Events);
    }

    [Fact]
    public async Task A_cursor_of_another_epoch_is_expired_and_one_beyond_the_head_is_unknown()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var key = Samples.Key("c");
        await store.RegisterAsync(Samples.Device("c"), Samples.Registered(key), Samples.Status(key, 2));
        var epoch = store.Events.Epoch;

        var foreign = new EventCursor(epoch == 1 ? 2 : epoch - 1, 1);
        Assert.Equal(CursorState.Expired, await store.Events.ValidateAsync(foreign));
        var page = await store.Events.ReadAsync(Samples.Tenant, foreign, 100);
        Assert.Equal(CursorState.Expired, page.State);
        Assert.Empty(page.Events);

        var beyond = new EventCursor(epoch, 3);
        Assert.Equal(CursorState.Unknown, await store.Events.ValidateAsync(beyond));
        page = await store.Events.ReadAsync(Samples.Tenant, beyond, 100);
        Assert.Equal(CursorState.Unknown, page.State);
        Assert.Empty(page.Events);

        // Also for a process that never wrote (it asks the database before answering).
        await using var reader = await TestStore.StartAsync(database, output, name: "reader");
        Assert.Equal(CursorState.Unknown, await reader.Events.ValidateAsync(beyond));
        Assert.Equal(CursorState.Expired, await reader.Events.ValidateAsync(foreign));
        Assert.Equal(CursorState.Valid, await reader.Events.ValidateAsync(beyond with { Position = 2 }));
    }

    [Fact]
    public async Task A_cursor_behind_what_retention_deleted_is_expired()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var key = Samples.Key("t");
        var events = Enumerable.Range(1, 5).Select(i => Samples.Status(key, i)).ToArray();
        await store.RegisterAsync(Samples.Device("t", 5, 5), events);
        var epoch = store.Events.Epoch;
        await using var reader = await TestStore.StartAsync(database, output, name: "reader");

        // Retention (another process) deletes positions 1..2.
        await Sql.ExecuteAsync(database, "DELETE FROM presence_events WHERE position <= 2; UPDATE presence_log SET trimmed_to = 2");

        // A reader whose tail does not hold them reads from the table and finds out there.
        var page = await reader.Events.ReadAsync(Samples.Tenant, new EventCursor(epoch, 1), 100);
        Assert.Equal(CursorState.Expired, page.State);
        Assert.Empty(page.Events);
        Assert.Equal(CursorState.Expired, await reader.Events.ValidateAsync(new EventCursor(epoch, 0)));
        page = await reader.Events.ReadAsync(Samples.Tenant, new EventCursor(epoch, 2), 100);
        Assert.Equal(CursorState.Valid, page.State);
        Same.Events(events[2..], page.Events);

        // A process started after it knows at once.
        await using var later = await TestStore.StartAsync(database, output, name: "later");
        Assert.Equal(CursorState.Expired, await later.Events.ValidateAsync(new EventCursor(epoch, 1)));
        Assert.Equal(CursorState.Valid, await later.Events.ValidateAsync(new EventCursor(epoch, 2)));
    }

    [Fact]
    public async Task Another_process_committing_wakes_a_waiting_reader()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var writer = await TestStore.OwnAsync(database, output, name: "writer");
        await using var reader = await TestStore.StartAsync(database, output, name: "reader");
        using var timeout = new CancellationTokenSource(Timeout);
        var key = Samples.Key("n");
        await writer.RegisterAsync(Samples.Device("n"), Samples.Registered(key));
        await reader.WaitForHeadAsync(1);
        var head = reader.Events.Head;
        Assert.Equal(1, head.Position);

        var doorbell = reader.Events.WaitAsync(head, timeout.Token);
        Assert.False(doorbell.IsCompleted);
        var events = new[] { Samples.Status(key, 2), Samples.Status(key, 3, DeviceStatus.Offline) };
        await writer.RegisterAsync(Samples.Device("n", 3, 3), events);
        await doorbell;

        var page = await reader.Events.ReadAsync(Samples.Tenant, head, 100);
        Same.Events(events, page.Events);
        Assert.Equal(new EventCursor(head.Epoch, 3), page.Next);
    }

    /// <summary>
    /// The doorbell (IEventLog.WaitAsync: "completes when an event after <c>after</c> exists") must not ring for an
    /// append that ends at or before <c>after</c>.
    /// </summary>
    [Fact]
    public async Task The_doorbell_waits_for_an_event_after_the_cursor_not_for_any_append()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var key = Samples.Key("d");
        var wait = store.Events.WaitAsync(new EventCursor(store.Events.Epoch, 2), CancellationToken.None);

        await store.RegisterAsync(Samples.Device("d"), Samples.Registered(key));
        await store.RegisterAsync(Samples.Device("d", 2, 2), Samples.Status(key, 2));
        var rangEarly = wait.IsCompleted;
        await store.RegisterAsync(Samples.Device("d", 3, 3), Samples.Status(key, 3));
        await wait.Bound();

        Assert.False(rangEarly, "WaitAsync(after: 2) completed when the log's head was 2");
    }

    [Fact]
    public async Task A_plain_SQL_append_wakes_a_waiting_reader()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var reader = await TestStore.StartAsync(database, output, name: "reader");
        using var timeout = new CancellationTokenSource(Timeout);
        var head = reader.Events.Head;
        var doorbell = reader.Events.WaitAsync(head, timeout.Token);
        Assert.False(doorbell.IsCompleted);

        var key = Samples.Key("n");
        var events = new List<DeviceEvent> { Samples.Registered(key), Samples.CommandResult(key, 2, "c1", ok: false) };
        await using (var connection = await Sql.OpenAsync(database))
        {
            await using var command = new NpgsqlCommand(EventRows.Append, connection);
            EventRows.Bind(command.Parameters, events);
            await command.ExecuteNonQueryAsync(timeout.Token);
        }

        await doorbell;
        events[0].AssignPosition(1);
        events[1].AssignPosition(2);
        Same.Events(events, (await reader.Events.ReadAsync(Samples.Tenant, head, 100)).Events);
    }
}
