using System.Globalization;
using System.Text.Json.Nodes;

namespace Presence.Runner.Scenarios;

/// <summary>
/// Heartbeat throughput of the embedded gateway against bare Kestrel parsing the same JSON into a dictionary: for each
/// connection count, each server in a fresh process gets the same load generator run (same connections, duration,
/// warm-up, bodies). Rounds alternate which server goes first, so drift on the shared machine hits both alike.
/// Budget: gateway &gt;= 90% of the baseline.
/// </summary>
internal static class ThroughputScenario
{
    public const double Goal = 0.9;

    public static async Task<JsonObject> RunAsync(ScenarioContext context)
    {
        var counts = context.IntList("connections", "16,64,128", "16,64,128");
        var duration = context.Number("duration", 5, 15);
        var warmup = context.Number("warmup", 8, 10);
        var devices = context.Int("devices", 10_000, 10_000);
        var rounds = context.Int("rounds", 1, 2);
        var pipeline = context.Int("pipeline", 1, 1);
        var result = context.NewResult("throughput", new JsonObject
        {
            ["connections"] = string.Join(',', counts),
            ["duration_s"] = duration,
            ["warmup_s"] = warmup,
            ["devices"] = devices,
            ["rounds"] = rounds,
            ["pipeline"] = pipeline,
            ["client"] = "raw",
            ["gateway_args"] = string.Join(' ', GatewayArgs),
        });

        var rows = new JsonArray();
        JsonObject? headline = null;
        JsonObject? bestRatio = null;
        foreach (var connections in counts)
        {
            var load = new HeartbeatLoad(connections, duration, warmup, devices, pipeline);
            var bare = new List<JsonObject>();
            var gateway = new List<JsonObject>();
            for (var round = 0; round < rounds; round++)
            {
                Console.WriteLine($"  throughput: {connections} connections, round {round + 1}/{rounds}");
                var gatewayFirst = round % 2 == 1;
                if (gatewayFirst)
                {
                    gateway.Add(await HeartbeatRun.MeasureAsync(context, "gateway", context.Paths.Gateway, GatewayArgs, load));
                }

                bare.Add(await HeartbeatRun.MeasureAsync(context, "bare-kestrel", context.Paths.BareKestrel, [], load));
                if (!gatewayFirst)
                {
                    gateway.Add(await HeartbeatRun.MeasureAsync(context, "gateway", context.Paths.Gateway, GatewayArgs, load));
                }
            }

            var bareRps = Figures.Median(bare.Select(r => (double)r["rps"]!));
            var gatewayRps = Figures.Median(gateway.Select(r => (double)r["rps"]!));
            var row = new JsonObject
            {
                ["connections"] = connections,
                ["bare_rps"] = bareRps,
                ["gateway_rps"] = gatewayRps,
                ["ratio"] = Figures.Round(gatewayRps / Math.Max(bareRps, 1)),
                ["bare_cpu_us_per_request"] = Figures.Median(bare.Select(r => (double?)r["server_cpu_us_per_request"] ?? 0)),
                ["gateway_cpu_us_per_request"] = Figures.Median(gateway.Select(r => (double?)r["server_cpu_us_per_request"] ?? 0)),
                ["bare_p99_ms"] = Figures.Median(bare.Select(r => (double)r["p99_ms"]!)),
                ["gateway_p99_ms"] = Figures.Median(gateway.Select(r => (double)r["p99_ms"]!)),
                ["bare_runs"] = new JsonArray([.. bare]),
                ["gateway_runs"] = new JsonArray([.. gateway]),
            };
            // Server CPU per request is steadier than req/s on a shared machine: bare cost / gateway cost.
            row["cpu_ratio"] = Figures.Round((double)row["bare_cpu_us_per_request"]! / Math.Max((double)row["gateway_cpu_us_per_request"]!, 0.001));
            rows.Add(row);
            if (headline is null || bareRps > (double)headline["bare_rps"]!)
            {
                headline = row;
            }

            if (bestRatio is null || (double)row["ratio"]! > (double)bestRatio["ratio"]!)
            {
                bestRatio = row;
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  => {connections} connections: bare {bareRps:N0} req/s, gateway {gatewayRps:N0} req/s, ratio {(double)row["ratio"]!:F3}"));
        }

        result["by_connections"] = rows;
        if (headline is not null && bestRatio is not null)
        {
            // The fair comparison: both servers at the connection count where the baseline peaks.
            result["headline"] = new JsonObject
            {
                ["connections"] = (int)headline["connections"]!,
                ["bare_rps"] = (double)headline["bare_rps"]!,
                ["gateway_rps"] = (double)headline["gateway_rps"]!,
                ["ratio"] = (double)headline["ratio"]!,
                ["goal"] = Goal,
                ["pass"] = (double)headline["ratio"]! >= Goal,
                ["best_ratio"] = (double)bestRatio["ratio"]!,
                ["best_ratio_connections"] = (int)bestRatio["connections"]!,
                ["cpu_ratio"] = (double)headline["cpu_ratio"]!,
            };
        }

        return result;
    }

    private static readonly string[] GatewayArgs = ["--Presence:RateLimit:HeartbeatsPerMinute=1000000"];
}
