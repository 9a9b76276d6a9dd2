using System.Text.Json.Nodes;
using Presence.Runner.Hosting;

namespace Presence.Runner.Scenarios;

/// <summary>The load of one heartbeat throughput measurement: the throughput scenario's shape.</summary>
internal sealed record HeartbeatLoad(int Connections, double Duration, double Warmup, int Devices, int Pipeline);

/// <summary>
/// One heartbeat throughput measurement, shared by the scenarios that compare two servers or two configurations under
/// the same load: one load generator run (raw client, warm-up, measured window, the server's CPU over that window)
/// against a fresh server process.
/// </summary>
internal static class HeartbeatRun
{
    /// <summary>Starts the server, measures, stops it.</summary>
    public static async Task<JsonObject> MeasureAsync(
        ScenarioContext context, string name, string dll, IReadOnlyList<string> serverArgs, HeartbeatLoad load)
    {
        await using var server = await ServerProcess.StartAsync(name, dll, serverArgs, context.LogDir, context.CancellationToken);
        return await MeasureAsync(context, server, load);
    }

    /// <summary>Measures a running server (e.g. one that was prepared first); <paramref name="loadArguments"/> go to the load generator too.</summary>
    public static async Task<JsonObject> MeasureAsync(ScenarioContext context, ServerProcess server, HeartbeatLoad load, IReadOnlyList<string>? loadArguments = null)
    {
        var loadAverage = ProcStats.LoadAverage();
        var threadsBefore = ProcStats.CpuByThreadName(server.Pid);
        var report = await LoadGenProcess.RunAsync(context.Paths,
        [
            "--url", server.Url.ToString(),
            "--connections", Figures.Text(load.Connections),
            "--duration", Figures.Text(load.Duration),
            "--warmup", Figures.Text(load.Warmup),
            "--devices", Figures.Text(load.Devices),
            "--pipeline", Figures.Text(load.Pipeline),
            "--client", "raw",
            "--server-pid", Figures.Text(server.Pid),
            .. loadArguments ?? [],
        ], TimeSpan.FromSeconds(load.Duration + load.Warmup + 60), context.CancellationToken);
        var figures = Figures.Load(report);
        figures["server"] = server.Name;

        // Whole run, warm-up included: shows how much went to JIT (".NET Tiered Com") and GC (".NET BGC").
        figures["server_cpu_s_by_thread"] = ProcStats.CpuDelta(threadsBefore, ProcStats.CpuByThreadName(server.Pid));
        figures["server_rss_mb"] = Figures.Round(server.RssBytes / 1048576.0, 1);
        figures["load_average_1m_before"] = loadAverage;
        return figures;
    }

    /// <summary>Responses other than 200 in a run's measured window, plus requests that got no response (whole run).</summary>
    public static long NotOk(JsonNode run) =>
        run["status"]!.AsObject().Where(s => s.Key != "200").Sum(s => (long)s.Value!) + (long)run["errors"]!;
}
