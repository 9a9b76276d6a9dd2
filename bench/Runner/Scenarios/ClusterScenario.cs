using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Presence.LoadGen;
using Presence.Runner.Hosting;

namespace Presence.Runner.Scenarios;

/// <summary>
/// Cluster mode (silos and gateways in client mode on one PostgreSQL database) against the embedded gateway on
/// PostgreSQL, in one run, on a throwaway PostgreSQL server (<see cref="PostgresProcess"/>; skipped without it). Every
/// measurement gets a fresh database.
/// <list type="number">
/// <item><b>Throughput</b>: the postgres scenario's steady load (the device set registered first, then random ids,
/// warm-up, measured window, closed loop) against one embedded gateway, and against 2 gateways + 2 silos with the
/// load generator's connections split over both gateways (one load generator process per gateway). Rounds alternate
/// which goes first. CPU per heartbeat over the measured window of every server process (and of PostgreSQL apart).
/// Goal: cluster &gt;= 0.6 x embedded.</item>
/// <item><b>Failover</b>: 2 silos and a gateway, devices heartbeating at a modest paced rate; one silo is killed
/// (SIGKILL) and the gateway's <c>GET /api/v1/cluster</c> is polled every 100 ms until no partition is unowned and the
/// dead silo owns none. Goal: &lt;= 10 s. The heartbeats' statuses and latencies around the crash are reported.</item>
/// <item><b>Delivery</b>: the delivery scenario's measurement (<see cref="DeliveryScenario.MeasureAsync"/>) against a
/// cluster of 2 gateways + 2 silos, the <c>/ws/events</c> reader on one gateway and the heartbeats sent to the other,
/// so each event crosses the durable log; before it, the same against one embedded gateway on PostgreSQL. Goal:
/// p99 &lt;= 250 ms.</item>
/// </list>
/// </summary>
internal static class ClusterScenario
{
    public const double GoalRatio = 0.6;
    public const double GoalFailoverSeconds = 10;
    public const double GoalDeliveryP99Ms = 250;

    private static readonly string[] GatewayArgs = ["--Presence:RateLimit:HeartbeatsPerMinute=1000000"];
    private static int _databases;

    public static async Task<JsonObject> RunAsync(ScenarioContext context)
    {
        var counts = context.IntList("connections", "64", "16,64,128");
        var duration = context.Number("duration", 5, 15);
        var warmup = context.Number("warmup", 8, 10);
        var devices = context.Int("devices", 10_000, 10_000);
        var rounds = context.Int("rounds", 2, 2);
        var failoverDevices = context.Int("failover-devices", 10_000, 10_000);
        var failoverRate = context.Number("failover-rate", 1_000, 1_000);
        var deliveryRate = context.Number("rate", 200, 200);
        var deliveryDuration = context.Number("delivery-duration", 10, 30);
        var background = context.Number("background-rate", 500, 1000);
        var parts = (context.Text("parts") ?? "throughput,failover,delivery").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var result = context.NewResult("cluster", new JsonObject
        {
            ["connections"] = string.Join(',', counts),
            ["duration_s"] = duration,
            ["warmup_s"] = warmup,
            ["devices"] = devices,
            ["rounds"] = rounds,
            ["failover_devices"] = failoverDevices,
            ["failover_rate"] = failoverRate,
            ["new_devices_per_s"] = deliveryRate,
            ["delivery_duration_s"] = deliveryDuration,
            ["background_heartbeats_per_s"] = background,
            ["parts"] = string.Join(',', parts),
            ["gateway_args"] = string.Join(' ', GatewayArgs),
            ["embedded_args"] = "--Presence:Storage:Provider=postgres --ConnectionStrings:Presence=... (a fresh database per measurement)",
            ["cluster_args"] = "silos: --ConnectionStrings:Presence=...; gateways: --Presence:Cluster:Mode=client --ConnectionStrings:Presence=...",
        });

        var (bin, missing) = PostgresProcess.FindBinaries(context.Text("pg-bin"));
        if (bin is null)
        {
            Console.WriteLine($"  cluster: SKIPPED: {missing}");
            result["skipped"] = true;
            result["skip_reason"] = missing;
            return result;
        }

        await using var pg = await PostgresProcess.StartAsync(bin, context.LogDir, !context.Flag("no-pg-stat-statements"), context.CancellationToken);
        result["postgres"] = await pg.DescribeAsync(context.CancellationToken);
        Console.WriteLine($"  cluster: PostgreSQL {result["postgres"]!["version"]} on port {pg.Port} (pid {pg.Pid})");
        if (parts.Contains("throughput"))
        {
            result["throughput"] = await ThroughputAsync(context, pg, counts, rounds, new HeartbeatLoad(0, duration, warmup, devices, 1));
        }

        if (parts.Contains("failover"))
        {
            result["failover"] = await FailoverAsync(context, pg, failoverDevices, failoverRate);
        }

        if (parts.Contains("delivery"))
        {
            (result["delivery_embedded"], result["delivery"]) = await DeliveryAsync(context, pg, deliveryRate, deliveryDuration, background);
        }

        return result;
    }

    private static async Task<JsonObject> ThroughputAsync(ScenarioContext context, PostgresProcess pg, IReadOnlyList<int> counts, int rounds, HeartbeatLoad shape)
    {
        var rows = new JsonArray();
        JsonObject? headline = null;
        foreach (var connections in counts)
        {
            var load = shape with { Connections = connections };
            var embedded = new List<JsonObject>();
            var cluster = new List<JsonObject>();
            for (var round = 0; round < rounds; round++)
            {
                Console.WriteLine($"  cluster: throughput, {connections} connections, round {round + 1}/{rounds}");
                var clusterFirst = round % 2 == 1;
                if (clusterFirst)
                {
                    cluster.Add(await ClusterThroughputAsync(context, pg, load));
                }

                embedded.Add(await EmbeddedThroughputAsync(context, pg, load));
                if (!clusterFirst)
                {
                    cluster.Add(await ClusterThroughputAsync(context, pg, load));
                }
            }

            double Median(List<JsonObject> runs, string name) => Figures.Median(runs.Select(r => (double?)r[name] ?? 0));
            var row = new JsonObject
            {
                ["connections"] = connections,
                ["embedded_rps"] = Median(embedded, "rps"),
                ["cluster_rps"] = Median(cluster, "rps"),
                ["ratio"] = Figures.Round(Median(cluster, "rps") / Math.Max(Median(embedded, "rps"), 1)),
                ["embedded_p50_ms"] = Median(embedded, "p50_ms"),
                ["embedded_p99_ms"] = Median(embedded, "p99_ms"),
                ["cluster_p50_ms"] = Median(cluster, "p50_ms"),
                ["cluster_p99_ms"] = Median(cluster, "p99_ms"),
                ["embedded_server_cpu_us_per_heartbeat"] = Median(embedded, "server_cpu_us_per_heartbeat"),
                ["embedded_db_cpu_us_per_heartbeat"] = Median(embedded, "db_cpu_us_per_heartbeat"),
                ["cluster_server_cpu_us_per_heartbeat"] = Median(cluster, "server_cpu_us_per_heartbeat"),
                ["cluster_db_cpu_us_per_heartbeat"] = Median(cluster, "db_cpu_us_per_heartbeat"),
                ["cluster_not_ok"] = cluster.Sum(r => (long)r["not_ok"]!),
                ["round_ratios"] = new JsonArray([.. embedded.Zip(cluster, (e, c) => (JsonNode)Figures.Round((double)c["rps"]! / Math.Max((double)e["rps"]!, 1)))]),
                ["embedded_runs"] = new JsonArray([.. embedded]),
                ["cluster_runs"] = new JsonArray([.. cluster]),
            };

            // All server-side CPU (gateways, silos, PostgreSQL) per heartbeat: embedded cost / cluster cost.
            row["cpu_ratio"] = Figures.Round(((double)row["embedded_server_cpu_us_per_heartbeat"]! + (double)row["embedded_db_cpu_us_per_heartbeat"]!) /
                Math.Max((double)row["cluster_server_cpu_us_per_heartbeat"]! + (double)row["cluster_db_cpu_us_per_heartbeat"]!, 0.001));
            rows.Add(row);
            if (headline is null || (double)row["embedded_rps"]! > (double)headline["embedded_rps"]!)
            {
                headline = row;
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  => {connections} connections: embedded {(double)row["embedded_rps"]!:N0} req/s, cluster {(double)row["cluster_rps"]!:N0} req/s, ratio {(double)row["ratio"]!:F3} (rounds {row["round_ratios"]!.ToJsonString()}), CPU ratio {(double)row["cpu_ratio"]!:F3}"));
        }

        var throughput = new JsonObject { ["by_connections"] = rows };
        if (headline is not null)
        {
            // As in the throughput and postgres scenarios: both at the connection count where the baseline peaks.
            throughput["headline"] = new JsonObject
            {
                ["connections"] = (int)headline["connections"]!,
                ["ratio"] = (double)headline["ratio"]!,
                ["cpu_ratio"] = (double)headline["cpu_ratio"]!,
                ["goal"] = GoalRatio,
                ["pass"] = (double)headline["ratio"]! >= GoalRatio && (long)headline["cluster_not_ok"]! == 0,
            };
        }

        return throughput;
    }

    /// <summary>The baseline: one embedded gateway owning every partition, PostgreSQL storage.</summary>
    private static async Task<JsonObject> EmbeddedThroughputAsync(ScenarioContext context, PostgresProcess pg, HeartbeatLoad load)
    {
        var database = await NewDatabaseAsync(pg, context.CancellationToken);
        JsonObject figures;
        await using (var server = await StartEmbeddedAsync(context, pg, database))
        {
            var registration = await RegisterAsync(context, [server.Url], load.Devices);
            var measuring = HeartbeatRun.MeasureAsync(context, server, load);
            var cpu = await CpuInWindowAsync(load, [(server.Name, server.Pid)], pg, context.CancellationToken);
            figures = await measuring;
            figures["mode"] = "embedded";
            figures["registration"] = registration;
            AddCpu(figures, cpu);
        }

        await DropDatabaseAsync(pg, database, context.CancellationToken);
        return figures;
    }

    /// <summary>2 silos and 2 gateways in client mode; one load generator per gateway with half the connections.</summary>
    private static async Task<JsonObject> ClusterThroughputAsync(ScenarioContext context, PostgresProcess pg, HeartbeatLoad load)
    {
        var database = await NewDatabaseAsync(pg, context.CancellationToken);
        JsonObject figures;
        await using (var cluster = await StartClusterAsync(context, pg, database, gateways: 2))
        {
            var balance = await WaitBalancedAsync(cluster, context.CancellationToken);
            var registration = await RegisterAsync(context, [.. cluster.Gateways.Select(g => g.Url)], load.Devices);
            var half = load with { Connections = Math.Max(load.Connections / 2, 1) };
            var measuring = Task.WhenAll(cluster.Gateways.Select(g => HeartbeatRun.MeasureAsync(context, g, half)));
            var cpu = await CpuInWindowAsync(load, [.. cluster.Processes], pg, context.CancellationToken);
            var runs = await measuring;
            figures = Combined(runs);
            figures["mode"] = "cluster";
            figures["registration"] = registration;
            figures["balance"] = balance;
            AddCpu(figures, cpu);
        }

        await DropDatabaseAsync(pg, database, context.CancellationToken);
        return figures;
    }

    /// <summary>
    /// The load generators' reports of one cluster run as one: req/s summed; p50 weighted by requests; p99 and max
    /// the worst gateway's (the percentiles of the union are not recoverable from the two summaries).
    /// </summary>
    private static JsonObject Combined(JsonObject[] runs)
    {
        var requests = runs.Sum(r => (long)r["requests"]!);
        return new JsonObject
        {
            ["connections"] = runs.Sum(r => (int)r["connections"]!),
            ["requests"] = requests,
            ["rps"] = Figures.Round(runs.Sum(r => (double)r["rps"]!), 1),
            ["p50_ms"] = Figures.Round(runs.Sum(r => (double)r["p50_ms"]! * (long)r["requests"]!) / Math.Max(requests, 1)),
            ["p99_ms"] = runs.Max(r => (double)r["p99_ms"]!),
            ["max_ms"] = runs.Max(r => (double)r["max_ms"]!),
            ["status"] = Status(runs.SelectMany(r => r["status"]!.AsObject()).Select(s => (s.Key, (long)s.Value!))),
            ["errors"] = runs.Sum(r => (long)r["errors"]!),
            ["not_ok"] = runs.Sum(r => HeartbeatRun.NotOk(r)),
            ["client_cpu_percent"] = Figures.Round(runs.Sum(r => (double?)r["client_cpu_percent"] ?? 0), 1),
            ["per_gateway"] = new JsonArray([.. runs]),
        };
    }

    private static async Task<JsonObject> FailoverAsync(ScenarioContext context, PostgresProcess pg, int devices, double rate)
    {
        const double BeforeSeconds = 5;
        const double AfterSeconds = 20;
        Console.WriteLine($"  cluster: failover, 2 silos + 1 gateway, {devices} devices at {rate} heartbeats/s, one silo killed");
        var database = await NewDatabaseAsync(pg, context.CancellationToken);
        var ct = context.CancellationToken;
        var failover = new JsonObject();
        await using (var cluster = await StartClusterAsync(context, pg, database, gateways: 1))
        {
            var gateway = cluster.Gateways[0];
            failover["balance"] = await WaitBalancedAsync(cluster, ct);
            failover["registration"] = await RegisterAsync(context, [gateway.Url], devices);
            var engine = new LoadEngine(new LoadOptions
            {
                Url = LoadOptions.EndpointUrl(gateway.Url.ToString()),
                Connections = 64,
                Devices = devices,
                Rate = rate,
                DurationSeconds = BeforeSeconds + AfterSeconds,
                KeepSamples = true,
                MaxSeconds = BeforeSeconds + AfterSeconds + 60,
            });
            var running = engine.RunAsync(ct);
            await Task.Delay(TimeSpan.FromSeconds(BeforeSeconds), ct);

            var victim = cluster.Silos[^1];
            using var api = new ServerApi(gateway.Url);
            var owned = SiloPartitions(await api.ClusterAsync(ct), victim.SiloId);
            var killedAt = Stopwatch.GetTimestamp();
            await victim.CrashAsync();
            await WaitRecoveredAsync(api, victim.SiloId, killedAt, failover, ct);
            var report = await running;

            failover["victim"] = victim.SiloId;
            failover["victim_partitions_at_kill"] = owned;
            var samples = engine.Samples();
            failover["heartbeats_before_kill"] = Figures.Requests(samples, 0, killedAt);
            failover["heartbeats_after_kill"] = Figures.Requests(samples, killedAt, long.MaxValue);
            failover["status_after_kill"] = StatusCounts(samples, killedAt);
            failover["heartbeats_503"] = samples.Count(s => s.StartTimestamp >= killedAt && s.Status == 503);

            // The client's view: when the last heartbeat that failed or took over a second ended.
            var stalled = samples.Where(s => s.EndTimestamp >= killedAt && (s.Status != 200 || Figures.Seconds(s.StartTimestamp, s.EndTimestamp) > 1)).ToList();
            failover["heartbeats_failed_or_slow"] = stalled.Count;
            failover["client_recovered_after_s"] = stalled.Count == 0 ? 0 : Figures.Seconds(killedAt, stalled.Max(s => s.EndTimestamp));
            failover["load"] = Figures.Load(report);
            var live = await pg.QueryAsync(
                "SELECT count(*) FROM presence_partitions p JOIN presence_silos s ON s.silo_id = p.owner WHERE s.status IN (0,1) AND p.lease_expires_at > now()",
                database, ct);
            failover["partitions_live_owned_at_end_sql"] = long.Parse(live[0][0], CultureInfo.InvariantCulture);
            failover["goal_s"] = GoalFailoverSeconds;
            failover["pass"] = failover["recovered_after_s"] is { } seconds && (double)seconds <= GoalFailoverSeconds;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  => failover: partitions re-owned {failover["recovered_after_s"]?.ToJsonString() ?? "never"} s after the kill (dead declared at {failover["declared_dead_after_s"]?.ToJsonString() ?? "-"} s); heartbeats: {failover["heartbeats_503"]} x 503, client recovered after {failover["client_recovered_after_s"]} s"));
        }

        await DropDatabaseAsync(pg, database, context.CancellationToken);
        return failover;
    }

    /// <summary>
    /// Polls the cluster view every 100 ms (bounded: 60 s) until no partition is unowned and the dead silo owns none;
    /// notes in <paramref name="recovery"/> when its leases were first seen expired and when it was first listed as dead.
    /// </summary>
    private static async Task WaitRecoveredAsync(ServerApi api, string victim, long killedAt, JsonObject recovery, CancellationToken ct)
    {
        var maxUnowned = 0;
        var polls = 0;
        while (Figures.Seconds(killedAt, Stopwatch.GetTimestamp()) < 60)
        {
            JsonObject view;
            try
            {
                view = await api.ClusterAsync(ct);
            }
            catch (HttpRequestException)
            {
                await Task.Delay(100, ct);
                continue;
            }

            polls++;
            var at = Figures.Seconds(killedAt, Stopwatch.GetTimestamp());
            var unowned = (int)view["partitions_unowned"]!;
            maxUnowned = Math.Max(maxUnowned, unowned);
            if (unowned > 0 && recovery["leases_expired_after_s"] is null)
            {
                recovery["leases_expired_after_s"] = at;
            }

            var status = view["silos"]!.AsArray().FirstOrDefault(s => (string)s!["silo_id"]! == victim)?["status"]?.GetValue<string>();
            if (status is "dead" or null && recovery["declared_dead_after_s"] is null)
            {
                recovery["declared_dead_after_s"] = at;
            }

            if (unowned == 0 && SiloPartitions(view, victim) == 0)
            {
                recovery["recovered_after_s"] = at;
                recovery["final_view"] = view;
                break;
            }

            await Task.Delay(100, ct);
        }

        recovery["max_unowned"] = maxUnowned;
        recovery["polls"] = polls;
    }

    private static int SiloPartitions(JsonObject view, string siloId) =>
        view["silos"]!.AsArray().Where(s => (string)s!["silo_id"]! == siloId).Sum(s => (int)s!["partitions"]!);

    private static JsonObject StatusCounts(List<RequestSample> samples, long from)
    {
        var counts = new JsonObject();
        foreach (var group in samples.Where(s => s.StartTimestamp >= from).GroupBy(s => s.Status).OrderBy(g => g.Key))
        {
            counts[group.Key == 0 ? "no_response" : group.Key.ToString(CultureInfo.InvariantCulture)] = group.LongCount();
        }

        return counts;
    }

    /// <summary>
    /// The cluster's delivery across gateways, and right before it, as a baseline, the same measurement against one
    /// embedded gateway on PostgreSQL (registrations are durable there too, which sets the heartbeats' own latency).
    /// </summary>
    private static async Task<(JsonObject Embedded, JsonObject Cluster)> DeliveryAsync(ScenarioContext context, PostgresProcess pg, double rate, double duration, double background)
    {
        var ct = context.CancellationToken;
        Console.WriteLine($"  cluster: delivery baseline, embedded gateway on PostgreSQL, {rate} new devices/s for {duration} s, background {background} heartbeats/s");
        var database = await NewDatabaseAsync(pg, ct);
        var embedded = new JsonObject();
        await using (var server = await StartEmbeddedAsync(context, pg, database))
        {
            await DeliveryScenario.MeasureAsync(context, server.Url, server.Url, rate, duration, background, GoalDeliveryP99Ms, embedded);
            embedded["statements"] = PostgresProcess.StatementsDelta([], await pg.StatementsAsync(database, ct));
        }

        await DropDatabaseAsync(pg, database, ct);
        Console.WriteLine($"  cluster: delivery, 2 silos + 2 gateways, {rate} new devices/s for {duration} s to gateway 2, background {background} heartbeats/s, /ws/events on gateway 1");
        database = await NewDatabaseAsync(pg, ct);
        var cluster = new JsonObject();
        await using (var processes = await StartClusterAsync(context, pg, database, gateways: 2))
        {
            cluster["balance"] = await WaitBalancedAsync(processes, ct);
            cluster["read_from"] = processes.Gateways[0].Name;
            cluster["sent_to"] = processes.Gateways[1].Name;
            await DeliveryScenario.MeasureAsync(context, processes.Gateways[0].Url, processes.Gateways[1].Url, rate, duration, background, GoalDeliveryP99Ms, cluster);

            // Where the durable registrations' time went in PostgreSQL (the whole life of the database), as for the baseline.
            cluster["statements"] = PostgresProcess.StatementsDelta([], await pg.StatementsAsync(database, ct));
        }

        await DropDatabaseAsync(pg, database, ct);
        return (embedded, cluster);
    }

    /// <summary>The baseline: one embedded gateway owning every partition, on a fresh database.</summary>
    private static Task<ServerProcess> StartEmbeddedAsync(ScenarioContext context, PostgresProcess pg, string database) =>
        ServerProcess.StartAsync("gateway-embedded", context.Paths.Gateway,
            [.. GatewayArgs, "--Presence:Storage:Provider=postgres", "--ConnectionStrings:Presence=" + pg.ConnectionString(database)], context.LogDir, context.CancellationToken);

    /// <summary>2 silos and the gateways on a fresh database.</summary>
    private static Task<LocalCluster> StartClusterAsync(ScenarioContext context, PostgresProcess pg, string database, int gateways) =>
        LocalCluster.StartAsync(context.Paths, pg.ConnectionString(database), silos: 2, gateways, GatewayArgs, context.LogDir, context.CancellationToken);

    /// <summary>
    /// Waits (bounded: 60 s) until every partition has a live owner and the silos share them (the second silo gets
    /// its half a hand-off batch per membership round); returns how they were shared when the wait ended.
    /// </summary>
    private static async Task<JsonObject> WaitBalancedAsync(LocalCluster cluster, CancellationToken ct)
    {
        using var api = new ServerApi(cluster.Gateways[0].Url);
        var started = Stopwatch.GetTimestamp();
        JsonObject view;
        bool balanced;
        do
        {
            view = await api.ClusterAsync(ct);
            var share = (int)view["partitions_total"]! / cluster.Silos.Count;
            balanced = (int)view["partitions_unowned"]! == 0 && cluster.Silos.All(s => SiloPartitions(view, s.SiloId) >= share * 0.9);
            if (!balanced)
            {
                await Task.Delay(200, ct);
            }
        }
        while (!balanced && Figures.Seconds(started, Stopwatch.GetTimestamp()) < 60);

        var balance = new JsonObject
        {
            ["balanced"] = balanced,
            ["after_s"] = Figures.Seconds(started, Stopwatch.GetTimestamp()),
            ["partitions"] = new JsonArray([.. cluster.Silos.Select(s => (JsonNode)SiloPartitions(view, s.SiloId))]),
        };
        if (!balanced)
        {
            Console.WriteLine($"  cluster: WARNING: partitions not shared after 60 s: {balance.ToJsonString()}");
        }

        return balance;
    }

    /// <summary>
    /// Registers the device set (one heartbeat each, sequential ids), as the postgres scenario does first; with several
    /// gateways each registers its share, so that every gateway is as warm (JIT tiering) as an embedded one.
    /// </summary>
    private static async Task<JsonObject> RegisterAsync(ScenarioContext context, IReadOnlyList<Uri> gateways, int devices)
    {
        var share = devices / gateways.Count;
        var reports = await Task.WhenAll(gateways.Select((gateway, i) => LoadGenProcess.RunAsync(context.Paths,
        [
            "--url", gateway.ToString(), "--connections", Figures.Text(64 / gateways.Count), "--requests", Figures.Text(share),
            "--devices", Figures.Text(share), "--id-start", Figures.Text(i * share), "--ids", "sequential", "--max-seconds", "600",
        ], TimeSpan.FromMinutes(11), context.CancellationToken)));
        return new JsonObject
        {
            ["devices"] = share * gateways.Count,
            ["rps"] = Figures.Round(reports.Sum(r => r.Rps), 1),
            ["p99_ms"] = reports.Max(r => r.LatencyMs.P99),
            ["status"] = Status(reports.SelectMany(r => r.Status).Select(s => (s.Key, s.Value))),
        };
    }

    /// <summary>Response counts by status code, summed over several load generators.</summary>
    private static JsonObject Status(IEnumerable<(string Code, long Count)> counts)
    {
        var status = new JsonObject();
        foreach (var group in counts.GroupBy(c => c.Code).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            status[group.Key] = group.Sum(c => c.Count);
        }

        return status;
    }

    /// <summary>
    /// CPU seconds of each server process and of PostgreSQL (postmaster and backends) over the load generators'
    /// measured window (they start within about a second): sampled after the warm-up, and again before the end.
    /// </summary>
    private static async Task<CpuWindow> CpuInWindowAsync(HeartbeatLoad load, IReadOnlyList<(string Name, int Pid)> servers, PostgresProcess pg, CancellationToken ct)
    {
        await Task.Delay(TimeSpan.FromSeconds(load.Warmup + 1), ct);
        var started = Stopwatch.GetTimestamp();
        var before = servers.Select(s => ProcStats.Cpu(s.Pid).TotalSeconds).ToArray();
        var dbBefore = pg.CpuSeconds();
        await Task.Delay(TimeSpan.FromSeconds(Math.Max(load.Duration - 1.5, 0.5)), ct);
        var byProcess = new JsonObject();
        for (var i = 0; i < servers.Count; i++)
        {
            byProcess[servers[i].Name] = Figures.Round(ProcStats.Cpu(servers[i].Pid).TotalSeconds - before[i], 2);
        }

        var db = pg.CpuSeconds() - dbBefore;
        return new CpuWindow(Figures.Seconds(started, Stopwatch.GetTimestamp()), byProcess, db);
    }

    private static void AddCpu(JsonObject figures, CpuWindow cpu)
    {
        var heartbeats = Math.Max((double)figures["rps"]! * cpu.Seconds, 1);
        var server = cpu.ByProcess.Sum(p => (double)p.Value!);
        figures["cpu_window_s"] = cpu.Seconds;
        figures["cpu_s_by_process"] = cpu.ByProcess;
        figures["server_cpu_us_per_heartbeat"] = Figures.Round(server * 1e6 / heartbeats, 1);
        figures["db_cpu_us_per_heartbeat"] = Figures.Round(cpu.DbSeconds * 1e6 / heartbeats, 1);
        figures["server_cpu_percent"] = Figures.Round(server * 100 / cpu.Seconds, 1);
        figures["db_cpu_percent"] = Figures.Round(cpu.DbSeconds * 100 / cpu.Seconds, 1);
    }

    private static async Task<string> NewDatabaseAsync(PostgresProcess pg, CancellationToken ct)
    {
        var database = "cluster_" + Interlocked.Increment(ref _databases).ToString(CultureInfo.InvariantCulture);
        await pg.CreateDatabaseAsync(database, ct);
        return database;
    }

    /// <summary>After a measurement: a checkpoint (the next one starts clean), then the database goes.</summary>
    private static async Task DropDatabaseAsync(PostgresProcess pg, string database, CancellationToken ct)
    {
        await pg.QueryAsync("CHECKPOINT", cancellationToken: ct);
        await pg.QueryAsync($"DROP DATABASE {database} WITH (FORCE)", cancellationToken: ct);
    }

    private sealed record CpuWindow(double Seconds, JsonObject ByProcess, double DbSeconds);
}
