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
