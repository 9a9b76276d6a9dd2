namespace Presence.Runtime.Timers;

/// <summary>
/// A hashed timing wheel with coarse ticks. Scheduling is O(1); <see cref="Advance"/> visits only the slots whose
/// time has come. Entries are never moved or cancelled: the owner keeps, per item, the tick it last scheduled and
/// ignores entries whose tick no longer matches (heartbeats only move a deadline; stale entries are re-checked
/// lazily when they fire). Deadlines beyond one revolution stay in their slot until their round comes.
/// Not thread-safe: one partition owns one wheel and uses it from its turns only.
/// </summary>
public sealed class TimingWheel<T>(TimeSpan tick, int slots)
{
    private readonly long _tickTicks = tick > TimeSpan.Zero ? tick.Ticks : throw new ArgumentOutOfRangeException(nameof(tick));
    private readonly List<Entry>?[] _slots = slots > 0 && (slots & (slots - 1)) == 0
        ? new List<Entry>?[slots]
        : throw new ArgumentOutOfRangeException(nameof(slots), "must be a power of two");
    private long _nextTick = -1;

    public readonly record struct Entry(T Item, long Tick);

    public int Count { get; private set; }

    /// <summary>The wheel tick at which <paramref name="due"/> has been reached.</summary>
    public long TickOf(DateTime due) => (due.Ticks + _tickTicks - 1) / _tickTicks;

    /// <summary>Schedules <paramref name="item"/> for the tick of <paramref name="due"/>; returns that tick.</summary>
    public long Schedule(T item, DateTime due)
    {
        var tick = TickOf(due);
        if (_nextTick >= 0 && tick < _nextTick)
        {
            tick = _nextTick;
        }

        var index = (int)(tick & (_slots.Length - 1));
        (_slots[index] ??= new List<Entry>(4)).Add(new Entry(item, tick));
        Count++;
        return tick;
    }

    /// <summary>Moves the wheel to <paramref name="now"/>, appending every entry whose tick has passed to <paramref name="due"/>.</summary>
    public void Advance(DateTime now, List<Entry> due)
    {
        var nowTick = now.Ticks / _tickTicks;
        if (_nextTick < 0)
        {
            _nextTick = nowTick - _slots.Length + 1;
        }

        if (nowTick < _nextTick)
        {
            return;
        }

        var first = Math.Max(_nextTick, nowTick - _slots.Length + 1);
        for (var t = first; t <= nowTick; t++)
        {
            var slot = _slots[(int)(t & (_slots.Length - 1))];
            if (slot is null || slot.Count == 0)
            {
                continue;
            }

            var kept = 0;
            for (var i = 0; i < slot.Count; i++)
            {
                var entry = slot[i];
                if (entry.Tick <= nowTick)
                {
                    due.Add(entry);
                    Count--;
                }
                else
                {
                    slot[kept++] = entry;
                }
            }

            slot.RemoveRange(kept, slot.Count - kept);
        }

        _nextTick = nowTick + 1;
    }
}
