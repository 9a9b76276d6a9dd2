namespace Presence.Agent.Host;

/// <summary>
/// Reads the host's metrics from a <c>/proc</c> tree (the host's own, or the host's mounted into a container at
/// <c>/host/proc</c>). CPU usage is the busy share of the CPU time that passed since the previous read; the first
/// read has only the counters since boot to go by, so it reports the average since boot.
/// </summary>
internal sealed class ProcMetricsReader(string procRoot)
{
    /// <summary>
    /// One CPU-second (USER_HZ is 100): a shorter window (a <c>report</c> right after a heartbeat) measures noise, so
    /// the last value stands and the window keeps growing.
    /// </summary>
    private const ulong MinWindowTicks = 100;

    private readonly Lock _lock = new();
    private CpuTimes _previousCpu;
    private double? _lastCpuPct;

    public string ProcRoot { get; } = procRoot;

    public HostMetrics Read()
    {
        var memory = Parse("meminfo", ProcParser.ParseMemInfo);
        return new HostMetrics(
            CpuPct(Parse("stat", ProcParser.ParseStat)),
            memory?.Percent,
            memory?.Used,
            Parse("uptime", ProcParser.ParseUptime),
            Parse("loadavg", ProcParser.ParseLoadAverage));
    }

    private double? CpuPct(CpuTimes? sample)
    {
        if (sample is not { } now)
        {
            return null;
        }

        lock (_lock)
        {
            if (_lastCpuPct is not null && now.Total >= _previousCpu.Total && now.Total - _previousCpu.Total < MinWindowTicks)
            {
                return _lastCpuPct;
            }

            if (now.BusyPercentSince(_previousCpu) is { } pct)
            {
                _lastCpuPct = pct;
            }

            _previousCpu = now;
            return _lastCpuPct;
        }
    }

    private T? Parse<T>(string file, Func<string, T?> parse)
        where T : struct
    {
        try
        {
            // /proc files report a size of 0 and are generated on read; a small read is all they need.
            return parse(File.ReadAllText(Path.Combine(ProcRoot, file)));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
