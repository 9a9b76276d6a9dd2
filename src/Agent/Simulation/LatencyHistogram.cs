using System.Diagnostics;
using System.Numerics;

namespace Presence.Agent.Simulation;

/// <summary>
/// A log-linear latency histogram in nanoseconds (HdrHistogram-style, 64 sub-buckets per power of two, so any
/// percentile is within 1.6% of the true value). Fixed size, no allocation per sample, not thread-safe:
/// one per connection, merged at the end.
/// </summary>
public sealed class LatencyHistogram
{
    private const int SubBits = 6;
    private const int Sub = 1 << SubBits;
    private const int Linear = 2 * Sub;
    private const int Buckets = Linear + (63 - SubBits) * Sub;

    private static readonly double NanosPerTick = 1_000_000_000.0 / Stopwatch.Frequency;

    private readonly long[] _counts = new long[Buckets];

    public long Count { get; private set; }

    public long MaxNanos { get; private set; }

    public void RecordTicks(long ticks) => Record((long)(ticks * NanosPerTick));

    public void Record(long nanos)
    {
        nanos = Math.Max(0, nanos);
        _counts[IndexOf(nanos)]++;
        Count++;
        if (nanos > MaxNanos)
        {
            MaxNanos = nanos;
        }
    }

    public void Clear()
    {
        Array.Clear(_counts);
        Count = 0;
        MaxNanos = 0;
    }

    public void Add(LatencyHistogram other)
    {
        for (var i = 0; i < Buckets; i++)
        {
            _counts[i] += other._counts[i];
        }

        Count += other.Count;
        MaxNanos = Math.Max(MaxNanos, other.MaxNanos);
    }

    /// <summary>The value at <paramref name="percentile"/> (0-100): the upper edge of its bucket, never above the max.</summary>
    public long PercentileNanos(double percentile)
    {
        if (Count == 0)
        {
            return 0;
        }

        var rank = (long)Math.Ceiling(percentile / 100.0 * Count);
        rank = Math.Clamp(rank, 1, Count);
        long seen = 0;
        for (var i = 0; i < Buckets; i++)
        {
            seen += _counts[i];
            if (seen >= rank)
            {
                return Math.Min(UpperEdge(i), MaxNanos);
            }
        }

        return MaxNanos;
    }

    public double PercentileMs(double percentile) => PercentileNanos(percentile) / 1e6;

    private static int IndexOf(long value)
    {
        if (value < Linear)
        {
            return (int)value;
        }

        var shift = 63 - BitOperations.LeadingZeroCount((ulong)value) - SubBits;
        return Linear + ((shift - 1) * Sub) + (int)((value >> shift) - Sub);
    }

    private static long UpperEdge(int index)
    {
        if (index < Linear)
        {
            return index;
        }

        var shift = ((index - Linear) / Sub) + 1;
        var top = ((index - Linear) % Sub) + Sub;
        return ((top + 1L) << shift) - 1;
    }
}
