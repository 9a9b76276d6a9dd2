using Presence.Grains.Abstractions;

namespace Presence.Runtime.Storage;

/// <summary>
/// The most recent events of all tenants in position order, in a fixed-size ring: the whole in-memory log, or the
/// memory-resident tail of a durable one. Appends must be contiguous (position = head + 1), so a reader scanning
/// the ring can never skip an event; readers and appenders share one lock.
/// </summary>
public sealed class EventRing
{
    /// <summary>How many positions one read scans at most, so a tenant with few events is not starved by others.</summary>
    public const int MaxScan = 16_384;

    private readonly object _lock = new();
    private readonly DeviceEvent?[] _ring;
    private long _head;
    private TaskCompletionSource _appended = NewSignal();

    /// <param name="capacity">Events kept.</param>
    /// <param name="head">The position before the first event this ring will hold.</param>
    public EventRing(int capacity, long head = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(head);
        _ring = new DeviceEvent?[capacity];
        _head = head;
        Start = head;
    }

    /// <summary>The last appended position.</summary>
    public long Head => Volatile.Read(ref _head);

    /// <summary>The position before the oldest event the ring can still serve: reads must start at or after it.</summary>
    public long Oldest
    {
        get
        {
            lock (_lock)
            {
                return OldestLocked();
            }
        }
    }

    /// <summary>The position the ring started after (events before it were never in the ring).</summary>
    private long Start { get; set; }

    /// <summary>
    /// Appends events whose positions are already assigned and contiguous with <see cref="Head"/>; false (and nothing
    /// appended) when they are not, e.g. another writer's events came in between and must be fetched first.
    /// </summary>
    public bool TryAppend(IReadOnlyList<DeviceEvent> events)
    {
        if (events.Count == 0)
        {
            return true;
        }

        TaskCompletionSource signal;
        lock (_lock)
        {
            if (events[0].Position != _head + 1)
            {
                return false;
            }

            foreach (var e in events)
            {
                if (e.Position != _head + 1)
                {
                    throw new InvalidOperationException("Events must be appended in contiguous position order.");
                }

                _ring[e.Position % _ring.Length] = e;
                Volatile.Write(ref _head, e.Position);
            }

            signal = _appended;
            _appended = NewSignal();
        }

        signal.TrySetResult();
        return true;
    }

    /// <summary>Assigns the next positions to <paramref name="events"/> and appends them (the in-memory log's writer).</summary>
    public void AssignAndAppend(List<DeviceEvent> events)
    {
        if (events.Count == 0)
        {
            return;
        }

        lock (_lock)
        {
            var position = _head;
            foreach (var e in events)
            {
                e.AssignPosition(++position);
            }

            if (!TryAppend(events))
            {
                throw new InvalidOperationException("Unreachable: positions were assigned under the ring's lock.");
            }
        }
    }

    /// <summary>
    /// Drops everything and continues after <paramref name="head"/> (a durable log's tail that fell too far behind to
    /// be filled contiguously). Readers before the new start then read from durable storage. Never moves back.
    /// </summary>
    public void Restart(long head)
    {
        lock (_lock)
        {
            if (head <= _head)
            {
                return;
            }

            Array.Clear(_ring);
            _head = head;
            Start = head;
        }
    }

    /// <summary>
    /// Events of a tenant after <paramref name="after"/> (at most <paramref name="limit"/>, scanning at most
    /// <see cref="MaxScan"/> positions), and the position scanned to; null when the ring no longer holds
    /// <paramref name="after"/> + 1.
    /// </summary>
    public (List<DeviceEvent> Events, long Next)? Read(string tenantId, long after, int limit, string? deviceId)
    {
        var events = new List<DeviceEvent>(Math.Min(limit, 64));
        lock (_lock)
        {
            if (after < OldestLocked() || after > _head)
            {
                return null;
            }

            var position = after;
            var last = Math.Min(_head, after + MaxScan);
            while (position < last && events.Count < limit)
            {
                position++;
                var e = _ring[position % _ring.Length]!;
                if (e.TenantId == tenantId && (deviceId is null || e.DeviceId == deviceId))
                {
                    events.Add(e);
                }
            }

            return (events, position);
        }
    }

    /// <summary>Completes when the head is beyond <paramref name="after"/>.</summary>
    public async Task WaitAsync(long after, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task signal;
            lock (_lock)
            {
                if (_head > after)
                {
                    return;
                }

                signal = _appended.Task;
            }

            await signal.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private long OldestLocked() => Math.Max(Start, _head - _ring.Length);

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
