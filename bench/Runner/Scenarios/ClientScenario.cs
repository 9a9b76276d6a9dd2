using System.Globalization;
using System.Text.Json.Nodes;
using Presence.Runner.Hosting;

namespace Presence.Runner.Scenarios;

/// <summary>
/// Which load generator client to use: raw sockets or <c>SocketsHttpHandler</c>, each against the same bare Kestrel
/// process with the same connections. On a 2-core machine shared with the server, the client that needs less CPU per
/// request leaves more to the server, so it is the one that can saturate it.
/// </summary>
internal static class ClientScenario
{
    public static async Task<JsonObject> RunAsync(ScenarioContext context)
    {
        var connections = context.Int("connections", 64, 64);
        var duration = context.Number("duration", 5, 10);
        var warmup = context.Number("warmup", 3, 5);
        var result = context.NewResult("client", new JsonObject
        {
            ["connections"] = connections,
            ["duration_s"] = duration,
            ["warmup_s"] = warmup,
            ["server"] = "bare-kestrel",
        });

        await using var server = await ServerProcess.StartAsync("bare-kestrel", context.Paths.BareKestrel, [], context.LogDir, context.CancellationToken);
        var runs = new JsonObject();

        // The first run would pay the server's JIT tiering: warm it up with an unmeasured one.
        foreach (var client in new[] { "warm-up", "raw", "http" })
        {
            Console.WriteLine($"  client: {client}");
            var report = await LoadGenProcess.RunAsync(context.Paths,
            [
                "--url", server.Url.ToString(), "--client", client == "warm-up" ? "raw" : client,
                "--connections", connections.ToString(CultureInfo.InvariantCulture),
                "--duration", duration.ToString(CultureInfo.InvariantCulture),
                "--warmup", warmup.ToString(CultureInfo.InvariantCulture),
                "--server-pid", server.Pid.ToString(CultureInfo.InvariantCulture),
            ], TimeSpan.FromSeconds(duration + warmup + 60), context.CancellationToken);
            if (client != "warm-up")
            {
                runs[client] = Figures.Load(report);
            }
        }

        result["runs"] = runs;
        var raw = (double)runs["raw"]!["client_cpu_us_per_request"]!;
        var http = (double)runs["http"]!["client_cpu_us_per_request"]!;
        result["chosen"] = raw <= http ? "raw" : "http";
        result["cpu_per_request_http_over_raw"] = Figures.Round(http / Math.Max(raw, 0.001), 2);
        return result;
    }
}
