using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Presence.Agent.Simulation.Http;
using Presence.Runner.Hosting;

namespace Presence.Runner.Scenarios;

/// <summary>
/// What device-token verification costs the heartbeat path: the gateway in auth mode <c>none</c> against the same
/// gateway in mode <c>device-token</c> under the throughput scenario's load (same connections, warm-up, measured
/// window, random ids over the same devices). Each round starts a fresh gateway of each mode; the token gateway first
/// provisions the devices (<c>PUT /api/v1/devices/{id}</c> with the admin key; each device then trades its secret for
/// a token, <c>POST /api/v1/devices/auth</c>), and every heartbeat of its runs carries its device's token. Then the two
/// are measured alternately, <c>--windows</c> pairs per round, back to back: the first pair after the full warm-up,
/// later ones (the servers warm by then) after <c>--rewarm</c> seconds. Pairs alternate which mode goes first. On a
/// shared machine the many adjacent pairs matter more than fresh processes, and provisioning (slow by design: two
/// PBKDF2 runs per device) is paid once per round. Goal: token &gt;= 0.9 x none.
/// </summary>
internal static class AuthScenario
{
    public const double Goal = 0.9;

    /// <summary>The gateway's minimum: hashing secrets is part of provisioning, which is set-up here, not measured load.</summary>
    private const int SecretHashIterations = 10_000;

    private const string DevicePrefix = "sim-";

    public static async Task<JsonObject> RunAsync(ScenarioContext context)
    {
        var counts = context.IntList("connections", "64", "64");
        var duration = context.Number("duration", 5, 15);
        var warmup = context.Number("warmup", 8, 10);
        var devices = context.Int("devices", 2_000, 10_000);
        var rounds = context.Int("rounds", 2, 3);
        var windows = context.Int("windows", 3, 3);
        var rewarm = context.Number("rewarm", 2, 3);
        var pipeline = context.Int("pipeline", 1, 1);
        var concurrency = context.Int("provision-concurrency", 4, 4);

        // Fresh random credentials per run (the gateway checks only their lengths); the result records them redacted.
        var signingKey = RandomText(48);
        var adminKey = RandomText(32);
        string[] noneArgs = ["--Presence:Auth:Mode=none", .. RateLimit];
        string[] tokenArgs =
        [
            "--Presence:Auth:Mode=device-token",
            "--Presence:Auth:TokenSigningKey=" + signingKey,
            "--Presence:Auth:AdminApiKey=" + adminKey,
            "--Presence:Auth:SecretHashIterations=" + Figures.Text(SecretHashIterations),
            .. RateLimit,
        ];
        var result = context.NewResult("auth", new JsonObject
        {
            ["connections"] = string.Join(',', counts),
            ["duration_s"] = duration,
            ["warmup_s"] = warmup,
            ["devices"] = devices,
            ["rounds"] = rounds,
            ["windows_per_round"] = windows,
            ["rewarm_s"] = rewarm,
            ["pipeline"] = pipeline,
            ["client"] = "raw",
            ["provision_concurrency"] = concurrency,
            ["secret_hash_iterations"] = SecretHashIterations,
            ["gateway_args_none"] = string.Join(' ', noneArgs),
            ["gateway_args_token"] = string.Join(' ', tokenArgs).Replace(signingKey, "<random 48 chars>", StringComparison.Ordinal).Replace(adminKey, "<random 32 chars>", StringComparison.Ordinal),
        });

        var rows = new JsonArray();
        JsonObject? headline = null;
        foreach (var connections in counts)
        {
            var load = new HeartbeatLoad(connections, duration, warmup, devices, pipeline);
            var none = new List<JsonObject>();
            var token = new List<JsonObject>();
            for (var round = 0; round < rounds; round++)
            {
                Console.WriteLine($"  auth: {connections} connections, round {round + 1}/{rounds}");
                await RoundAsync(context, round, noneArgs, tokenArgs, adminKey, load, windows, rewarm, concurrency, none, token);
            }

            var row = Row(connections, none, token);
            rows.Add(row);
            if (headline is null || (double)row["none_rps"]! > (double)headline["none_rps"]!)
            {
                headline = row;
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  => {connections} connections: none {(double)row["none_rps"]!:N0} req/s, device-token {(double)row["token_rps"]!:N0} req/s, ratio {(double)row["ratio"]!:F3} (pairs: {row["pair_ratios"]!.ToJsonString()}, median {(double)row["median_pair_ratio"]!:F3}), CPU ratio {(double)row["cpu_ratio"]!:F3}; provisioning {(double)row["provisioning_s"]!:F1} s"));
            if ((long)row["not_ok"]! > 0)
            {
                Console.WriteLine($"  !! {row["not_ok"]} responses were not 200 (or got none): see the runs' status counts");
            }
        }

        result["by_connections"] = rows;
        if (headline is not null)
        {
            // As in the throughput scenario: both modes at the connection count where the baseline (none) peaks.
            result["headline"] = new JsonObject
            {
                ["connections"] = (int)headline["connections"]!,
                ["none_rps"] = (double)headline["none_rps"]!,
                ["token_rps"] = (double)headline["token_rps"]!,
                ["ratio"] = (double)headline["ratio"]!,
                ["goal"] = Goal,
                ["pass"] = Passes(headline),
                ["cpu_ratio"] = (double)headline["cpu_ratio"]!,
            };
        }

        return result;
    }

    /// <summary>Met when the median ratio reaches the goal and every heartbeat of both modes was answered 200.</summary>
    public static bool Passes(JsonNode row) => (double)row["ratio"]! >= Goal && (long)row["not_ok"]! == 0;

    private static readonly string[] RateLimit = ["--Presence:RateLimit:HeartbeatsPerMinute=1000000"];

    /// <summary>The rounds' provisioning figure <paramref name="name"/> (recorded with each round's first token run).</summary>
    private static IEnumerable<double> Provisioned(List<JsonObject> token, string name) =>
        token.Select(r => r["provisioning"]).OfType<JsonNode>().Select(p => (double)p[name]!);

    /// <summary>
    /// One round: a provisioned token gateway and a none gateway, then <paramref name="windows"/> measured pairs
    /// (one run of each mode, adjacent in time), the first after the full warm-up.
    /// </summary>
    private static async Task RoundAsync(
        ScenarioContext context, int round, string[] noneArgs, string[] tokenArgs, string adminKey, HeartbeatLoad load,
        int windows, double rewarm, int concurrency, List<JsonObject> none, List<JsonObject> token)
    {
        var file = Path.Combine(context.OutDir, $"tokens-{Guid.NewGuid():N}.txt");
        try
        {
            await using var tokenServer = await ServerProcess.StartAsync("gateway-auth-token", context.Paths.Gateway, tokenArgs, context.LogDir, context.CancellationToken);
            var (tokens, provisioning) = await ProvisionAsync(tokenServer, adminKey, load.Devices, concurrency, context.CancellationToken);
            await File.WriteAllLinesAsync(file, tokens, context.CancellationToken);
            await using var noneServer = await ServerProcess.StartAsync("gateway-auth-none", context.Paths.Gateway, noneArgs, context.LogDir, context.CancellationToken);
            for (var window = 0; window < windows; window++)
            {
                var shape = window == 0 ? load : load with { Warmup = Math.Min(rewarm, load.Warmup) };
                bool[] order = (round + window) % 2 == 1 ? [true, false] : [false, true];
                foreach (var isToken in order)
                {
                    var run = isToken
                        ? await HeartbeatRun.MeasureAsync(context, tokenServer, shape, ["--tokens", file])
                        : await HeartbeatRun.MeasureAsync(context, noneServer, shape);
                    run["round"] = round;
                    run["window"] = window;
                    if (isToken && window == 0)
                    {
                        run["provisioning"] = provisioning;
                    }

                    (isToken ? token : none).Add(run);
                }
            }
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static JsonObject Row(int connections, List<JsonObject> none, List<JsonObject> token)
    {
        static double Cpu(JsonNode run) => (double?)run["server_cpu_us_per_request"] ?? 0;
        var noneRps = Figures.Median(none.Select(r => (double)r["rps"]!));
        var tokenRps = Figures.Median(token.Select(r => (double)r["rps"]!));
        var noneCpu = Figures.Median(none.Select(Cpu));
        var tokenCpu = Figures.Median(token.Select(Cpu));
        return new JsonObject
        {
            ["connections"] = connections,
            ["none_rps"] = noneRps,
            ["token_rps"] = tokenRps,
            ["ratio"] = Figures.Round(tokenRps / Math.Max(noneRps, 1)),
            ["none_cpu_us_per_request"] = noneCpu,
            ["token_cpu_us_per_request"] = tokenCpu,

            // Server CPU per heartbeat is steadier than req/s on a shared machine: none's cost / token's cost.
            ["cpu_ratio"] = Figures.Round(noneCpu / Math.Max(tokenCpu, 0.001)),
            ["none_client_cpu_us_per_request"] = Figures.Median(none.Select(r => (double?)r["client_cpu_us_per_request"] ?? 0)),
            ["token_client_cpu_us_per_request"] = Figures.Median(token.Select(r => (double?)r["client_cpu_us_per_request"] ?? 0)),
            ["none_p99_ms"] = Figures.Median(none.Select(r => (double)r["p99_ms"]!)),
            ["token_p99_ms"] = Figures.Median(token.Select(r => (double)r["p99_ms"]!)),

            // Each pair ran back to back: the spread of their ratios shows how much the machine moved.
            ["median_pair_ratio"] = Figures.Median(none.Zip(token, (n, t) => (double)t["rps"]! / Math.Max((double)n["rps"]!, 1))),
            ["pair_ratios"] = new JsonArray([.. none.Zip(token, (n, t) => (JsonNode)Figures.Round((double)t["rps"]! / Math.Max((double)n["rps"]!, 1)))]),
            ["pair_cpu_ratios"] = new JsonArray([.. none.Zip(token, (n, t) => (JsonNode)Figures.Round(Cpu(n) / Math.Max(Cpu(t), 0.001)))]),
            ["not_ok"] = none.Concat(token).Sum(HeartbeatRun.NotOk),
            ["provisioning_s"] = Figures.Median(Provisioned(token, "seconds")),
            ["provisioning_devices_per_s"] = Figures.Median(Provisioned(token, "devices_per_s")),
            ["provisioning_server_cpu_ms_per_device"] = Figures.Median(Provisioned(token, "server_cpu_ms_per_device")),
            ["none_runs"] = new JsonArray([.. none]),
            ["token_runs"] = new JsonArray([.. token]),
        };
    }

    /// <summary>
    /// Provisions devices 0..N-1 (<c>sim-0000000</c>...) and trades each one's secret for a token, over a few
    /// concurrent requests; element i of the result is device i's token. Bounded: 30 s per request, 15 minutes in all.
    /// </summary>
    private static async Task<(string[] Tokens, JsonObject Figures)> ProvisionAsync(
        ServerProcess server, string adminKey, int devices, int concurrency, CancellationToken cancellationToken)
    {
        Console.WriteLine($"    provisioning {devices:N0} devices and their tokens ({concurrency} concurrent requests)");
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency, UseProxy = false, UseCookies = false })
        {
            BaseAddress = server.Url,
            Timeout = TimeSpan.FromSeconds(30),
        };
        var admin = new AuthenticationHeaderValue("Bearer", adminKey);
        var tokens = new string[devices];
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(TimeSpan.FromMinutes(15));
        var cpuBefore = server.Cpu;
        var started = Stopwatch.GetTimestamp();
        await Parallel.ForEachAsync(Enumerable.Range(0, devices), new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = bound.Token }, async (i, token) =>
        {
            var deviceId = HeartbeatRequests.DeviceIdOf(DevicePrefix, i);
            using var put = new HttpRequestMessage(HttpMethod.Put, new Uri($"/api/v1/devices/{deviceId}", UriKind.Relative))
            {
                Content = new StringContent("{}", Encoding.UTF8, "application/json"),
            };
            put.Headers.Authorization = admin;
            var created = await SendAsync(http, put, HttpStatusCode.Created, token);
            var secret = (string?)created["secret"] ?? throw new InvalidOperationException($"PUT {deviceId}: no secret in the answer");

            using var auth = new HttpRequestMessage(HttpMethod.Post, new Uri("/api/v1/devices/auth", UriKind.Relative))
            {
                Content = new StringContent(new JsonObject { ["device_id"] = deviceId, ["secret"] = secret }.ToJsonString(), Encoding.UTF8, "application/json"),
            };
            var issued = await SendAsync(http, auth, HttpStatusCode.OK, token);
            tokens[i] = (string?)issued["token"] ?? throw new InvalidOperationException($"POST /api/v1/devices/auth for {deviceId}: no token in the answer");
        });
        var seconds = Figures.Seconds(started, Stopwatch.GetTimestamp());
        var cpu = (server.Cpu - cpuBefore).TotalMilliseconds;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"    provisioned {devices:N0} devices in {seconds:F1} s ({devices / Math.Max(seconds, 0.001):N0} devices/s, server CPU {cpu / devices:F2} ms per device)"));
        return (tokens, new JsonObject
        {
            ["devices"] = devices,
            ["concurrency"] = concurrency,
            ["seconds"] = seconds,
            ["devices_per_s"] = Figures.Round(devices / Math.Max(seconds, 0.001), 1),

            // Two PBKDF2 runs per device (hashing the new secret, verifying it), the rest of both requests.
            ["server_cpu_ms_per_device"] = Figures.Round(cpu / devices, 2),
            ["secret_hash_iterations"] = SecretHashIterations,
            ["token_length_min"] = tokens.Min(t => t.Length),
            ["token_length_max"] = tokens.Max(t => t.Length),
        });
    }

    private static async Task<JsonNode> SendAsync(HttpClient http, HttpRequestMessage request, HttpStatusCode expected, CancellationToken cancellationToken)
    {
        using var response = await http.SendAsync(request, cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        if (response.StatusCode != expected)
        {
            throw new InvalidOperationException(
                $"{request.Method} {request.RequestUri}: expected {(int)expected}, got {(int)response.StatusCode}: {body[..Math.Min(body.Length, 300)]}");
        }

        return JsonNode.Parse(body) ?? throw new InvalidOperationException($"{request.Method} {request.RequestUri}: empty answer");
    }

    private static string RandomText(int length) =>
        Convert.ToHexString(RandomNumberGenerator.GetBytes((length + 1) / 2))[..length].ToLowerInvariant();
}
