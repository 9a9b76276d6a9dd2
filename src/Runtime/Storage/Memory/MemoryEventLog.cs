using Presence.Grains.Abstractions;

namespace Presence.Runtime.Storage.Memory;

/// <summary>
/// The in-memory event log: a ring of the last <c>capacity</c> events of all tenants, positions 1, 2, 3...
/// Appends are serialised by a lock, so positions are assigned in commit order and a reader can never skip an
/// event that becomes visible late. The epoch is new for every process: cursors do not survive a restart.
/// </summary>
public sealed class MemoryEventLog : IEventLog
{
    /// <summary>How many positions one read scans at most, so a tenant with few events is not starved by others.</summary>
    private const int MaxScan = 16_384;

    private readonly object _lock = new();
    private readonly DeviceEvent?[] _ring;
    private long _head;
    private TaskCompletionSource _appended = NewSignal();

    public MemoryEventLog(int capacity, long epoch)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(epoch, 1);
        _ring = new DeviceEvent?[capacity];
        Epoch = epoch;
    }

    public long Epoch { get; }

    public EventCursor Head => new(Epoch, Volatile.Read(ref _head));

    internal void Append(List<DeviceEvent> events)
    {
        if (events.Count == 0)
        {
            return;
        }

        TaskCompletionSource signal;
        lock (_lock)
        {
            foreach (var e in events)
            {
                var position = _head + 1;
                e.AssignPosition(position);
                _ring[position % _ring.Length] = e;
                Volatile.Write(ref _head, position);
            }

            signal = _appended;
            _appended = NewSignal();
        }

        signal.TrySetResult();
    }

    public CursorState Validate(EventCursor cursor)
    {
        lock (_lock)
        {
            return ValidateLocked(cursor);
        }
    }

    private CursorState ValidateLocked(EventCursor cursor)
    {
        if (cursor.Epoch != Epoch || cursor.Position < _head - _ring.Length)
        {
            return CursorState.Expired;
        }

        return cursor.Position > _head ? CursorState.Unknown : CursorState.Valid;
    }

    public EventPage Read(string tenantId, EventCursor after, int limit, string? deviceId = null)
    {
        var events = new List<DeviceEvent>(Math.Min(limit, 64));
        lock (_lock)
        {
            var state = ValidateLocked(after);
            if (state != CursorState.Valid)
            {
                return EventPage.Invalid(state, after);
            }

            var position = after.Position;
            var last = Math.Min(_head, after.Position + MaxScan);
            while (position < last && events.Count < limit)
            {
                position++;
                var e = _ring[position % _ring.Length]!;
                if (e.TenantId == tenantId && (deviceId is null || e.DeviceId == deviceId))
                {
                    events.Add(e);
                }
            }

            return new EventPage(CursorState.Valid, events, new EventCursor(Epoch, position));
        }
    }

    public Task WaitAsync(EventCursor after, CancellationToken cancellationToken)
    {
        Task signal;
        lock (_lock)
        {
            if (after.Epoch != Epoch || _head > after.Position)
            {
                return Task.CompletedTask;
            }

            signal = _appended.Task;
        }

        return signal.WaitAsync(cancellationToken);
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
