using System.Collections.Concurrent;

namespace Presence.Runtime.Silo;

/// <summary>Accepted heartbeats per tenant over the last minute, in one-second buckets (for <c>/api/v1/stats</c>).</summary>
internal sealed class TenantActivity
{
    private readonly ConcurrentDictionary<string, Counter> _tenants = new(StringComparer.Ordinal);

    public void Record(string tenantId, DateTime now) =>
        _tenants.GetOrAdd(tenantId, static _ => new Counter()).Add(now);

    public long LastMinute(string tenantId, DateTime now) =>
        _tenants.TryGetValue(tenantId, out var counter) ? counter.Sum(now) : 0;

    private sealed class Counter
    {
        private const int Buckets = 60;
        private readonly long[] _counts = new long[Buckets];
        private readonly long[] _seconds = new long[Buckets];

        public void Add(DateTime now)
        {
            var second = now.Ticks / TimeSpan.TicksPerSecond;
            var i = (int)(second % Buckets);
            if (Volatile.Read(ref _seconds[i]) != second)
            {
                lock (this)
                {
                    if (_seconds[i] != second)
                    {
                        _counts[i] = 0;
                        Volatile.Write(ref _seconds[i], second);
                    }
                }
            }

            Interlocked.Increment(ref _counts[i]);
        }

        public long Sum(DateTime now)
        {
            var second = now.Ticks / TimeSpan.TicksPerSecond;
            long sum = 0;
            for (var i = 0; i < Buckets; i++)
            {
                if (second - Volatile.Read(ref _seconds[i]) < Buckets)
                {
                    sum += Volatile.Read(ref _counts[i]);
                }
            }

            return sum;
        }
    }
}
