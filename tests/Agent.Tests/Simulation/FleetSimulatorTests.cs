using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using Presence.Agent.Simulation;
using Presence.Testing;
using Xunit.Abstractions;

namespace Presence.Agent.Tests.Simulation;

/// <summary>The fleet simulator against the real gateway on a driven clock: registration, schedule, churn, errors, ending.</summary>
public sealed partial class FleetSimulatorTests(ITestOutputHelper log)
{
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task Every_simulated_device_registers_within_the_first_interval_without_a_herd()
    {
        await using var gateway = new FleetGateway();
        await using var fleet = await DrivenFleet.StartAsync(gateway, gateway.Plan(200));

        // The first heartbeat (device 0) told the simulator the interval: 1 s. The others spread over it.
        Assert.Equal(1, (await gateway.StatsAsync()).GetProperty("devices_total").GetInt32());
        await fleet.AdvanceAsync(TimeSpan.FromMilliseconds(500));
        var halfway = (await gateway.StatsAsync()).GetProperty("devices_total").GetInt32();
        Assert.InRange(halfway, 80, 120);

        await fleet.AdvanceAsync(TimeSpan.FromMilliseconds(600));
        var stats = await gateway.StatsAsync();
        Assert.Equal(200, stats.GetProperty("devices_total").GetInt32());
        Assert.Equal(200, stats.GetProperty("online").GetInt32());
        var devices = await gateway.GetJsonAsync("/api/v1/devices?prefix=sim-&limit=1000");
        var ids = devices.GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("device_id").GetString()).ToArray();
        Assert.Equal(Enumerable.Range(0, 200).Select(i => $"sim-{i:D7}"), ids);
    }

    [Fact]
    public async Task Device_id_is_the_prefix_of_the_simulated_ids()
    {
        await using var gateway = new FleetGateway();
        await using var fleet = await DrivenFleet.StartAsync(gateway, gateway.Plan(3) with { IdPrefix = "rack7:" });
        await fleet.AdvanceAsync(TimeSpan.FromMilliseconds(1100));

        var devices = await gateway.GetJsonAsync("/api/v1/devices?limit=1000");
        var ids = devices.GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("device_id").GetString());
        Assert.Equal(["rack7:0000000", "rack7:0000001", "rack7:0000002"], ids);
    }

    [Fact]
    public async Task Progress_lines_and_the_summary_have_their_documented_shape()
    {
        await using var gateway = new FleetGateway();
        await using var fleet = await DrivenFleet.StartAsync(gateway, gateway.Plan(50) with { Duration = TimeSpan.FromSeconds(11) });

        Assert.Equal(0, await fleet.RunToEndAsync(TimeSpan.FromSeconds(12), TimeSpan.FromMilliseconds(250)));

        var lines = fleet.Lines;
        var progress = lines.Where(l => l.StartsWith('[')).ToArray();
        Assert.Equal(2, progress.Length);
        Assert.All(progress, line => Assert.Matches(ProgressLine(), line));
        Assert.StartsWith("[     5s] online 50/50 (silent 0) | ", progress[0], StringComparison.Ordinal);
        Assert.StartsWith("[    10s] online 50/50 (silent 0) | ", progress[1], StringComparison.Ordinal);
        Assert.EndsWith("| errors conn=0", progress[1], StringComparison.Ordinal);

        var summary = Array.FindIndex(lines, l => l.StartsWith("summary: ", StringComparison.Ordinal));
        Assert.True(summary > 0, fleet.Output);
        Assert.StartsWith("summary: 11.0 s, 50 devices over 50 connections, each every 1 s, churn 0%", lines[summary], StringComparison.Ordinal);
        Assert.Matches(@"^heartbeats [\d,]+ \([\d,.]+/s, [\d,.]+/s after the first interval\): ok [\d,]+, errors conn=0, late 0$", lines[summary + 1]);
        Assert.Matches(@"^latency p50 \d+\.\d\d ms, p90 \d+\.\d\d ms, p99 \d+\.\d\d ms, p99\.9 \d+\.\d\d ms, max \d+\.\d\d ms$", lines[summary + 2]);
        Assert.Equal("devices online at end 50/50 (silent 0); went silent 0, came back 0", lines[summary + 3]);
        Assert.StartsWith("simulator CPU ", lines[summary + 4], StringComparison.Ordinal);

        // The last line is the summary as JSON, for scripts and the benchmark runner.
        var json = FleetSummary.FromJson(lines[^1]);
        Assert.NotNull(json);
        Assert.Equal(fleet.Summary, json with { Errors = fleet.Summary.Errors });
        Assert.Equal(50, json.Devices);
        Assert.Equal(1, json.PollIntervalS);
        Assert.Equal(3, json.TimeoutS);
        Assert.Equal(json.Heartbeats, json.Ok);
        Assert.Equal(new Dictionary<string, long> { ["conn"] = 0 }, json.Errors);
        Assert.InRange(json.Seconds, 10.9, 11.1);
    }

    [Fact]
    public async Task Without_rate_each_device_heartbeats_at_the_poll_interval()
    {
        await using var gateway = new FleetGateway(new() { ["Presence:Heartbeat:IntervalSeconds"] = "2", ["Presence:Heartbeat:TimeoutSeconds"] = "5" });
        await using var fleet = await DrivenFleet.StartAsync(gateway, gateway.Plan(100) with { Duration = TimeSpan.FromSeconds(30) });

        Assert.Equal(0, await fleet.RunToEndAsync(TimeSpan.FromSeconds(31)));

        // 100 devices every 2 s for 30 s: 1500 heartbeats (+ the first one), counted by the simulator and the gateway.
        Assert.Equal(2, fleet.Summary.IntervalS);
        Assert.InRange(fleet.Summary.Heartbeats, 1500 * 0.97, 1500 * 1.03);
        var accepted = (await gateway.StatsAsync()).GetProperty("heartbeats_last_minute").GetInt64();
        Assert.Equal(fleet.Summary.Ok, accepted);
    }

    [Fact]
    public async Task Rate_is_honoured_by_count()
    {
        await using var gateway = new FleetGateway();
        await using var fleet = await DrivenFleet.StartAsync(gateway, gateway.Plan(100) with { Rate = 40, Duration = TimeSpan.FromSeconds(20) });

        Assert.Equal(0, await fleet.RunToEndAsync(TimeSpan.FromSeconds(21)));

        // 40/s for 20 s over 100 devices (each every 2.5 s, not the gateway's 1 s).
        var summary = fleet.Summary;
        Assert.Equal(2.5, summary.IntervalS);
        Assert.InRange(summary.Heartbeats, 800 * 0.97, 800 * 1.03);
        Assert.InRange(summary.HeartbeatsPerS, 40 * 0.97, 40 * 1.03);
        var accepted = (await gateway.StatsAsync()).GetProperty("heartbeats_last_minute").GetInt64();
        Assert.Equal(summary.Ok, accepted);
        Assert.Equal(summary.Heartbeats, summary.Ok);
    }

    [Fact]
    public async Task Rate_counts_the_whole_fleet_when_devices_churn()
    {
        await using var gateway = new FleetGateway();
        await using var fleet = await DrivenFleet.StartAsync(gateway, gateway.Plan(200) with { Rate = 100, ChurnPercent = 20 });

        // Steady state after a few churn cycles (15 s each here); the gateway counts the last minute's heartbeats.
        await fleet.AdvanceAsync(TimeSpan.FromSeconds(80), TimeSpan.FromMilliseconds(250));
        var accepted = (await gateway.StatsAsync()).GetProperty("heartbeats_last_minute").GetInt64();
        log.WriteLine($"accepted {accepted}");
        Assert.InRange(accepted, 6000 * 0.9, 6000 * 1.1);
        Assert.Equal(0, await fleet.StopAsync());
        Assert.True(fleet.Summary.WentSilent > 100, fleet.Output);
    }

    [Fact]
    public async Task Churned_devices_go_offline_at_the_gateway_and_come_back()
    {
        await using var gateway = new FleetGateway();
        await using var fleet = await DrivenFleet.StartAsync(gateway, gateway.Plan(100) with { ChurnPercent = 30 });

        // Interval 1 s, timeout 3 s: a silence lasts 4.5-7.5 s, so a churned device really goes offline. Past the
        // first cycle, about 30% of the fleet is offline at any moment.
        await fleet.AdvanceAsync(TimeSpan.FromSeconds(15), TimeSpan.FromMilliseconds(250));
        var offline = new List<int>();
        for (var sample = 0; sample < 25; sample++)
        {
            await fleet.AdvanceAsync(Second, TimeSpan.FromMilliseconds(250));
            offline.Add((await gateway.StatsAsync()).GetProperty("offline").GetInt32());
        }

        Assert.InRange(offline.Average(), 15, 45);
        Assert.True(offline.Min() < offline.Max(), "the offline set keeps changing");

        // The simulator's view of who is online matches the gateway's (up to devices within a second of their timeout).
        var online = (await gateway.StatsAsync()).GetProperty("online").GetInt32();
        Assert.Equal(0, await fleet.StopAsync());
        Assert.InRange(fleet.Summary.OnlineAtEnd, online - 15, online + 15);
        Assert.True(fleet.Summary.WentSilent > 50 && fleet.Summary.CameBack > 50, fleet.Output);

        // Most devices had a session ended by a timeout and a later one.
        var returned = 0;
        for (var i = 0; i < 100; i++)
        {
            var sessions = (await gateway.GetJsonAsync($"/api/v1/devices/sim-{i:D7}/sessions")).GetProperty("sessions").EnumerateArray().ToArray();
            if (sessions.Length >= 2 && sessions.Skip(1).Any(s => s.GetProperty("end_reason").GetString() == "timeout"))
            {
                returned++;
            }
        }

        log.WriteLine(fleet.Output + $"offline samples {string.Join(',', offline)}; gateway online {online}; returned {returned}");
        Assert.True(returned >= 50, $"{returned} of 100 devices went offline and came back");
    }

    [Fact]
    public async Task Errors_are_counted_by_status()
    {
        await using var gateway = new FleetGateway(new() { ["Presence:RateLimit:HeartbeatsPerMinute"] = "1" });
        await using var fleet = await DrivenFleet.StartAsync(gateway, gateway.Plan(10));

        await fleet.AdvanceAsync(TimeSpan.FromSeconds(6));
        var progress = fleet.Lines.First(l => l.StartsWith('['));
        Assert.Matches(@"\| errors 429=\d+ conn=0$", progress);
        Assert.Equal(0, await fleet.StopAsync());

        // One accepted heartbeat per device and minute; every other one is 429.
        var summary = fleet.Summary;
        Assert.Equal(10, summary.Ok);
        Assert.Equal(summary.Heartbeats - 10, summary.Errors["429"]);
        Assert.True(summary.Errors["429"] > 30, fleet.Output);
        Assert.Equal(0, summary.Errors["conn"]);
        Assert.Matches(@"errors 429=\d+ conn=0, late 0", fleet.Output);
    }

    [Fact]
    public async Task A_gateway_that_goes_away_shows_as_connection_errors()
    {
        var gateway = new FleetGateway();
        var plan = gateway.Plan(20);

        // On the gateway's clock, without waiting for its silo at each step: the gateway stops half-way.
        await using var fleet = await DrivenFleet.StartAsync(plan, gateway.Time);
        try
        {
            await fleet.AdvanceAsync(TimeSpan.FromSeconds(2));
        }
        finally
        {
            await gateway.DisposeAsync();
        }

        await fleet.AdvanceAsync(TimeSpan.FromSeconds(3));
        Assert.Equal(0, await fleet.StopAsync());
        Assert.InRange(fleet.Summary.Ok, 40, 42);
        Assert.True(fleet.Summary.Errors["conn"] > 20, fleet.Output);
        Assert.Matches(@"\| errors conn=[1-9]\d*$", fleet.Lines.Last(l => l.StartsWith('[')));
    }

    [Fact]
    public async Task Duration_ends_the_run_with_exit_code_zero()
    {
        await using var gateway = new FleetGateway();
        await using var fleet = await DrivenFleet.StartAsync(gateway, gateway.Plan(5) with { Duration = TimeSpan.FromSeconds(3) });

        await fleet.AdvanceAsync(TimeSpan.FromMilliseconds(2900));
        Assert.False(fleet.Completion.IsCompleted);

        Assert.Equal(0, await fleet.RunToEndAsync(Second));
        Assert.Equal(TimeSpan.FromSeconds(3), fleet.Driven);
        Assert.InRange(fleet.Summary.Seconds, 2.99, 3.01);
        Assert.Contains("summary: 3.0 s, 5 devices", fleet.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stopping_ends_the_run_with_a_summary_and_exit_code_zero()
    {
        await using var gateway = new FleetGateway();
        await using var fleet = await DrivenFleet.StartAsync(gateway, gateway.Plan(5));
        await fleet.AdvanceAsync(TimeSpan.FromSeconds(2));

        Assert.Equal(0, await fleet.StopAsync());
        Assert.Equal(5, fleet.Summary.OnlineAtEnd);
        Assert.InRange(fleet.Summary.Heartbeats, 10, 12);
        Assert.Contains("summary: 2.0 s", fleet.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_shared_secret_gateway_accepts_the_fleet_with_the_secret_and_refuses_it_without()
    {
        const string Secret = "fleet-secret-0123456789abcdef";
        await using var gateway = new FleetGateway(new()
        {
            ["Presence:Auth:Mode"] = "shared-secret",
            ["Presence:Auth:SharedSecret"] = Secret,
            ["Presence:Auth:AdminApiKey"] = "admin-key-0123456789abcdef0123456789",
        });

        await using (var refused = await DrivenFleet.StartAsync(gateway, gateway.Plan(10)))
        {
            Assert.Equal(1, await refused.Completion.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Contains("presence-agent: the gateway refused the first heartbeat: 401 UNAUTHORIZED", refused.Output, StringComparison.Ordinal);
            Assert.Contains("--shared-secret", refused.Output, StringComparison.Ordinal);
        }

        await using var fleet = await DrivenFleet.StartAsync(gateway, gateway.Plan(10) with { SharedSecret = Secret });
        await fleet.AdvanceAsync(TimeSpan.FromMilliseconds(1100));
        Assert.Equal(0, await fleet.StopAsync());
        Assert.Equal(10, fleet.Summary.OnlineAtEnd);
        Assert.Equal(fleet.Summary.Heartbeats, fleet.Summary.Ok);
    }

    [Fact]
    public async Task An_unreachable_gateway_is_retried_with_backoff_and_nothing_succeeding_exits_one()
    {
        var plan = new FleetPlan
        {
            Endpoint = new Uri($"http://127.0.0.1:{ClosedPort().ToString(CultureInfo.InvariantCulture)}/api/v1/heartbeat"),
            Devices = 10,
            Duration = TimeSpan.FromSeconds(5),
        };
        await using var fleet = await DrivenFleet.StartAsync(plan, new ManualTimeProvider());

        // Attempts at 0 s, 1 s and 4 s (backoff 1 s, 3 s, 9 s...); the run ends at 5 s.
        Assert.Equal(1, await fleet.RunToEndAsync(TimeSpan.FromSeconds(6), TimeSpan.FromMilliseconds(500)));
        Assert.Equal(3, fleet.Lines.Count(l => l.Contains("cannot connect", StringComparison.Ordinal)));
        Assert.Contains("presence-agent: stopped before the gateway answered a heartbeat (conn=3)", fleet.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--secret s", "does not support --secret")]
    [InlineData("--websocket", "--websocket is for a single agent")]
    [InlineData("--server https://gw.example:443", "speaks plain HTTP/1.1")]
    // Characters outside the id rule are refused by the command line itself; a prefix too long for its 7 digits here.
    [InlineData("--device-id pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp", "--device-id with --simulate is the id prefix")]
    public async Task Options_the_simulator_cannot_honour_are_refused_with_exit_code_two(string extra, string message)
    {
        var options = AgentOptions.Parse(["--simulate", "10", .. extra.Split(' ')]);
        using var output = new StringWriter();

        Assert.Equal(2, await FleetSimulator.RunAsync(options, output, CancellationToken.None));
        Assert.StartsWith("presence-agent: ", output.ToString(), StringComparison.Ordinal);
        Assert.Contains(message, output.ToString(), StringComparison.Ordinal);
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [GeneratedRegex(@"^\[ *\d+s\] online [\d,]+/[\d,]+ \(silent [\d,]+\) \| [\d,]+\.\d hb/s \| p50 \d+\.\d\d ms p99 \d+\.\d\d ms \| errors (\d{3}=\d+ )*conn=\d+( \| late [\d,]+)?$")]
    private static partial Regex ProgressLine();
}
