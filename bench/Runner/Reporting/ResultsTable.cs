using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Presence.Runner.Scenarios;

namespace Presence.Runner.Reporting;

/// <summary>Turns the scenario result files of one run into a Markdown table (printed by bench/run.sh, pasted into docs/benchmarks.md).</summary>
internal static class ResultsTable
{
    public static string Render(string outDir)
    {
        var results = Directory.GetFiles(outDir, "*.json")
            .Select(f => JsonNode.Parse(File.ReadAllText(f)) as JsonObject)
            .OfType<JsonObject>()
            .ToDictionary(r => (string)r["scenario"]!, StringComparer.Ordinal);
        var text = new StringBuilder();
        if (results.Values.FirstOrDefault() is { } any)
        {
            var machine = any["machine"]!;
            text.AppendLine(Invariant($"Run {Path.GetFileName(outDir)} ({any["mode"]} mode): {machine["cpu_model"]}, {machine["cores"]} cores, {machine["memory_gib"]} GiB, {machine["os"]}, {machine["dotnet"]}"));
            text.AppendLine();
        }

        text.AppendLine("| Scenario | Measure | Result | Baseline / ratio | Goal | Verdict | Load avg (start/end) |");
        text.AppendLine("| --- | --- | --- | --- | --- | --- | --- |");
        if (results.TryGetValue("client", out var client))
        {
            var raw = client["runs"]!["raw"]!;
            var http = client["runs"]!["http"]!;
            Row(text, client, Invariant($"load generator client, {client["parameters"]!["connections"]} conns (bare Kestrel)"),
                Invariant($"raw {N(raw["rps"])} req/s at {raw["client_cpu_us_per_request"]} us CPU/req"),
                Invariant($"http {N(http["rps"])} req/s at {http["client_cpu_us_per_request"]} us CPU/req"),
                "least client CPU", Invariant($"chose {client["chosen"]}"));
        }

        if (results.TryGetValue("simulator", out var simulator))
        {
            Simulator(text, simulator);
        }

        if (results.TryGetValue("throughput", out var throughput))
        {
            foreach (var row in throughput["by_connections"]!.AsArray())
            {
                Row(text, throughput, Invariant($"heartbeat req/s, {row!["connections"]} conns"),
                    Invariant($"gateway {N(row["gateway_rps"])} (p99 {row["gateway_p99_ms"]} ms, {row["gateway_cpu_us_per_request"]} us CPU/req)"),
                    Invariant($"bare {N(row["bare_rps"])} (p99 {row["bare_p99_ms"]} ms, {row["bare_cpu_us_per_request"]} us CPU/req) / ratio {row["ratio"]}{(row["round_ratios"] is { } rounds ? " (rounds " + rounds.ToJsonString() + ")" : "")}, CPU ratio {row["cpu_ratio"]}"),
                    ">= 0.9", Verdict((double)row["ratio"]! >= 0.9));
            }

            if (throughput["headline"] is { } headline)
            {
                Row(text, throughput, Invariant($"headline: baseline's best count ({headline["connections"]} conns)"),
                    Invariant($"ratio {headline["ratio"]} (CPU ratio {headline["cpu_ratio"]})"), Invariant($"best ratio {headline["best_ratio"]} at {headline["best_ratio_connections"]} conns"),
                    ">= 0.9", Verdict((bool)headline["pass"]!));
            }
        }

        if (results.TryGetValue("memory", out var memory))
        {
            Row(text, memory, Invariant($"bytes per device, {N(memory["parameters"]!["devices"])} devices"),
                Invariant($"{memory["bytes_per_device"]} B (RSS {memory["idle_rss_mb"]} -> {memory["loaded_rss_mb"]} MB, peak {memory["peak_rss_mb"]} MB)"),
                Invariant($"registration {N(memory["registration"]!["rps"])} req/s, 2nd round {N(memory["second_round"]!["rps"])} req/s"),
                "<= 512 B", Verdict((bool)memory["pass"]!));
        }

        if (results.TryGetValue("storm", out var storm))
        {
            var during = storm["probe_during_storm"]!;
            var before = storm["probe_before_storm"]!;
            Row(text, storm, Invariant($"offline storm, {N(storm["parameters"]!["devices"])} devices"),
                Invariant($"{N(storm["offline_events"])} events; first->last {storm["first_to_last_s"]} s; thaw->last {storm["thaw_to_last_s"]?.ToString() ?? "n/a"} s"),
                Invariant($"{N(storm["events_per_s"])} events/s; reader resumes {storm["reader"]!["resumes_after_4008"]}"),
                "all within 10 s", Verdict((long)storm["offline_missing"]! == 0 && (double)(storm["thaw_to_last_s"] ?? storm["first_to_last_s"])! <= 10));
            Row(text, storm, Invariant($"heartbeat latency during storm ({storm["parameters"]!["probe_rate"]} req/s)"),
                Invariant($"p50 {during["p50_ms"]} / p99 {during["p99_ms"]} / max {during["max_ms"]} ms ({during["count"]} req)"),
                Invariant($"before storm p99 {before["p99_ms"]} ms"),
                "p99 < 50 ms", Verdict((double)during["p99_ms"]! < 50 && (long)during["count"]! > 0));
        }

        if (results.TryGetValue("delivery", out var delivery))
        {
            var latency = delivery["delivery"]!;
            Row(text, delivery, Invariant($"heartbeat -> /ws/events, {delivery["parameters"]!["new_devices_per_s"]} new devices/s + {delivery["parameters"]!["background_heartbeats_per_s"]} hb/s"),
                Invariant($"p50 {latency["p50_ms"]} / p99 {latency["p99_ms"]} / max {latency["max_ms"]} ms ({latency["count"]} events, {delivery["events_missing"]} missing)"),
                Invariant($"heartbeat p99 {delivery["heartbeats"]!["p99_ms"]} ms"),
                "p99 <= 100 ms", Verdict((bool)delivery["pass"]!));
        }

        if (results.TryGetValue("postgres", out var postgres))
        {
            Postgres(text, postgres);
        }

        if (results.TryGetValue("auth", out var auth))
        {
            Auth(text, auth);
        }

        if (results.TryGetValue("cluster", out var cluster))
        {
            Cluster(text, cluster);
        }

        return text.ToString();
    }

    private static void Simulator(StringBuilder text, JsonObject simulator)
    {
        var devices = simulator["parameters"]!["devices"];
        var full = simulator["runs"]!["full_speed"]!;
        var paced = simulator["runs"]!["paced"]!;
        Row(text, simulator, Invariant($"one simulator process, {N(devices)} devices, full speed (bare Kestrel)"),
            Invariant($"{N(full["steady_heartbeats_per_s"])} heartbeats/s (p99 {full["p99_ms"]} ms)"),
            Invariant($"simulator {full["simulator_cpu_us_per_heartbeat"]} us CPU/heartbeat ({full["simulator_cpu_percent"]}% of a core), {full["allocated_bytes_per_heartbeat"]} B allocated/heartbeat; server {full["server_cpu_us_per_heartbeat"]} us CPU/heartbeat"),
            ">= 20,000/s", Verdict((double?)full["steady_heartbeats_per_s"] >= SimulatorScenario.Goal && SimulatorScenario.NotOk(full) == 0));
        Row(text, simulator, Invariant($"one simulator process, paced at {N(simulator["parameters"]!["paced_rate"])}/s"),
            Invariant($"{N(paced["steady_heartbeats_per_s"])} heartbeats/s (p99 {paced["p99_ms"]} ms, {paced["late"]} late)"),
            Invariant($"simulator {paced["simulator_cpu_us_per_heartbeat"]} us CPU/heartbeat ({paced["simulator_cpu_percent"]}% of a core), {paced["allocated_bytes_per_heartbeat"]} B allocated/heartbeat"),
            ">= 0.98 x rate", Verdict((bool)simulator["headline"]!["pass"]!));
    }

    private static void Auth(StringBuilder text, JsonObject auth)
    {
        var devices = auth["parameters"]!["devices"];
        foreach (var row in auth["by_connections"]!.AsArray())
        {
            Row(text, auth, Invariant($"heartbeat req/s, device-token vs none, {row!["connections"]} conns, {N(devices)} devices"),
                Invariant($"device-token {N(row["token_rps"])} (p99 {row["token_p99_ms"]} ms, {row["token_cpu_us_per_request"]} us CPU/req)"),
                Invariant($"none {N(row["none_rps"])} (p99 {row["none_p99_ms"]} ms, {row["none_cpu_us_per_request"]} us CPU/req) / ratio {row["ratio"]} (pairs {row["pair_ratios"]!.ToJsonString()}, median {row["median_pair_ratio"]}), CPU ratio {row["cpu_ratio"]}{((long)row["not_ok"]! > 0 ? Invariant($"; {row["not_ok"]} not 200") : "")}"),
                ">= 0.9", Verdict(AuthScenario.Passes(row)));
            Row(text, auth, Invariant($"provisioning {N(devices)} devices + tokens ({auth["parameters"]!["provision_concurrency"]} concurrent)"),
                Invariant($"{row["provisioning_s"]} s ({N(row["provisioning_devices_per_s"])} devices/s)"),
                Invariant($"server {row["provisioning_server_cpu_ms_per_device"]} ms CPU/device (PUT + auth, PBKDF2 {N(auth["parameters"]!["secret_hash_iterations"])} iterations)"),
                "-", "(measured)");
        }

        if (auth["headline"] is { } headline && auth["by_connections"]!.AsArray().Count > 1)
        {
            Row(text, auth, Invariant($"headline: none's best count ({headline["connections"]} conns)"),
                Invariant($"ratio {headline["ratio"]} (CPU ratio {headline["cpu_ratio"]})"), "-",
                ">= 0.9", Verdict((bool)headline["pass"]!));
        }
    }

    private static void Cluster(StringBuilder text, JsonObject cluster)
    {
        if (cluster["skipped"] is not null)
        {
            Row(text, cluster, "cluster mode", Invariant($"skipped: {cluster["skip_reason"]}"), "-", "-", "skipped");
            return;
        }

        if (cluster["throughput"] is { } throughput)
        {
            foreach (var row in throughput["by_connections"]!.AsArray())
            {
                Row(text, cluster, Invariant($"heartbeat req/s, 2 gateways + 2 silos vs embedded (PostgreSQL), {row!["connections"]} conns"),
                    Invariant($"cluster {N(row["cluster_rps"])} (p50 {row["cluster_p50_ms"]} / p99 {row["cluster_p99_ms"]} ms; servers {row["cluster_server_cpu_us_per_heartbeat"]} + PostgreSQL {row["cluster_db_cpu_us_per_heartbeat"]} us CPU/hb){((long)row["cluster_not_ok"]! > 0 ? Invariant($"; {row["cluster_not_ok"]} not 200") : "")}"),
                    Invariant($"embedded {N(row["embedded_rps"])} (p50 {row["embedded_p50_ms"]} / p99 {row["embedded_p99_ms"]} ms; {row["embedded_server_cpu_us_per_heartbeat"]} + {row["embedded_db_cpu_us_per_heartbeat"]} us CPU/hb) / ratio {row["ratio"]} (rounds {row["round_ratios"]!.ToJsonString()}), CPU ratio {row["cpu_ratio"]}"),
                    Invariant($">= {ClusterScenario.GoalRatio}"), Verdict((double)row["ratio"]! >= ClusterScenario.GoalRatio && (long)row["cluster_not_ok"]! == 0));
            }
        }

        if (cluster["failover"] is { } failover)
        {
            var after = failover["heartbeats_after_kill"]!;
            Row(text, cluster, Invariant($"failover: a silo of 2 killed (SIGKILL), {N(cluster["parameters"]!["failover_devices"])} devices at {N(cluster["parameters"]!["failover_rate"])} hb/s"),
                Invariant($"every partition re-owned after {failover["recovered_after_s"]?.ToJsonString() ?? "never (60 s)"} s (leases expired {failover["leases_expired_after_s"]?.ToJsonString() ?? "-"} s, declared dead {failover["declared_dead_after_s"]?.ToJsonString() ?? "-"} s)"),
                Invariant($"heartbeats after the kill: {after["status_200"]} ok, {failover["heartbeats_503"]} x 503, {after["status_other"]} not 200, p99 {after["p99_ms"]} / max {after["max_ms"]} ms; client recovered after {failover["client_recovered_after_s"]} s"),
                Invariant($"<= {ClusterScenario.GoalFailoverSeconds} s"), Verdict((bool)failover["pass"]!));
        }

        if (cluster["delivery"] is { } delivery)
        {
            var latency = delivery["delivery"]!;
            Row(text, cluster, Invariant($"heartbeat -> /ws/events across gateways, {cluster["parameters"]!["new_devices_per_s"]} new devices/s + {cluster["parameters"]!["background_heartbeats_per_s"]} hb/s"),
                Invariant($"p50 {latency["p50_ms"]} / p99 {latency["p99_ms"]} / max {latency["max_ms"]} ms ({latency["count"]} events, {delivery["events_missing"]} missing)"),
                Invariant($"heartbeat p99 {delivery["heartbeats"]!["p99_ms"]} ms; from the heartbeat's answer p50 {delivery["delivery_after_response"]!["p50_ms"]} / p99 {delivery["delivery_after_response"]!["p99_ms"]} ms{EmbeddedDelivery(cluster["delivery_embedded"])}"),
                Invariant($"p99 <= {ClusterScenario.GoalDeliveryP99Ms} ms"), Verdict((bool)delivery["pass"]!));
        }
    }

    private static string EmbeddedDelivery(JsonNode? embedded) => embedded is null
        ? ""
        : Invariant($"; embedded (PostgreSQL): p50 {embedded["delivery"]!["p50_ms"]} / p99 {embedded["delivery"]!["p99_ms"]} ms, heartbeat p99 {embedded["heartbeats"]!["p99_ms"]} ms, from the answer p99 {embedded["delivery_after_response"]!["p99_ms"]} ms");

    private static void Postgres(StringBuilder text, JsonObject postgres)
    {
        if (postgres["skipped"] is not null)
        {
            Row(text, postgres, "postgres storage", Invariant($"skipped: {postgres["skip_reason"]}"), "-", "-", "skipped");
            return;
        }

        if (postgres["steady"] is { } steady)
        {
            Steady(text, postgres, steady);
        }

        if (postgres["registration"] is { } registration)
        {
            Registration(text, postgres, registration);
        }

        if (postgres["steady"] is { } accounted)
        {
            WriteBehind(text, postgres, accounted);
        }
    }

    private static void Steady(StringBuilder text, JsonObject postgres, JsonNode steady)
    {
        foreach (var row in steady["by_connections"]!.AsArray())
        {
            Row(text, postgres, Invariant($"steady heartbeat req/s, {row!["connections"]} conns"),
                Invariant($"postgres {N(row["postgres_rps"])} (p99 {row["postgres_p99_ms"]} ms, gateway {row["postgres_gateway_cpu_us_per_request"]} + PostgreSQL {row["postgres_db_cpu_us_per_request"]} us CPU/req)"),
                Invariant($"memory {N(row["memory_rps"])} (p99 {row["memory_p99_ms"]} ms, {row["memory_gateway_cpu_us_per_request"]} us CPU/req) / ratio {row["ratio"]}{(row["round_ratios"] is { } rounds ? " (rounds " + rounds.ToJsonString() + ")" : "")}, CPU ratio {row["cpu_ratio"]}"),
                ">= 0.8", Verdict((double)row["ratio"]! >= 0.8));
        }

        if (steady["headline"] is { } headline)
        {
            Row(text, postgres, Invariant($"headline: memory's best count ({headline["connections"]} conns)"),
                Invariant($"ratio {headline["ratio"]} (CPU ratio {headline["cpu_ratio"]})"), Invariant($"best ratio {headline["best_ratio"]} at {headline["best_ratio_connections"]} conns"),
                ">= 0.8", Verdict((bool)headline["pass"]!));
        }
    }

    private static void Registration(StringBuilder text, JsonObject postgres, JsonNode registration)
    {
        var pg = Median(registration["postgres_runs"]!);
        var memory = Median(registration["memory_runs"]!);
        Row(text, postgres, Invariant($"registration burst, {N(registration["devices"])} new devices, {registration["connections"]} conns"),
            Invariant($"postgres {N(registration["postgres_rps"])} devices/s, p50 {pg?["p50_ms"]} / p99 {pg?["p99_ms"]} ms, gateway {pg?["server_cpu_us_per_request"]} + PostgreSQL {pg?["db_cpu_us_per_request"]} us CPU/device"),
            Invariant($"memory {N(registration["memory_rps"])} devices/s, p50 {memory?["p50_ms"]} / p99 {memory?["p99_ms"]} ms / ratio {registration["ratio"]}"),
            "-", "(measured)");
        if (pg?["store"] is { } burstStore)
        {
            Row(text, postgres, "durable group commit (registration)",
                Invariant($"{burstStore["commits_per_transaction"]} partition commits per transaction; {burstStore["durable_transactions_per_1000_registrations"]} transactions and {burstStore["round_trips_per_1000_registrations"]} writer round trips per 1000 registrations"),
                Invariant($"{N(burstStore["durable_transactions"])} transactions, {N(burstStore["round_trips"])} round trips (gateway life)"),
                "-", "(measured)");
        }
    }

    private static void WriteBehind(StringBuilder text, JsonObject postgres, JsonNode steady)
    {
        foreach (var row in steady["by_connections"]!.AsArray())
        {
            if (row!["store"] is { } store && store["write_behind_transactions_per_1000_heartbeats"] is not null)
            {
                Row(text, postgres, Invariant($"write-behind, {row["connections"]} conns"),
                    Invariant($"average batch {store["write_behind_average_batch"]} devices; per 1000 heartbeats {store["write_behind_transactions_per_1000_heartbeats"]} transactions, {store["write_behind_round_trips_per_1000_heartbeats"]} round trips, {store["write_behind_devices_per_1000_heartbeats"]} rows updated"),
                    Invariant($"{N(store["write_behind_batches"])} batches ({N(store["write_behind_devices"])} devices); registration: {store["commits_per_transaction"]} commits per transaction"),
                    "-", "(measured)");
            }
        }
    }

    /// <summary>The run with the median req/s of a list of runs.</summary>
    private static JsonNode? Median(JsonNode runs)
    {
        var sorted = runs.AsArray().OrderBy(r => (double)r!["rps"]!).ToList();
        return sorted.Count == 0 ? null : sorted[sorted.Count / 2];
    }

    private static void Row(StringBuilder text, JsonObject result, string measure, string value, string baseline, string goal, string verdict) =>
        text.AppendLine(Invariant($"| {result["scenario"]} | {measure} | {value} | {baseline} | {goal} | {verdict} | {result["machine"]!["load_average_1m"]} / {result["load_average_1m_at_end"]} |"));

    private static string Verdict(bool pass) => pass ? "met" : "NOT met";

    private static string N(JsonNode? value) => value is null ? "n/a" : ((double)value).ToString("N0", CultureInfo.InvariantCulture);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
