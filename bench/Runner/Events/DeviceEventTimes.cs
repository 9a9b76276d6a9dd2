using System.Buffers.Text;

namespace Presence.Runner.Events;

/// <summary>
/// When one kind of status event (e.g. <c>offline</c>) was received for each device of a numbered id range
/// (<c>{prefix}{number}</c>): the first receive per device counts, later ones are duplicates; events of other
/// devices are counted apart. Fed by one reader; <see cref="Count"/> may be read from any thread.
/// </summary>
internal sealed class DeviceEventTimes(string prefix, int devices, string status)
{
    private readonly byte[] _prefix = System.Text.Encoding.ASCII.GetBytes(prefix);
    private readonly byte[] _status = System.Text.Encoding.ASCII.GetBytes(status);
    private readonly long[] _receivedAt = new long[devices];
    private long _count;

    public long Count => Volatile.Read(ref _count);

    public long Duplicates { get; private set; }

    /// <summary>Matching status events of devices outside the range (other prefixes, e.g. probes).</summary>
    public long Others { get; private set; }

    public long FirstAt { get; private set; }

    public long LastAt { get; private set; }

    /// <summary>Receive timestamp for device <paramref name="number"/>, 0 if none arrived.</summary>
    public long ReceivedAt(long number) => number >= 0 && number < _receivedAt.Length ? _receivedAt[number] : 0;

    public void Handle(in EventFrame frame)
    {
        if (!frame.IsStatus(_status))
        {
            return;
        }

        if (!frame.DeviceId.StartsWith(_prefix)
            || !Utf8Parser.TryParse(frame.DeviceId[_prefix.Length..], out int number, out var consumed)
            || consumed != frame.DeviceId.Length - _prefix.Length
            || number < 0 || number >= _receivedAt.Length)
        {
            Others++;
            return;
        }

        if (_receivedAt[number] != 0)
        {
            Duplicates++;
            return;
        }

        _receivedAt[number] = frame.ReceivedAt;
        if (FirstAt == 0)
        {
            FirstAt = frame.ReceivedAt;
        }

        LastAt = frame.ReceivedAt;
        Volatile.Write(ref _count, _count + 1);
    }

    /// <summary>Receive times of every device that got its event, in order.</summary>
    public long[] SortedTimes()
    {
        var times = _receivedAt.Where(t => t != 0).ToArray();
        Array.Sort(times);
        return times;
    }
}
