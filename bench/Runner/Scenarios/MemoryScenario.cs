using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Presence.Runner.Hosting;

namespace Presence.Runner.Scenarios;

/// <summary>
/// Memory per tracked device: the gateway's settled RSS with N devices (each registered, then heartbeating a second
/// time) minus its settled RSS when idle after a warm-up, divided by N. Default settings except the rate limit.
/// Budget: &lt;= 512 bytes per device at 1M devices.
/// </summary>
internal static class MemoryScenario
{
    public const double GoalBytesPerDevice = 512;

    public static async Task<JsonObject> RunAsync(ScenarioContext context)
    {
        var devices = context.Int("devices", 100_000, 1_000_000);
        var connections = context.Int("connections", 64, 64);
        var settleBound = context.Number("settle-seconds", 30, 60);
        string[] serverArgs = ["--Presence:RateLimit:HeartbeatsPerMinute=1000000"];
        var result = context.NewResult("memory", new JsonObject
        {
            ["devices"] = devices,
            ["connections"] = connections,
            ["settle_bound_s"] = settleBound,
            ["gateway_args"] = string.Join(' ', serverArgs),
        });

        await using var server = await ServerProcess.StartAsync("gateway", context.Paths.Gateway, serverArgs, context.LogDir, context.CancellationToken);
        using var api = new ServerApi(server.Url);
        var url = server.Url.ToString();
        var startRss = server.RssBytes;

        Console.WriteLine("  memory: warm-up");
        await LoadGenProcess.RunAsync(context.Paths,
            ["--url", url, "--connections", "8", "--requests", "2000", "--devices", "100", "--ids", "sequential", "--id-prefix", "warm-"],
            TimeSpan.FromMinutes(2), context.CancellationToken);
        var idle = await SettleAsync(server, settleBound, context.CancellationToken);
        var idleCollected = await AfterFullCollectionAsync(server, settleBound, context.CancellationToken);
        Console.WriteLine($"  memory: idle RSS {Mb(idle.Rss)} MB (settled: {idle.Settled}), {Mb(idleCollected)} MB after a full GC");

        Console.WriteLine($"  memory: registering {devices:N0} devices");
        var register = await LoadGenProcess.RunAsync(context.Paths, Round(url, devices, connections, server.Pid), TimeSpan.FromMinutes(30), context.CancellationToken);
        var afterRegister = server.RssBytes;
        Console.WriteLine($"  memory: second heartbeat for each device (RSS now {Mb(afterRegister)} MB)");
        var second = await LoadGenProcess.RunAsync(context.Paths, Round(url, devices, connections, server.Pid), TimeSpan.FromMinutes(30), context.CancellationToken);
        var afterSecond = server.RssBytes;
        var loaded = await SettleAsync(server, settleBound, context.CancellationToken);
        var stats = await api.StatsAsync(context.CancellationToken);
        var perDevice = (loaded.Rss - idle.Rss) / (double)devices;
        var loadedCollected = await AfterFullCollectionAsync(server, settleBound, context.CancellationToken);
        var perDeviceCollected = (loadedCollected - idleCollected) / (double)devices;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  memory: settled RSS {Mb(loaded.Rss)} MB => {perDevice:F0} bytes/device (goal <= {GoalBytesPerDevice}); after a full GC {Mb(loadedCollected)} MB => {perDeviceCollected:F0} bytes/device"));

        result["rss_at_start_mb"] = Mb(startRss);
        result["idle_rss_mb"] = Mb(idle.Rss);
        result["idle_settled"] = idle.Settled;
        result["rss_after_registration_mb"] = Mb(afterRegister);
        result["rss_after_second_round_mb"] = Mb(afterSecond);
        result["loaded_rss_mb"] = Mb(loaded.Rss);
        result["loaded_settled"] = loaded.Settled;
        result["settle_seconds"] = loaded.Seconds;
        result["peak_rss_mb"] = Mb(ProcStats.PeakRssBytes(server.Pid));
        result["idle_rss_after_full_gc_mb"] = Mb(idleCollected);
        result["loaded_rss_after_full_gc_mb"] = Mb(loadedCollected);
        result["bytes_per_device_after_full_gc"] = Math.Round(perDeviceCollected, 1);
        result["bytes_per_device"] = Math.Round(perDevice, 1);
        result["goal_bytes_per_device"] = GoalBytesPerDevice;
        result["pass"] = perDevice <= GoalBytesPerDevice;
        result["registration"] = Figures.Load(register);
        result["second_round"] = Figures.Load(second);
        result["server_stats"] = stats;
        return result;
    }

    /// <summary>
    /// RSS after the server ran a full blocking GC and settled again: what remains is live data plus what the GC keeps
    /// committed. A diagnostic beside the budget's figure, which is the settled RSS of the undisturbed process.
    /// </summary>
    private static async Task<long> AfterFullCollectionAsync(ServerProcess server, double settleBound, CancellationToken cancellationToken)
    {
        if (!await FullGarbageCollection.RunAsync(server.Pid, cancellationToken))
        {
            Console.WriteLine("  memory: could not trigger a GC through the diagnostics socket");
        }

        return (await SettleAsync(server, settleBound, cancellationToken)).Rss;
    }

    private static string[] Round(string url, int devices, int connections, int serverPid) =>
    [
        "--server-pid", serverPid.ToString(CultureInfo.InvariantCulture),
        "--url", url,
        "--connections", connections.ToString(CultureInfo.InvariantCulture),
        "--requests", devices.ToString(CultureInfo.InvariantCulture),
        "--devices", devices.ToString(CultureInfo.InvariantCulture),
        "--ids", "sequential",
        "--id-prefix", "sim-",
        "--max-seconds", "1800",
    ];

    /// <summary>
    /// Polls RSS once a second until the last 5 samples are within 1% (or 2 MB) of each other, at most
    /// <paramref name="boundSeconds"/>; returns the last sample and whether it settled.
    /// </summary>
    public static async Task<(long Rss, bool Settled, double Seconds)> SettleAsync(ServerProcess server, double boundSeconds, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var window = new Queue<long>();
        while (true)
        {
            var rss = server.RssBytes;
            window.Enqueue(rss);
            if (window.Count > 5)
            {
                window.Dequeue();
            }

            var elapsed = Figures.Seconds(started, Stopwatch.GetTimestamp());
            if (window.Count == 5 && window.Max() - window.Min() <= Math.Max(rss / 100, 2 << 20))
            {
                return (rss, true, elapsed);
            }

            if (elapsed >= boundSeconds)
            {
                return (rss, false, elapsed);
            }

            await Task.Delay(1000, cancellationToken);
        }
    }

    private static double Mb(long bytes) => Math.Round(bytes / 1048576.0, 1);
}
