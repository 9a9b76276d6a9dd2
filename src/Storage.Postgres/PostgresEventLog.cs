using Microsoft.Extensions.Logging;
using Npgsql;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;

namespace Presence.Storage.Postgres;

/// <summary>
/// The durable event log: <c>presence_events</c>, positions assigned densely in commit order (see
/// <see cref="EventRows.Append"/>), so a reader by position never skips an event that commits late. The most
/// recent events are also held in an <see cref="EventRing"/>: this process's own commits go straight in, other
/// writers' are fetched when their <c>NOTIFY</c> rings, and older cursors are read from the table. The epoch lives
/// in the database, so cursors stay valid across restarts; retention deletes by age and moves <c>trimmed_to</c>.
/// </summary>
internal sealed partial class PostgresEventLog(NpgsqlDataSource data, int cached, StorageHealth health, ILogger log) : IEventLog, IAsyncDisposable
{
    public const string Channel = "presence_events";

    private const string ReadColumns = "e.position, e.tenant_id, e.device_id, e.type, e.sequence, e.time, e.status, e.previous_status, " +
        "e.reason, e.last_seen_at, e.session_id, e.device_name, e.platform, e.command_id, e.ok, e.output";

    private EventRing _ring = new(1);
    private long _head;
    private long _trimmedTo;
    private long _expected;
    private readonly SemaphoreSlim _fetching = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private Task _listening = Task.CompletedTask;

    public long Epoch { get; private set; }

    public EventCursor Head => new(Epoch, KnownHead);

    /// <summary>The last position known to be committed: the ring's own appends count before the head is moved.</summary>
    private long KnownHead => Math.Max(Volatile.Read(ref _head), _ring.Head);

    /// <summary>Reads the log's epoch and head, and starts listening for other writers' appends.</summary>
    public async Task OpenAsync(CancellationToken cancellationToken)
    {
        await using var command = data.CreateCommand("SELECT epoch, head, trimmed_to FROM presence_log WHERE id = 1");
        await using var row = await command.ExecuteReaderAsync(cancellationToken);
        await row.ReadAsync(cancellationToken);
        Epoch = row.GetInt64(0);
        _head = row.GetInt64(1);
        _trimmedTo = row.GetInt64(2);
        _ring = new EventRing(cached, _head);
        _listening = PostgresListener.RunAsync(data, Channel, OnDoorbell, RefreshAsync, ListenFailed, _stopping.Token);
    }

    /// <summary>This process committed <paramref name="events"/> (positions assigned), ending at <paramref name="head"/>.</summary>
    public void Committed(IReadOnlyList<DeviceEvent> events, long head)
    {
        if (!_ring.TryAppend(events))
        {
            // Another writer's events came in between: fetch them (and these) from the table, in order.
            _ = CatchUpAsync(head, CancellationToken.None);
            return;
        }

        AdvanceHead(head);
    }

    /// <summary>Retention deleted every event up to <paramref name="position"/>.</summary>
    public void Trimmed(long position) => InterlockedMax(ref _trimmedTo, position);

    public async ValueTask<CursorState> ValidateAsync(EventCursor cursor, CancellationToken cancellationToken = default)
    {
        if (cursor.Epoch != Epoch || cursor.Position < Volatile.Read(ref _trimmedTo))
        {
            return CursorState.Expired;
        }

        if (cursor.Position > KnownHead)
        {
            // Another process may have appended beyond what this one has heard of yet.
            await RefreshAsync(cancellationToken);
            if (cursor.Position > KnownHead)
            {
                return CursorState.Unknown;
            }
        }

        return cursor.Position < Volatile.Read(ref _trimmedTo) ? CursorState.Expired : CursorState.Valid;
    }

    public async ValueTask<EventPage> ReadAsync(string tenantId, EventCursor after, int limit, string? deviceId = null, CancellationToken cancellationToken = default)
    {
        var state = await ValidateAsync(after, cancellationToken);
        if (state != CursorState.Valid)
        {
            return EventPage.Invalid(state, after);
        }

        if (_ring.Read(tenantId, after.Position, limit, deviceId) is var (events, next))
        {
            return new EventPage(CursorState.Valid, events, new EventCursor(Epoch, next));
        }

        return await ReadStoredAsync(tenantId, after, limit, deviceId, cancellationToken);
    }

    public Task WaitAsync(EventCursor after, CancellationToken cancellationToken) =>
        after.Epoch != Epoch ? Task.CompletedTask : _ring.WaitAsync(after.Position, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (!_stopping.IsCancellationRequested)
        {
            await _stopping.CancelAsync();
        }

        await _listening;
    }

    /// <summary>
    /// A page from the table, up to the head known now (every position up to it is committed, so the page has no
    /// holes). Retention is checked in the same statement: a cursor it overtook is expired, never silently skipped.
    /// </summary>
    private async Task<EventPage> ReadStoredAsync(string tenantId, EventCursor after, int limit, string? deviceId, CancellationToken cancellationToken)
    {
        var head = KnownHead;
        var sql = "SELECT l.trimmed_to, " + ReadColumns + " FROM presence_log l LEFT JOIN LATERAL (SELECT * FROM presence_events " +
            "WHERE tenant_id = @tenant AND position > @after AND position <= @head" + (deviceId is null ? "" : " AND device_id = @device") +
            " ORDER BY position LIMIT @limit) e ON true WHERE l.id = 1";
        try
        {
            await using var command = data.CreateCommand(sql);
            command.Parameters.AddWithValue("tenant", tenantId);
            command.Parameters.AddWithValue("after", after.Position);
            command.Parameters.AddWithValue("head", head);
            command.Parameters.AddWithValue("limit", limit);
            if (deviceId is not null)
            {
                command.Parameters.AddWithValue("device", deviceId);
            }

            var events = new List<DeviceEvent>();
            await using var row = await command.ExecuteReaderAsync(cancellationToken);
            while (await row.ReadAsync(cancellationToken))
            {
                Trimmed(row.GetInt64(0));
                if (!row.IsDBNull(1))
                {
                    events.Add(EventRows.Read(row, 1));
                }
            }

            if (after.Position < Volatile.Read(ref _trimmedTo))
            {
                return EventPage.Invalid(CursorState.Expired, after);
            }

            var next = events.Count == limit ? events[^1].Position : head;
            return new EventPage(CursorState.Valid, events, new EventCursor(Epoch, next));
        }
        catch (Exception error) when (PostgresErrors.IsOutage(error))
        {
            throw PostgresErrors.Unavailable(error);
        }
    }

    private async Task RefreshAsync(CancellationToken cancellationToken)
    {
        try
        {
            await using var command = data.CreateCommand("SELECT head, trimmed_to FROM presence_log WHERE id = 1");
            await using var row = await command.ExecuteReaderAsync(cancellationToken);
            await row.ReadAsync(cancellationToken);
            var head = row.GetInt64(0);
            Trimmed(row.GetInt64(1));
            if (head > _ring.Head)
            {
                await CatchUpAsync(head, cancellationToken);
            }

            AdvanceHead(head);
        }
        catch (Exception error) when (PostgresErrors.IsOutage(error))
        {
            throw PostgresErrors.Unavailable(error);
        }
    }

    /// <summary>Fetches appended events up to <paramref name="head"/> into the ring, in order.</summary>
    private async Task CatchUpAsync(long head, CancellationToken cancellationToken)
    {
        const int Page = 5_000;
        await _fetching.WaitAsync(cancellationToken);
        try
        {
            while (_ring.Head < head)
            {
                if (head - _ring.Head > cached)
                {
                    // Too far behind to hold: older reads go to the table.
                    _ring.Restart(head - cached);
                }

                await using var command = data.CreateCommand(
                    "SELECT " + EventRows.Columns + " FROM presence_events WHERE position > @after AND position <= @head ORDER BY position LIMIT @limit");
                command.Parameters.AddWithValue("after", _ring.Head);
                command.Parameters.AddWithValue("head", head);
                command.Parameters.AddWithValue("limit", Page);
                var events = new List<DeviceEvent>();
                await using (var row = await command.ExecuteReaderAsync(cancellationToken))
                {
                    while (await row.ReadAsync(cancellationToken))
                    {
                        events.Add(EventRows.Read(row));
                    }
                }

                // This process's own commits may have gone into the ring meanwhile.
                var fresh = events.SkipWhile(e => e.Position <= _ring.Head).ToList();
                if (events.Count == 0)
                {
                    _ring.Restart(head); // retention deleted them all
                }
                else if (fresh.Count > 0 && !_ring.TryAppend(fresh) && fresh[0].Position > _ring.Head + 1)
                {
                    // Retention deleted the first of them: continue after the hole.
                    _ring.Restart(fresh[0].Position - 1);
                    _ring.TryAppend(fresh);
                }
            }

            AdvanceHead(head);
        }
        catch (Exception error) when (PostgresErrors.IsOutage(error))
        {
            LogCatchUpFailed(log, error.Message);
        }
        finally
        {
            _fetching.Release();
        }
    }

    /// <summary>Another process appended up to the notified head: fetch what this one has not got (its own commits excepted).</summary>
    private void OnDoorbell(string payload)
    {
        if (long.TryParse(payload, out var head) && head > _ring.Head && head != Volatile.Read(ref _expected))
        {
            _ = CatchUpAsync(head, _stopping.Token);
        }
    }

    /// <summary>The listener is the first to notice a lost database, even when nothing is being written.</summary>
    private void ListenFailed(Exception error)
    {
        health.Failed(error);
        LogListenFailed(log, error.Message);
    }

    /// <summary>
    /// This process is committing events up to <paramref name="head"/>: their doorbell must not make the log fetch
    /// them back from the table (it gets them from the writer). 0 when the commit failed.
    /// </summary>
    public void Expect(long head) => Volatile.Write(ref _expected, head);

    private void AdvanceHead(long head) => InterlockedMax(ref _head, head);

    private static void InterlockedMax(ref long target, long value)
    {
        var current = Volatile.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }

    [LoggerMessage(EventId = 3101, Level = LogLevel.Warning, Message = "Event log: listening for appends failed ({Reason}); retrying")]
    private static partial void LogListenFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 3102, Level = LogLevel.Warning, Message = "Event log: fetching appended events failed ({Reason}); the next doorbell retries")]
    private static partial void LogCatchUpFailed(ILogger logger, string reason);
}
