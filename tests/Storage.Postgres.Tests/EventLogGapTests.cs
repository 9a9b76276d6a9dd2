using System.Collections.Concurrent;
using Npgsql;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;
using Presence.Storage.Postgres.Tests.Support;
using Presence.Testing;

namespace Presence.Storage.Postgres.Tests;

/// <summary>
/// The event log never shows a gap: positions come from the log row, whose lock serialises appenders in commit
/// order, so a reader by position never skips an event that commits late. Appenders here run the store's own
/// append statement (<see cref="EventRows.Append"/>) on connections of their own, as other processes would.
/// </summary>
public sealed class EventLogGapTests(PostgresFixture fixture, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    private const string Other = "globex";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData(10_000)] // the reader's tail holds everything
    [InlineData(8)] // the reader's tail overflows: it restarts and older reads go to the table
    public async Task A_tailing_reader_sees_every_committed_event_once_in_order_and_nothing_rolled_back(int readerTail)
    {
        const int Writers = 6;
        const int Transactions = 40;
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var reader = await TestStore.StartAsync(database, output, retention: readerTail, name: "reader");
        using var timeout = new CancellationTokenSource(Timeout);
        var committed = new ConcurrentDictionary<string, (long Position, string Tenant)>(StringComparer.Ordinal);
        var rolledBack = new ConcurrentDictionary<string, byte>(StringComparer.Ordinal);

        async Task WriteAsync(int writer)
        {
            var random = new Random(writer);
            await using var connection = await Sql.OpenAsync(database);
            for (var t = 0; t < Transactions; t++)
            {
                await using var transaction = await connection.BeginTransactionAsync(timeout.Token);
                await PauseAsync(random);
                await Sql.ScalarAsync<int>(connection, "SELECT 1", transaction); // as a commit writes devices first
                await PauseAsync(random);
                var events = Enumerable.Range(0, random.Next(1, 5))
                    .Select(i => Event(random.Next(3) == 0 ? Other : Samples.Tenant, $"w{writer}", $"{writer}-{t}-{i}"))
                    .ToList();
                var head = await AppendAsync(connection, transaction, events);
                await PauseAsync(random);
                if (random.Next(5) == 0)
                {
                    await transaction.RollbackAsync(timeout.Token);
                    foreach (var e in events)
                    {
                        rolledBack[e.CommandId!] = 0;
                    }
                }
                else
                {
                    await transaction.CommitAsync(timeout.Token);
                    for (var i = 0; i < events.Count; i++)
                    {
                        committed[events[i].CommandId!] = (head - events.Count + 1 + i, events[i].TenantId);
                    }
                }
            }
        }

        var writers = Task.WhenAll(Enumerable.Range(0, Writers).Select(w => Task.Run(() => WriteAsync(w))));
        var tails = new[] { Samples.Tenant, Other }.Select(tenant => Task.Run(() => TailAsync(reader, tenant, writers, database, timeout.Token))).ToList();
        await writers;
        var seen = await Task.WhenAll(tails);

        // The table: dense positions 1..head, exactly the committed events.
        var table = await Sql.RowsAsync(database, "SELECT position, command_id FROM presence_events ORDER BY position");
        var head = await Sql.ScalarAsync<long>(database, "SELECT head FROM presence_log");
        Assert.Equal(committed.Count, table.Count);
        Assert.Equal(Enumerable.Range(1, (int)head).Select(p => (long)p), table.Select(r => long.Parse(r.Split('|')[0], System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(committed.OrderBy(c => c.Value.Position).Select(c => $"{c.Value.Position}|{c.Key}"), table);
        Assert.NotEmpty(rolledBack);

        // Each reader: every committed event of its tenant exactly once, in position order, none rolled back.
        foreach (var (tenant, events) in new[] { Samples.Tenant, Other }.Zip(seen))
        {
            Assert.All(events, e => Assert.Equal(tenant, e.TenantId));
            Assert.All(events, e => Assert.False(rolledBack.ContainsKey(e.CommandId!), $"rolled back {e.CommandId} was read"));
            Assert.All(events, e => Assert.Equal(committed[e.CommandId!].Position, e.Position));
            for (var i = 1; i < events.Count; i++)
            {
                Assert.True(events[i - 1].Position < events[i].Position, $"position {events[i].Position} read after {events[i - 1].Position}");
            }

            Assert.Equal(
                committed.Where(c => c.Value.Tenant == tenant).OrderBy(c => c.Value.Position).Select(c => c.Key),
                events.Select(e => e.CommandId!));
        }

        output.WriteLine($"{committed.Count} events committed, {rolledBack.Count} rolled back, head {head}; read {seen[0].Count} + {seen[1].Count}");
    }

    [Fact]
    public async Task An_open_append_holds_back_later_appenders_and_stays_invisible_until_it_commits()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var reader = await TestStore.StartAsync(database, output, name: "reader");
        using var timeout = new CancellationTokenSource(Timeout);
        var start = reader.Events.Head;
        Assert.Equal(0, start.Position);
        await using var one = await Sql.OpenAsync(database);
        await using var two = await Sql.OpenAsync(database);

        // T1 appends and stays open.
        var t1 = await one.BeginTransactionAsync(timeout.Token);
        var first = Enumerable.Range(0, 2).Select(i => Event(Samples.Tenant, "one", $"one-{i}")).ToList();
        Assert.Equal(2, await AppendAsync(one, t1, first));

        // T2 appends too: it must wait for T1's lock on the log row.
        var t2 = await two.BeginTransactionAsync(timeout.Token);
        var second = Enumerable.Range(0, 3).Select(i => Event(Samples.Tenant, "two", $"two-{i}")).ToList();
        var appending = AppendAsync(two, t2, second);
        await Sql.UntilAsync(() => Sql.WaitsForLockAsync(database, two.ProcessID), "T2 waits for T1's lock on the log row");
        Assert.False(appending.IsCompleted);

        // Nothing of T1 shows: no events, no head, and its position is unknown.
        var page = await reader.Events.ReadAsync(Samples.Tenant, start, 100);
        Assert.Empty(page.Events);
        Assert.Equal(start, page.Next);
        Assert.Equal(CursorState.Unknown, await reader.Events.ValidateAsync(start with { Position = 1 }));
        var doorbell = reader.Events.WaitAsync(start, timeout.Token);
        Assert.False(doorbell.IsCompleted);

        // T1 commits: its events show, and T2 goes on with the positions after them.
        await t1.CommitAsync(timeout.Token);
        await doorbell;
        var (events, next) = await reader.ReadAllAsync(Samples.Tenant, start);
        Assert.Equal(["one-0", "one-1"], events.Select(e => e.CommandId));
        Assert.Equal([1L, 2], events.Select(e => e.Position));
        Assert.Equal(2, next.Position);
        Assert.Equal(5, await appending);

        // T2 is still open: nothing of it shows yet.
        Assert.Empty((await reader.Events.ReadAsync(Samples.Tenant, next, 100)).Events);
        Assert.Equal(CursorState.Unknown, await reader.Events.ValidateAsync(next with { Position = 3 }));
        doorbell = reader.Events.WaitAsync(next, timeout.Token);
        Assert.False(doorbell.IsCompleted);

        await t2.CommitAsync(timeout.Token);
        await doorbell;
        (events, next) = await reader.ReadAllAsync(Samples.Tenant, next);
        Assert.Equal(["two-0", "two-1", "two-2"], events.Select(e => e.CommandId));
        Assert.Equal([3L, 4, 5], events.Select(e => e.Position));
        Assert.Equal(new EventCursor(reader.Events.Epoch, 5), next);
        await t1.DisposeAsync();
        await t2.DisposeAsync();
    }

    [Fact]
    public async Task A_rolled_back_append_leaves_no_hole()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var reader = await TestStore.StartAsync(database, output, name: "reader");
        using var timeout = new CancellationTokenSource(Timeout);
        var start = reader.Events.Head;
        await using var one = await Sql.OpenAsync(database);
        await using var two = await Sql.OpenAsync(database);

        await using var t1 = await one.BeginTransactionAsync(timeout.Token);
        Assert.Equal(4, await AppendAsync(one, t1, [.. Enumerable.Range(0, 4).Select(i => Event(Samples.Tenant, "one", $"one-{i}"))]));
        await using var t2 = await two.BeginTransactionAsync(timeout.Token);
        var appending = AppendAsync(two, t2, [.. Enumerable.Range(0, 2).Select(i => Event(Samples.Tenant, "two", $"two-{i}"))]);
        await Sql.UntilAsync(() => Sql.WaitsForLockAsync(database, two.ProcessID), "T2 waits for T1's lock on the log row");

        await t1.RollbackAsync(timeout.Token);
        Assert.Equal(2, await appending);
        var doorbell = reader.Events.WaitAsync(start, timeout.Token);
        await t2.CommitAsync(timeout.Token);
        await doorbell;

        var (events, next) = await reader.ReadAllAsync(Samples.Tenant, start);
        Assert.Equal(["two-0", "two-1"], events.Select(e => e.CommandId));
        Assert.Equal([1L, 2], events.Select(e => e.Position));
        Assert.Equal(2, next.Position);
        Assert.Equal(["1|two-0", "2|two-1"], await Sql.RowsAsync(database, "SELECT position, command_id FROM presence_events ORDER BY position"));
    }

    /// <summary>Reads <paramref name="tenant"/>'s events as a subscriber does, until it has read up to the final head.</summary>
    private static async Task<List<DeviceEvent>> TailAsync(TestStore reader, string tenant, Task writers, string database, CancellationToken cancellationToken)
    {
        var seen = new List<DeviceEvent>();
        var cursor = new EventCursor(reader.Events.Epoch, 0);
        long? end = null;
        while (end is null || cursor.Position < end)
        {
            var page = await reader.Events.ReadAsync(tenant, cursor, 5, cancellationToken: cancellationToken);
            Assert.Equal(CursorState.Valid, page.State);
            Assert.True(page.Next.Position >= cursor.Position, $"the cursor moved back from {cursor} to {page.Next}");
            seen.AddRange(page.Events);
            if (page.Next == cursor)
            {
                if (end is null && writers.IsCompleted)
                {
                    // Every writer is done: the head is final, and the reader must get there.
                    end = await Sql.ScalarAsync<long>(database, "SELECT head FROM presence_log");
                    continue;
                }

                var doorbell = reader.Events.WaitAsync(cursor, cancellationToken);
                await (end is null ? Task.WhenAny(doorbell, writers) : doorbell);
                cancellationToken.ThrowIfCancellationRequested();
            }

            cursor = page.Next;
        }

        Assert.Equal(end, cursor.Position);
        return seen;
    }

    private static DeviceEvent Event(string tenant, string deviceId, string id) => new()
    {
        TenantId = tenant,
        DeviceId = deviceId,
        Type = DeviceEventType.CommandResult,
        Sequence = 1,
        Time = Samples.T0,
        CommandId = id,
        Ok = true,
        Output = id,
    };

    private static async Task<long> AppendAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, List<DeviceEvent> events)
    {
        await using var command = new NpgsqlCommand(EventRows.Append, connection, transaction);
        EventRows.Bind(command.Parameters, events);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>A random break in a writer's run (none, a yield, or a hop to another thread) so that writers interleave differently.</summary>
    private static async Task PauseAsync(Random random)
    {
        for (var hops = random.Next(4); hops > 0; hops--)
        {
            if (random.Next(2) == 0)
            {
                await Task.Yield();
            }
            else
            {
                await Task.Run(static () => { });
            }
        }
    }
}
