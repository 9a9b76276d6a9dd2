using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Presence.LoadGen;
using Presence.Runner.Hosting;

namespace Presence.Runner.Scenarios;

/// <summary>
/// The gateway with PostgreSQL storage against the same gateway with memory storage (the baseline), in one run, on a
/// throwaway PostgreSQL server started for it (<see cref="PostgresProcess"/>; skipped when the binaries are missing).
/// <list type="number">
/// <item><b>Steady heartbeats</b>: for each connection count of the throughput scenario, a fresh gateway (and, for
/// postgres, a fresh database) registers the device set first (one heartbeat each), then gets the throughput
/// scenario's load (random ids over the same devices, warm-up, measured window): heartbeats of online devices, which
/// postgres writes behind. Rounds alternate which storage goes first. Goal: postgres &gt;= 0.8 x memory.</item>
/// <item><b>Registration burst</b>: a fresh gateway registers warm-up devices (unmeasured: JIT, pools), then N new
/// devices send their first heartbeat as fast as the load generator gets answers: devices registered per second (each
/// is one device row and two events, durable before the 200) and latency.</item>
/// <item><b>Store accounting</b>: every postgres gateway is stopped gracefully (SIGTERM) and its store's shutdown line
/// (EventId 3042: durable transactions, partition commits, write-behind batches and devices, round trips) is parsed.
/// Registrations are durable commits and heartbeats of online devices are written behind, so the durable counters
/// belong to the registration phase and the write-behind ones to the heartbeat phase. When pg_stat_statements is
/// loaded, the statements of each phase are reported too (sampled between the phases).</item>
/// </list>
/// </summary>
internal static partial class PostgresScenario
{
    public const double Goal = 0.8;

    private static int _databases;

    public static async Task<JsonObject> RunAsync(ScenarioContext context)
    {
        var counts = context.IntList("connections", "16,64,128", "16,64,128");
        var duration = context.Number("duration", 5, 15);
        var warmup = context.Number("warmup", 8, 10);
        var devices = context.Int("devices", 10_000, 10_000);
        var rounds = context.Int("rounds", 1, 2);
        var burstDevices = context.Int("register-devices", 100_000, 100_000);
        var burstWarmup = context.Int("register-warmup", 20_000, 20_000);
        var burstConnections = context.Int("register-connections", 64, 64);
        var burstRounds = context.Int("register-rounds", 1, 1);
        var statements = !context.Flag("no-pg-stat-statements");
        var parts = (context.Text("parts") ?? "steady,registration").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var flush = context.Text("flush-interval");
        string[] postgresArgs = flush is null ? [] : [$"--Presence:Storage:FlushIntervalSeconds={flush}"];
        var result = context.NewResult("postgres", new JsonObject
        {
            ["connections"] = string.Join(',', counts),
            ["duration_s"] = duration,
            ["warmup_s"] = warmup,
            ["devices"] = devices,
            ["rounds"] = rounds,
            ["register_devices"] = burstDevices,
            ["register_warmup_devices"] = burstWarmup,
            ["register_connections"] = burstConnections,
            ["register_rounds"] = burstRounds,
            ["parts"] = string.Join(',', parts),
            ["flush_interval_s"] = flush is null ? 1 : double.Parse(flush, CultureInfo.InvariantCulture),
            ["gateway_args"] = string.Join(' ', BaseArgs),
            ["gateway_args_postgres"] = "--Presence:Storage:Provider=postgres --ConnectionStrings:Presence=Host=127.0.0.1;Port=P;Username=postgres;Database=bench_N (a fresh database per gateway)",
            ["register_gateway_args"] = "--Presence:Heartbeat:TimeoutSeconds=900 (no warm-up device times out during the burst)",
        });

        var (bin, missing) = PostgresProcess.FindBinaries(context.Text("pg-bin"));
        if (bin is null)
        {
            Console.WriteLine($"  postgres: SKIPPED: {missing}");
            result["skipped"] = true;
            result["skip_reason"] = missing;
            return result;
        }

        Console.WriteLine($"  postgres: starting a throwaway PostgreSQL from {bin}");
        await using var pg = await PostgresProcess.StartAsync(bin, context.LogDir, statements, context.CancellationToken);
        result["postgres"] = await pg.DescribeAsync(context.CancellationToken);
        Console.WriteLine($"  postgres: PostgreSQL {result["postgres"]!["version"]} on port {pg.Port} (pid {pg.Pid}), pg_stat_statements {(pg.HasStatements ? "on" : "off")}");

        if (parts.Contains("steady"))
        {
            result["steady"] = await SteadyAsync(context, pg, postgresArgs, counts, rounds, duration, warmup, devices);
        }

        if (parts.Contains("registration"))
        {
            result["registration"] = await BurstAsync(context, pg, postgresArgs, burstRounds, burstWarmup, burstDevices, burstConnections);
        }

        return result;
    }

    private static readonly string[] BaseArgs = ["--Presence:RateLimit:HeartbeatsPerMinute=1000000"];

    private static async Task<JsonObject> SteadyAsync(ScenarioContext context, PostgresProcess pg, string[] postgresArgs, IReadOnlyList<int> counts, int rounds, double duration, double warmup, int devices)
    {
        var rows = new JsonArray();
        JsonObject? headline = null;
        JsonObject? best = null;
        foreach (var connections in counts)
        {
            var memory = new List<JsonObject>();
            var postgres = new List<JsonObject>();
            for (var round = 0; round < rounds; round++)
            {
                Console.WriteLine($"  postgres: steady heartbeats, {connections} connections, round {round + 1}/{rounds}");
                var postgresFirst = round % 2 == 1;
                if (postgresFirst)
                {
                    postgres.Add(await SteadyOnceAsync(context, pg, postgresArgs, connections, duration, warmup, devices));
                }

                memory.Add(await SteadyOnceAsync(context, null, [], connections, duration, warmup, devices));
                if (!postgresFirst)
                {
                    postgres.Add(await SteadyOnceAsync(context, pg, postgresArgs, connections, duration, warmup, devices));
                }
            }

            var memoryRps = Figures.Median(memory.Select(r => (double)r["rps"]!));
            var postgresRps = Figures.Median(postgres.Select(r => (double)r["rps"]!));
            var row = new JsonObject
            {
                ["connections"] = connections,
                ["memory_rps"] = memoryRps,
                ["postgres_rps"] = postgresRps,
                ["ratio"] = Figures.Round(postgresRps / Math.Max(memoryRps, 1)),
                ["memory_gateway_cpu_us_per_request"] = Figures.Median(memory.Select(r => (double?)r["server_cpu_us_per_request"] ?? 0)),
                ["postgres_gateway_cpu_us_per_request"] = Figures.Median(postgres.Select(r => (double?)r["server_cpu_us_per_request"] ?? 0)),
                ["postgres_db_cpu_us_per_request"] = Figures.Median(postgres.Select(r => (double?)r["db_cpu_us_per_request"] ?? 0)),
                ["postgres_db_cpu_percent"] = Figures.Median(postgres.Select(r => (double?)r["db_cpu_percent"] ?? 0)),
                ["memory_client_cpu_us_per_request"] = Figures.Median(memory.Select(r => (double?)r["client_cpu_us_per_request"] ?? 0)),
                ["postgres_client_cpu_us_per_request"] = Figures.Median(postgres.Select(r => (double?)r["client_cpu_us_per_request"] ?? 0)),
                ["memory_p99_ms"] = Figures.Median(memory.Select(r => (double)r["p99_ms"]!)),
                ["postgres_p99_ms"] = Figures.Median(postgres.Select(r => (double)r["p99_ms"]!)),
                ["memory_runs"] = new JsonArray([.. memory]),
                ["postgres_runs"] = new JsonArray([.. postgres]),
            };

            // Server-side CPU per heartbeat is steadier than req/s on a shared machine: memory's gateway against
            // postgres's gateway plus PostgreSQL.
            row["cpu_ratio"] = Figures.Round((double)row["memory_gateway_cpu_us_per_request"]! /
                Math.Max((double)row["postgres_gateway_cpu_us_per_request"]! + (double)row["postgres_db_cpu_us_per_request"]!, 0.001));

            // Each round's pair ran back to back: the spread of their ratios shows how much the machine moved.
            row["round_ratios"] = new JsonArray([.. memory.Zip(postgres, (m, p) => (JsonNode)Figures.Round((double)p["rps"]! / Math.Max((double)m["rps"]!, 1)))]);
            row["round_cpu_ratios"] = new JsonArray([.. memory.Zip(postgres, (m, p) => (JsonNode)Figures.Round(
                ((double?)m["server_cpu_us_per_request"] ?? 0) / Math.Max(((double?)p["server_cpu_us_per_request"] ?? 0) + ((double?)p["db_cpu_us_per_request"] ?? 0), 0.001)))]);

            // Store accounting of the median postgres run (by req/s).
            var median = postgres.OrderBy(r => (double)r["rps"]!).ElementAt(postgres.Count / 2);
            row["store"] = median["store"]?.DeepClone();
            rows.Add(row);
            if (headline is null || memoryRps > (double)headline["memory_rps"]!)
            {
                headline = row;
            }

            if (best is null || (double)row["ratio"]! > (double)best["ratio"]!)
            {
                best = row;
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  => {connections} connections: memory {memoryRps:N0} req/s, postgres {postgresRps:N0} req/s, ratio {(double)row["ratio"]!:F3} (rounds: {row["round_ratios"]!.ToJsonString()}), CPU ratio {(double)row["cpu_ratio"]!:F3}"));
        }

        var steady = new JsonObject { ["by_connections"] = rows };
        if (headline is not null && best is not null)
        {
            // As in the throughput scenario: both storages at the connection count where the baseline peaks.
            steady["headline"] = new JsonObject
            {
                ["connections"] = (int)headline["connections"]!,
                ["memory_rps"] = (double)headline["memory_rps"]!,
                ["postgres_rps"] = (double)headline["postgres_rps"]!,
                ["ratio"] = (double)headline["ratio"]!,
                ["goal"] = Goal,
                ["pass"] = (double)headline["ratio"]! >= Goal,
                ["best_ratio"] = (double)best["ratio"]!,
                ["best_ratio_connections"] = (int)best["connections"]!,
                ["cpu_ratio"] = (double)headline["cpu_ratio"]!,
            };
        }

        return steady;
    }

    /// <summary>One gateway's life: register the devices, then the timed heartbeat run; for postgres, the store's counters.</summary>
    private static async Task<JsonObject> SteadyOnceAsync(ScenarioContext context, PostgresProcess? pg, string[] extra, int connections, double duration, double warmup, int devices)
    {
        var load = ProcStats.LoadAverage();
        var (args, database) = await GatewayArgsAsync(context, pg, extra);
        var server = await ServerProcess.StartAsync(pg is null ? "gateway-memory" : "gateway-postgres", context.Paths.Gateway, args, context.LogDir, context.CancellationToken);
        JsonObject figures;
        Sample before, after;
        LoadReport register, report;
        try
        {
            register = await LoadGenProcess.RunAsync(context.Paths,
            [
                "--url", server.Url.ToString(), "--connections", "64", "--requests", Text(devices), "--devices", Text(devices),
                "--ids", "sequential", "--max-seconds", "600", "--server-pid", Text(server.Pid), .. DbPid(pg),
            ], TimeSpan.FromMinutes(11), context.CancellationToken);
            before = await SampleAsync(pg, database, context.CancellationToken);
            var threads = ProcStats.CpuByThreadName(server.Pid);
            var running = LoadGenProcess.RunAsync(context.Paths,
            [
                "--url", server.Url.ToString(), "--connections", Text(connections), "--duration", Text(duration), "--warmup", Text(warmup),
                "--devices", Text(devices), "--client", "raw", "--server-pid", Text(server.Pid), .. DbPid(pg),
            ], TimeSpan.FromSeconds(duration + warmup + 60), context.CancellationToken);

            // About the measured window (the load generator starts in ~0.5 s): is JIT tiering (".NET Tiered Com") or
            // the background GC (".NET BGC") still busy in it? A diagnostic; the figures of record come from LoadGen.
            await Task.Delay(TimeSpan.FromSeconds(warmup + 0.5), context.CancellationToken);
            var windowStart = ProcStats.CpuByThreadName(server.Pid);
            await Task.Delay(TimeSpan.FromSeconds(Math.Max(duration - 1, 0)), context.CancellationToken);
            var windowEnd = ProcStats.CpuByThreadName(server.Pid);
            report = await running;
            after = await SampleAsync(pg, database, context.CancellationToken);
            figures = Figures.Load(report);

            // Whole timed run, warm-up included: e.g. how much went to JIT tiering and the background GC.
            figures["server_cpu_s_by_thread"] = ProcStats.CpuDelta(threads, ProcStats.CpuByThreadName(server.Pid));
            figures["server_cpu_s_by_thread_in_window"] = ProcStats.CpuDelta(windowStart, windowEnd);
            figures["server_rss_mb"] = Figures.Round(server.RssBytes / 1048576.0, 1);
        }
        finally
        {
            await StopAsync(server, figures: null);
        }

        figures["storage"] = pg is null ? "memory" : "postgres";
        figures["db_cpu_percent"] = report.DbCpuPercent;
        figures["db_cpu_us_per_request"] = report.DbCpuMicrosPerRequest;
        figures["load_average_1m_before"] = load;
        figures["registration"] = new JsonObject
        {
            ["devices"] = devices,
            ["rps"] = register.Rps,
            ["p99_ms"] = register.LatencyMs.P99,
            ["status"] = new JsonObject(register.Status.Select(s => KeyValuePair.Create(s.Key, (JsonNode?)JsonValue.Create(s.Value)))),
        };

        // Every heartbeat of the timed run (warm-up included) went to an online device: the write-behind phase.
        figures["steady_heartbeats"] = report.TotalRequests;
        await StopAsync(server, figures);
        if (pg is not null && database is not null)
        {
            var store = (JsonObject?)figures["store"];
            if (store is not null && (long)store["durable_transactions"]! > 0 && report.TotalRequests > 0)
            {
                var transactions = (long)store["durable_transactions"]!;
                var batches = (long)store["write_behind_batches"]!;
                var roundTrips = (long)store["round_trips"]!;
                var heartbeats = (double)report.TotalRequests;
                store["durable_transactions_per_1000_registrations"] = Figures.Round(transactions * 1000.0 / devices, 2);

                // A durable transaction is two round trips (its statements, then COMMIT), as is a write-behind batch.
                store["write_behind_transactions_per_1000_heartbeats"] = Figures.Round(batches * 1000.0 / heartbeats);

                // Heartbeats of one device within a flush interval coalesce into one row update.
                store["write_behind_devices_per_1000_heartbeats"] = Figures.Round((long)store["write_behind_devices"]! * 1000.0 / heartbeats, 1);
                store["write_behind_round_trips_per_1000_heartbeats"] = Figures.Round((roundTrips - (2.0 * transactions)) * 1000.0 / heartbeats);
                store["round_trips_per_1000_requests_whole_life"] = Figures.Round(roundTrips * 1000.0 / (heartbeats + devices));
            }

            figures["statements_heartbeat_phase"] = Phase(before, after, report.TotalRequests, "heartbeats");
            await FinishDatabaseAsync(pg, database, figures, context.CancellationToken);
        }

        return figures;
    }

    private static async Task<JsonObject> BurstAsync(ScenarioContext context, PostgresProcess pg, string[] postgresArgs, int rounds, int warm, int devices, int connections)
    {
        var memory = new List<JsonObject>();
        var postgres = new List<JsonObject>();
        for (var round = 0; round < rounds; round++)
        {
            Console.WriteLine($"  postgres: registration burst of {devices:N0} devices ({warm:N0} warm-up devices first), round {round + 1}/{rounds}");
            var postgresFirst = round % 2 == 1;
            if (postgresFirst)
            {
                postgres.Add(await BurstOnceAsync(context, pg, postgresArgs, warm, devices, connections));
            }

            memory.Add(await BurstOnceAsync(context, null, [], warm, devices, connections));
            if (!postgresFirst)
            {
                postgres.Add(await BurstOnceAsync(context, pg, postgresArgs, warm, devices, connections));
            }
        }

        var memoryRps = Figures.Median(memory.Select(r => (double)r["rps"]!));
        var postgresRps = Figures.Median(postgres.Select(r => (double)r["rps"]!));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  => registration: memory {memoryRps:N0} devices/s, postgres {postgresRps:N0} devices/s, ratio {postgresRps / Math.Max(memoryRps, 1):F3}"));
        return new JsonObject
        {
            ["devices"] = devices,
            ["warmup_devices"] = warm,
            ["connections"] = connections,
            ["memory_rps"] = memoryRps,
            ["postgres_rps"] = postgresRps,
            ["ratio"] = Figures.Round(postgresRps / Math.Max(memoryRps, 1)),
            ["memory_runs"] = new JsonArray([.. memory]),
            ["postgres_runs"] = new JsonArray([.. postgres]),
        };
    }

    private static async Task<JsonObject> BurstOnceAsync(ScenarioContext context, PostgresProcess? pg, string[] extra, int warm, int devices, int connections)
    {
        var load = ProcStats.LoadAverage();
        var (args, database) = await GatewayArgsAsync(context, pg, ["--Presence:Heartbeat:TimeoutSeconds=900", .. extra]);
        var server = await ServerProcess.StartAsync(pg is null ? "gateway-memory" : "gateway-postgres", context.Paths.Gateway, args, context.LogDir, context.CancellationToken);
        JsonObject figures;
        Sample before, after;
        LoadReport burst;
        try
        {
            // Unmeasured: JIT tiering of the registration path (Npgsql's included), pools, the partitions' first turns.
            await LoadGenProcess.RunAsync(context.Paths,
            [
                "--url", server.Url.ToString(), "--connections", Text(connections), "--requests", Text(warm), "--devices", Text(warm),
                "--ids", "sequential", "--id-prefix", "warm-", "--max-seconds", "600",
            ], TimeSpan.FromMinutes(11), context.CancellationToken);
            before = await SampleAsync(pg, database, context.CancellationToken);
            burst = await LoadGenProcess.RunAsync(context.Paths,
            [
                "--url", server.Url.ToString(), "--connections", Text(connections), "--requests", Text(devices), "--devices", Text(devices),
                "--ids", "sequential", "--id-prefix", "reg-", "--max-seconds", "1200", "--server-pid", Text(server.Pid), .. DbPid(pg),
            ], TimeSpan.FromMinutes(21), context.CancellationToken);
            after = await SampleAsync(pg, database, context.CancellationToken);
            figures = Figures.Load(burst);
            figures["p90_ms"] = burst.LatencyMs.P90;
            figures["p999_ms"] = burst.LatencyMs.P999;
            figures["server_rss_mb"] = Figures.Round(server.RssBytes / 1048576.0, 1);
        }
        finally
        {
            await StopAsync(server, figures: null);
        }

        figures["storage"] = pg is null ? "memory" : "postgres";
        figures["db_cpu_percent"] = burst.DbCpuPercent;
        figures["db_cpu_us_per_request"] = burst.DbCpuMicrosPerRequest;
        figures["load_average_1m_before"] = load;
        await StopAsync(server, figures);
        if (pg is not null && database is not null)
        {
            var registered = warm + devices;
            if (figures["store"] is JsonObject store && (long)store["durable_transactions"]! > 0)
            {
                var transactions = (long)store["durable_transactions"]!;
                store["durable_transactions_per_1000_registrations"] = Figures.Round(transactions * 1000.0 / registered, 2);
                store["round_trips_per_1000_registrations"] = Figures.Round((long)store["round_trips"]! * 1000.0 / registered, 2);
            }

            figures["statements_burst"] = Phase(before, after, devices, "registrations");
            var counts = await pg.QueryAsync("SELECT (SELECT count(*) FROM presence_devices), (SELECT head FROM presence_log WHERE id = 1)", database, context.CancellationToken);
            figures["rows_check"] = new JsonObject
            {
                ["registered_devices"] = registered,
                ["device_rows"] = long.Parse(counts[0][0], CultureInfo.InvariantCulture),
                ["events"] = long.Parse(counts[0][1], CultureInfo.InvariantCulture),
            };
            await FinishDatabaseAsync(pg, database, figures, context.CancellationToken);
        }

        return figures;
    }

    /// <summary>The gateway's arguments; for postgres, a fresh database on the benchmark's server.</summary>
    private static async Task<(List<string> Args, string? Database)> GatewayArgsAsync(ScenarioContext context, PostgresProcess? pg, IEnumerable<string> extra)
    {
        List<string> args = [.. BaseArgs, .. extra];
        if (pg is null)
        {
            return (args, null);
        }

        var database = "bench_" + Interlocked.Increment(ref _databases).ToString(CultureInfo.InvariantCulture);
        await pg.CreateDatabaseAsync(database, context.CancellationToken);
        args.Add("--Presence:Storage:Provider=postgres");
        args.Add("--ConnectionStrings:Presence=" + pg.ConnectionString(database));
        return (args, database);
    }

    /// <summary>
    /// Stops the gateway gracefully once (SIGTERM: the postgres store flushes and logs EventId 3042); with
    /// <paramref name="figures"/>, records the exit and the store's counters from the log.
    /// </summary>
    private static async Task StopAsync(ServerProcess server, JsonObject? figures)
    {
        var exitCode = await server.StopAsync();
        if (figures is null)
        {
            return;
        }

        figures["gateway_exit_code"] = exitCode;
        var log = File.ReadAllText(server.LogPath);
        if (log.IndexOf("Unhandled exception.", StringComparison.Ordinal) is var at and >= 0)
        {
            figures["gateway_shutdown_error"] = log[at..].Split('\n')[0].Trim();
        }

        if (StoppedLine().Match(log) is { Success: true } match)
        {
            long Group(int i) => long.Parse(match.Groups[i].Value, CultureInfo.InvariantCulture);
            var (transactions, commits, batches, written, roundTrips) = (Group(1), Group(2), Group(3), Group(4), Group(5));
            figures["store"] = new JsonObject
            {
                ["durable_transactions"] = transactions,
                ["partition_commits"] = commits,
                ["commits_per_transaction"] = Figures.Round(commits / (double)Math.Max(transactions, 1), 2),
                ["write_behind_batches"] = batches,
                ["write_behind_devices"] = written,
                ["write_behind_average_batch"] = Figures.Round(written / (double)Math.Max(batches, 1), 1),
                ["round_trips"] = roundTrips,
            };
        }
        else if (server.Name.Contains("postgres", StringComparison.Ordinal))
        {
            figures["store_missing"] = "no EventId 3042 line in " + server.LogPath;
        }
    }

    /// <summary>pg_stat_statements and the WAL position between phases (nothing for memory storage).</summary>
    private static async Task<Sample> SampleAsync(PostgresProcess? pg, string? database, CancellationToken cancellationToken) =>
        pg is null || database is null
            ? new Sample([], 0)
            : new Sample(await pg.StatementsAsync(database, cancellationToken), await pg.WalBytesAsync(cancellationToken));

    /// <summary>What PostgreSQL did in a phase of <paramref name="requests"/> requests.</summary>
    private static JsonObject Phase(Sample before, Sample after, long requests, string per)
    {
        var phase = new JsonObject
        {
            ["requests"] = requests,
            ["wal_mb"] = Figures.Round((after.WalBytes - before.WalBytes) / 1048576.0, 1),
            [$"wal_bytes_per_{per[..^1]}"] = Figures.Round((after.WalBytes - before.WalBytes) / (double)Math.Max(requests, 1), 1),
        };
        if (after.Statements.Count == 0)
        {
            return phase;
        }

        var k = 1000.0 / Math.Max(requests, 1);
        var (writeBehind, writeBehindRows) = PostgresProcess.Count(before.Statements, after.Statements, "UPDATE presence_devices AS t SET");
        var (durable, _) = PostgresProcess.Count(before.Statements, after.Statements, "SELECT pg_current_xact_id()");
        var (commits, _) = PostgresProcess.Count(before.Statements, after.Statements, "COMMIT");
        var (reads, _) = PostgresProcess.Count(before.Statements, after.Statements, "SELECT tenant_id, device_id, device_name");
        var (resets, _) = PostgresProcess.Count(before.Statements, after.Statements, "RESET ALL");
        var delta = PostgresProcess.StatementsDelta(before.Statements, after.Statements);
        phase["statements"] = (long)delta["calls"]!;
        phase["statements_exec_ms"] = (double)delta["exec_ms"]!;
        phase[$"statements_per_1000_{per}"] = Figures.Round((long)delta["calls"]! * k, 1);
        phase["durable_transactions"] = durable;
        phase["write_behind_updates"] = writeBehind;
        phase["write_behind_rows"] = writeBehindRows;
        phase["commits"] = commits;
        phase[$"commits_per_1000_{per}"] = Figures.Round(commits * k, 2);
        phase["device_reads"] = reads;
        phase["connection_resets"] = resets;
        phase["top_by_exec_time"] = delta["top_by_exec_time"]!.DeepClone();
        return phase;
    }

    /// <summary>After a postgres gateway: a checkpoint (so the next measurement starts clean), then the database goes.</summary>
    private static async Task FinishDatabaseAsync(PostgresProcess pg, string database, JsonObject figures, CancellationToken cancellationToken)
    {
        var size = await pg.QueryAsync($"SELECT pg_database_size('{database}')", cancellationToken: cancellationToken);
        figures["database_mb"] = Figures.Round(long.Parse(size[0][0], CultureInfo.InvariantCulture) / 1048576.0, 1);
        await pg.QueryAsync("CHECKPOINT", cancellationToken: cancellationToken);
        await pg.QueryAsync($"DROP DATABASE {database}", cancellationToken: cancellationToken);
    }

    private static string[] DbPid(PostgresProcess? pg) => pg is null ? [] : ["--db-pid", Text(pg.Pid)];

    private static string Text(double value) => value.ToString(CultureInfo.InvariantCulture);

    [GeneratedRegex(@"PostgreSQL storage stopped: (\d+) durable transactions \((\d+) partition commits\), (\d+) write-behind batches \((\d+) devices\), (\d+) round trips")]
    private static partial Regex StoppedLine();

    private sealed record Sample(Dictionary<string, PostgresProcess.Statement> Statements, long WalBytes);
}
