using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Presence.Agent.Simulation;
using Presence.Runner.Hosting;

namespace Presence.Runner.Scenarios;

/// <summary>
/// What one fleet simulator process (<c>src/Agent --simulate</c>, the project's standard load generator) can drive,
/// against bare Kestrel so that the server is as cheap as it gets: first at full speed (a <c>--rate</c> far above
/// what the machine serves, so every device is always due and each of the 64 connections sends its next heartbeat as
/// soon as the last one is answered), then paced at the goal rate. Simulator and server share the machine's cores, as
/// in every benchmark that uses the simulator. Figures are the simulator's own, after its first progress interval
/// (start-up and JIT excluded). Goal: &gt;= 20,000 heartbeats/s at full speed, and the paced run within 2% of its rate.
/// </summary>
internal static class SimulatorScenario
{
    public const double Goal = 20_000;

    /// <summary>A --rate no machine serves: the schedule is always behind, the loops never wait.</summary>
    private const double FullSpeed = 10_000_000;

    public static async Task<JsonObject> RunAsync(ScenarioContext context)
    {
        var devices = context.Int("devices", 10_000, 100_000);
        var duration = context.Number("duration", 20, 40);
        var rate = context.Number("rate", Goal, Goal);
        var churn = context.Number("churn", 0, 0);
        var result = context.NewResult("simulator", new JsonObject
        {
            ["devices"] = devices,
            ["duration_s"] = duration,
            ["paced_rate"] = rate,
            ["churn_percent"] = churn,
            ["server"] = "bare-kestrel",
        });

        await using var server = await ServerProcess.StartAsync("bare-kestrel", context.Paths.BareKestrel, [], context.LogDir, context.CancellationToken);
        var runs = new JsonObject();
        foreach (var (name, target) in new[] { ("full_speed", FullSpeed), ("paced", rate) })
        {
            Console.WriteLine($"  simulator: {name.Replace('_', ' ')}");
            string[] arguments =
            [
                "--server", server.Url.ToString().TrimEnd('/'),
                "--simulate", Figures.Text(devices),
                "--rate", Figures.Text(target),
                "--duration", Figures.Text(duration),
                .. churn > 0 ? new[] { "--churn", Figures.Text(churn) } : [],
            ];
            var cpuBefore = server.Cpu;
            var started = Stopwatch.GetTimestamp();
            var summary = await SimulatorProcess.RunAsync(context.Paths, arguments, TimeSpan.FromSeconds(duration + 60), context.CancellationToken);
            var wall = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var serverCpu = (server.Cpu - cpuBefore).TotalSeconds;
            var run = Run(summary, serverCpu, wall);
            run["command"] = "dotnet src/Agent/bin/Release/net10.0/Presence.Agent.dll " + string.Join(' ', arguments);
            runs[name] = run;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  => {name.Replace('_', ' ')}: {(double?)run["steady_heartbeats_per_s"] ?? 0:N0} heartbeats/s (p99 {run["p99_ms"]} ms), simulator CPU {run["simulator_cpu_percent"]}% of a core ({run["simulator_cpu_us_per_heartbeat"]} us/heartbeat), {run["allocated_bytes_per_heartbeat"]} bytes allocated per heartbeat"));
        }

        result["runs"] = runs;
        var full = (double?)runs["full_speed"]!["steady_heartbeats_per_s"] ?? 0;
        var paced = (double?)runs["paced"]!["steady_heartbeats_per_s"] ?? 0;
        result["headline"] = new JsonObject
        {
            ["full_speed_heartbeats_per_s"] = full,
            ["paced_target"] = rate,
            ["paced_heartbeats_per_s"] = paced,
            ["paced_ratio"] = Figures.Round(paced / rate),
            ["goal"] = Goal,
            ["pass"] = full >= Goal && paced >= rate * 0.98 && NotOk(runs["full_speed"]!) + NotOk(runs["paced"]!) == 0,
        };
        return result;
    }

    /// <summary>Answers other than 200 and heartbeats without an answer.</summary>
    public static long NotOk(JsonNode run) => run["errors"]!.AsObject().Sum(e => (long)e.Value!);

    private static JsonObject Run(FleetSummary summary, double serverCpuSeconds, double wallSeconds) => new()
    {
        ["devices"] = summary.Devices,
        ["connections"] = summary.Connections,
        ["target_rate"] = summary.TargetRate,
        ["seconds"] = summary.Seconds,
        ["heartbeats"] = summary.Heartbeats,
        ["heartbeats_per_s"] = summary.HeartbeatsPerS,
        ["steady_heartbeats_per_s"] = summary.SteadyHeartbeatsPerS,
        ["ok"] = summary.Ok,
        ["errors"] = new JsonObject(summary.Errors.Where(e => e.Value > 0).Select(e => KeyValuePair.Create(e.Key, (JsonNode?)JsonValue.Create(e.Value)))),
        ["late"] = summary.Late,
        ["p50_ms"] = summary.LatencyMs.P50,
        ["p99_ms"] = summary.LatencyMs.P99,
        ["max_ms"] = summary.LatencyMs.Max,
        ["simulator_cpu_percent"] = summary.CpuPercent,
        ["simulator_cpu_us_per_heartbeat"] = Figures.Round(summary.CpuPercent / 100 * summary.Seconds * 1e6 / Math.Max(summary.Heartbeats, 1), 2),
        ["allocated_bytes_per_heartbeat"] = summary.AllocatedBytesPerHeartbeat,
        ["server_cpu_percent"] = Figures.Round(serverCpuSeconds / wallSeconds * 100, 1),
        ["server_cpu_us_per_heartbeat"] = Figures.Round(serverCpuSeconds * 1e6 / Math.Max(summary.Heartbeats, 1), 2),
    };
}
