using System.Globalization;
using System.Text.Json.Nodes;
using Presence.Runner.Hosting;
using Presence.Runner.Reporting;
using Presence.Runner.Scenarios;

namespace Presence.Runner;

/// <summary>The runner's command line: one scenario (or <c>report</c>) per invocation.</summary>
internal static class BenchCommand
{
    private const string Usage = """
        Presence.Runner <scenario> [--full] [--out DIR] [--pidfile FILE] [--root DIR] [--configuration Release] [scenario options]
          client      raw sockets vs SocketsHttpHandler load generator         [--connections 64 --duration S --warmup S]
          simulator   one fleet simulator process (src/Agent --simulate) vs bare Kestrel: heartbeats/s at full speed and paced
                                                                               [--devices N --duration S --rate R --churn PCT]
          throughput  gateway vs bare Kestrel heartbeat req/s                  [--connections 16,64,128 --duration S --warmup S --rounds R --devices N --pipeline K]
          memory      RSS per tracked device                                   [--devices N --connections C --settle-seconds S]
          storm       N simultaneous timeouts + heartbeat p99 of live devices  [--devices N --timeout S --probe-rate R --probe-devices N --no-freeze --default-event-limits]
          delivery    heartbeat -> /ws/events latency                          [--rate R --duration S --background-rate R]
          postgres    postgres vs memory storage: steady heartbeats, registration burst, store round trips
                      (starts a throwaway PostgreSQL; skipped without its binaries)
                                                                               [--connections 16,64,128 --duration S --warmup S --rounds R --devices N
                                                                                --register-devices N --register-warmup N --register-connections C
                                                                                --register-rounds R --parts steady,registration --flush-interval S
                                                                                --pg-bin DIR --no-pg-stat-statements]
          auth        device-token vs auth mode none heartbeat req/s (provisions the devices and their tokens first)
                                                                               [--connections 64 --duration S --warmup S --rounds R --windows W
                                                                                --rewarm S --devices N --pipeline K --provision-concurrency C]
          cluster     cluster (2 gateways in client mode + 2 silos) vs the embedded gateway, both on PostgreSQL: heartbeat
                      throughput, failover after a silo is killed, heartbeat -> /ws/events across gateways
                      (starts a throwaway PostgreSQL; skipped without its binaries)
                                                                               [--connections 64 --duration S --warmup S --rounds R --devices N
                                                                                --failover-devices N --failover-rate R --rate R --delivery-duration S
                                                                                --background-rate R --parts throughput,failover,delivery --pg-bin DIR --no-pg-stat-statements]
          report      print the results table of --out DIR
        Quick mode (default) uses small sizes; --full uses the budgets' sizes (1M devices).
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help")
        {
            Console.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }

        var scenario = args[0];
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 1; i < args.Length; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                Console.Error.WriteLine($"unexpected argument '{arg}'\n{Usage}");
                return 2;
            }

            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                options[arg[2..eq]] = arg[(eq + 1)..];
            }
            else if (i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                options[arg[2..]] = args[++i];
            }
            else
            {
                options[arg[2..]] = "true";
            }
        }

        var outDir = Path.GetFullPath(options.GetValueOrDefault("out")
            ?? Path.Combine("bench", "results", DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)));
        if (scenario == "report")
        {
            Console.Write(ResultsTable.Render(outDir));
            return 0;
        }

        ChildProcesses.Install(options.GetValueOrDefault("pidfile"));
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };

        var paths = new BenchPaths(options.GetValueOrDefault("root") ?? BenchPaths.FindRoot(), options.GetValueOrDefault("configuration") ?? "Release");
        var context = new ScenarioContext(paths, outDir, options.ContainsKey("full"), options, cancel.Token);
        Func<ScenarioContext, Task<JsonObject>>? run = scenario switch
        {
            "client" => ClientScenario.RunAsync,
            "simulator" => SimulatorScenario.RunAsync,
            "throughput" => ThroughputScenario.RunAsync,
            "memory" => MemoryScenario.RunAsync,
            "storm" => StormScenario.RunAsync,
            "delivery" => DeliveryScenario.RunAsync,
            "postgres" => PostgresScenario.RunAsync,
            "auth" => AuthScenario.RunAsync,
            "cluster" => ClusterScenario.RunAsync,
            _ => null,
        };
        if (run is null)
        {
            Console.Error.WriteLine($"unknown scenario '{scenario}'\n{Usage}");
            return 2;
        }

        Console.WriteLine($"== {scenario} ({context.Mode} mode), results in {outDir}");
        var result = await run(context);
        Console.WriteLine($"  saved {context.Save(result)}");
        return 0;
    }
}
