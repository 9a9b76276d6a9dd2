using System.Globalization;

namespace Presence.Agent.Host;

/// <summary>
/// Parses the <c>/proc</c> files the agent reports from. Every method returns null for text it does not understand:
/// a malformed file costs its metric, never the heartbeat.
/// </summary>
internal static class ProcParser
{
    /// <summary>
    /// The aggregate <c>cpu</c> line of <c>/proc/stat</c>: <c>cpu user nice system idle iowait irq softirq steal guest guest_nice</c>.
    /// Idle time is <c>idle + iowait</c>; guest time is already inside <c>user</c>/<c>nice</c>, so it is not added again.
    /// </summary>
    public static CpuTimes? ParseStat(string text)
    {
        foreach (var range in text.AsSpan().Split('\n'))
        {
            var line = text.AsSpan()[range];
            if (!line.StartsWith("cpu ", StringComparison.Ordinal))
            {
                continue;
            }

            Span<ulong> fields = stackalloc ulong[8];
            var count = 0;
            foreach (var part in line[4..].Split(' '))
            {
                var field = line[4..][part];
                if (field.IsEmpty)
                {
                    continue;
                }

                if (!ulong.TryParse(field, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
                {
                    return null;
                }

                if (count < fields.Length)
                {
                    fields[count] = value;
                }

                count++;
            }

            // user nice system idle are in every kernel; iowait irq softirq steal only in newer ones (0 when absent).
            if (count < 4)
            {
                return null;
            }

            ulong total = 0;
            for (var i = 0; i < Math.Min(count, fields.Length); i++)
            {
                total += fields[i];
            }

            var idle = fields[3] + (count > 4 ? fields[4] : 0);
            return new CpuTimes(total - idle, total);
        }

        return null;
    }

    /// <summary><c>MemTotal</c> and <c>MemAvailable</c> of <c>/proc/meminfo</c> (kernels before 3.14 lack the latter: <c>MemFree + Buffers + Cached</c>).</summary>
    public static MemoryInfo? ParseMemInfo(string text)
    {
        // MemTotal, MemAvailable, MemFree, Buffers, Cached; -1: not seen.
        Span<long> values = [-1, -1, -1, -1, -1];
        foreach (var range in text.AsSpan().Split('\n'))
        {
            var line = text.AsSpan()[range];
            var colon = line.IndexOf(':');
            var index = colon <= 0 ? -1 : MemInfoKey(line[..colon]);
            if (index < 0)
            {
                continue;
            }

            var value = line[(colon + 1)..].Trim();
            var unit = 1L;
            if (value.EndsWith(" kB", StringComparison.Ordinal))
            {
                value = value[..^3].TrimEnd();
                unit = 1024;
            }

            if (!long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var amount) || amount > long.MaxValue / unit / 4)
            {
                return null;
            }

            values[index] = amount * unit;
        }

        var (total, available) = (values[0], values[1]);
        if (available < 0 && values[2] >= 0 && values[3] >= 0 && values[4] >= 0)
        {
            available = values[2] + values[3] + values[4];
        }

        return total > 0 && available >= 0 && available <= total ? new MemoryInfo(total, available) : null;
    }

    private static int MemInfoKey(ReadOnlySpan<char> key) => key switch
    {
        "MemTotal" => 0,
        "MemAvailable" => 1,
        "MemFree" => 2,
        "Buffers" => 3,
        "Cached" => 4,
        _ => -1,
    };

    /// <summary>The first number of <c>/proc/uptime</c>: seconds since boot.</summary>
    public static double? ParseUptime(string text) => FirstNumber(text);

    /// <summary>The first number of <c>/proc/loadavg</c>: the one-minute load average.</summary>
    public static double? ParseLoadAverage(string text) => FirstNumber(text);

    private static double? FirstNumber(string text)
    {
        var span = text.AsSpan().TrimStart();
        var end = span.IndexOfAny(' ', '\n', '\t');
        var first = end < 0 ? span.TrimEnd() : span[..end];
        return double.TryParse(first, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) && double.IsFinite(value)
            ? value
            : null;
    }
}
