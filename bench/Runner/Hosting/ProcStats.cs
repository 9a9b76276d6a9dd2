using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;

namespace Presence.Runner.Hosting;

/// <summary>What Linux says about a process and the machine (<c>/proc</c>), without any diagnostics client in the server.</summary>
internal static class ProcStats
{
    /// <summary>Resident set size (<c>VmRSS</c>), bytes.</summary>
    public static long RssBytes(int pid) => StatusKilobytes(pid, "VmRSS:") * 1024;

    /// <summary>Peak resident set size (<c>VmHWM</c>), bytes.</summary>
    public static long PeakRssBytes(int pid) => StatusKilobytes(pid, "VmHWM:") * 1024;

    /// <summary>User plus system CPU time of the process so far.</summary>
    public static TimeSpan Cpu(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return process.TotalProcessorTime;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return TimeSpan.Zero;
        }
    }

    /// <summary>
    /// CPU seconds per thread name (<c>/proc/PID/task/*/stat</c>, e.g. ".NET TP Worker", ".NET Sockets", ".NET BGC"):
    /// the difference of two samples shows which kind of thread a phase kept busy. Assumes 100 clock ticks a second.
    /// </summary>
    public static Dictionary<string, double> CpuByThreadName(int pid)
    {
        var byName = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(task, "stat"));
            }
            catch (IOException)
            {
                continue; // the thread ended
            }

            var open = stat.IndexOf('(', StringComparison.Ordinal);
            var close = stat.LastIndexOf(')');
            var name = stat[(open + 1)..close];
            var fields = stat[(close + 2)..].Split(' ');
            var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            byName[name] = byName.GetValueOrDefault(name) + (ticks / 100.0);
        }

        return byName;
    }

    /// <summary>The CPU seconds each thread name used between two <see cref="CpuByThreadName"/> samples, busiest first.</summary>
    public static JsonObject CpuDelta(Dictionary<string, double> before, Dictionary<string, double> after)
    {
        var delta = new JsonObject();
        foreach (var (name, seconds) in after.Select(a => (a.Key, a.Value - before.GetValueOrDefault(a.Key))).Where(d => d.Item2 > 0.005).OrderByDescending(d => d.Item2))
        {
            delta[name] = Math.Round(seconds, 2);
        }

        return delta;
    }

    /// <summary>1-minute load average: how busy the shared machine was around a measurement.</summary>
    public static double LoadAverage()
    {
        var text = File.ReadAllText("/proc/loadavg");
        return double.Parse(text.AsSpan(0, text.IndexOf(' ', StringComparison.Ordinal)), CultureInfo.InvariantCulture);
    }

    public static JsonObject Machine() => new()
    {
        ["cpu_model"] = CpuModel(),
        ["cores"] = Environment.ProcessorCount,
        ["memory_gib"] = Math.Round(MemTotalKilobytes() / 1024.0 / 1024.0, 1),
        ["os"] = OsName(),
        ["dotnet"] = RuntimeInformation.FrameworkDescription,
        ["load_average_1m"] = LoadAverage(),
    };

    private static long StatusKilobytes(int pid, string key)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith(key, StringComparison.Ordinal))
            {
                var digits = line.AsSpan(key.Length).Trim().TrimEnd("kB").Trim();
                return long.Parse(digits, CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }

    private static string CpuModel()
    {
        var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
        return line is null ? "unknown" : line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
    }

    private static long MemTotalKilobytes()
    {
        var line = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
        return long.Parse(line.AsSpan(9).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture);
    }

    private static string OsName()
    {
        const string Key = "PRETTY_NAME=";
        var line = File.Exists("/etc/os-release")
            ? File.ReadLines("/etc/os-release").FirstOrDefault(l => l.StartsWith(Key, StringComparison.Ordinal))
            : null;
        return line is null ? RuntimeInformation.OSDescription : line[Key.Length..].Trim('"');
    }
}
