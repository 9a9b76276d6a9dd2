using System.Collections.Concurrent;

namespace Presence.Runtime.Silo;

/// <summary>
/// Admits partitions with a backlog of due timers to the thread pool a few at a time. Without it a timeout storm
/// queues a slice of work for every partition at once, ahead of the requests' own work items, and heartbeats wait
/// for the whole wave. Calls never wait for the lane: they run on their partition's turn as usual.
/// </summary>
internal sealed class ExpiryLane(int width)
{
    private readonly ConcurrentQueue<Partition> _waiting = new();
    private int _running;

    public void Enqueue(Partition partition)
    {
        _waiting.Enqueue(partition);
        Admit();
    }

    /// <summary>A partition admitted by the lane finished its slice.</summary>
    public void Done()
    {
        Interlocked.Decrement(ref _running);
        Admit();
    }

    private void Admit()
    {
        while (true)
        {
            var running = Volatile.Read(ref _running);
            if (running >= width || _waiting.IsEmpty)
            {
                return;
            }

            if (Interlocked.CompareExchange(ref _running, running + 1, running) != running)
            {
                continue;
            }

            if (_waiting.TryDequeue(out var partition))
            {
                partition.RunExpirySlice();
            }
            else
            {
                Interlocked.Decrement(ref _running);
            }
        }
    }
}
