namespace Presence.Agent.Host;

/// <summary>
/// The host's metrics as the contract's well-known keys; a metric the host did not yield (a missing or malformed
/// file) is null and is left out of the heartbeat.
/// </summary>
internal sealed record HostMetrics(double? CpuPct, double? MemPct, long? MemUsedBytes, double? UptimeS, double? Load1)
{
    public static readonly HostMetrics None = new(null, null, null, null, null);
}

/// <summary>Cumulative CPU time from the first line of <c>/proc/stat</c>, in clock ticks.</summary>
internal readonly record struct CpuTimes(ulong Busy, ulong Total)
{
    /// <summary>
    /// Percentage of the time between <paramref name="earlier"/> and this sample the CPUs were busy; null when no
    /// time passed between them (or the counters went backwards, as after a counter reset).
    /// </summary>
    public double? BusyPercentSince(CpuTimes earlier)
    {
        if (Total <= earlier.Total || Busy < earlier.Busy)
        {
            return null;
        }

        var busy = (double)(Busy - earlier.Busy) / (Total - earlier.Total) * 100;
        return Math.Round(Math.Clamp(busy, 0, 100), 2);
    }
}

/// <summary>Memory from <c>/proc/meminfo</c>, in bytes.</summary>
internal readonly record struct MemoryInfo(long Total, long Available)
{
    public long Used => Total - Available;

    public double Percent => Math.Round((double)Used / Total * 100, 2);
}
