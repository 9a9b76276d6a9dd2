using Presence.Grains.Abstractions;

namespace Presence.Runtime.Storage.Memory;

/// <summary>
/// The in-memory event log: a ring of the last <c>capacity</c> events of all tenants, positions 1, 2, 3...
/// Appends are serialised by the ring's lock, so positions are assigned in commit order and a reader can never
/// skip an event that becomes visible late. The epoch is new for every process: cursors do not survive a restart.
/// </summary>
public sealed class MemoryEventLog : IEventLog
{
    private readonly EventRing _ring;

    public MemoryEventLog(int capacity, long epoch)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(epoch, 1);
        _ring = new EventRing(capacity);
        Epoch = epoch;
    }

    public long Epoch { get; }

    public EventCursor Head => new(Epoch, _ring.Head);

    internal void Append(List<DeviceEvent> events) => _ring.AssignAndAppend(events);

    public ValueTask<CursorState> ValidateAsync(EventCursor cursor, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(Validate(cursor));

    private CursorState Validate(EventCursor cursor) =>
        cursor.Epoch != Epoch ? CursorState.Expired
        : cursor.Position > _ring.Head ? CursorState.Unknown
        : cursor.Position < _ring.Oldest ? CursorState.Expired
        : CursorState.Valid;

    public ValueTask<EventPage> ReadAsync(string tenantId, EventCursor after, int limit, string? deviceId = null, CancellationToken cancellationToken = default)
    {
        if (after.Epoch == Epoch && _ring.Read(tenantId, after.Position, limit, deviceId) is var (events, next))
        {
            return ValueTask.FromResult(new EventPage(CursorState.Valid, events, new EventCursor(Epoch, next)));
        }

        return ValueTask.FromResult(EventPage.Invalid(Validate(after), after));
    }

    public Task WaitAsync(EventCursor after, CancellationToken cancellationToken) =>
        after.Epoch != Epoch ? Task.CompletedTask : _ring.WaitAsync(after.Position, cancellationToken);
}
