using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Presence.Agent.Tests.Support;
using Presence.Gateway.Tests;
using Presence.Testing;

namespace Presence.Agent.Tests.Connection;

/// <summary>The agent with <c>--websocket</c>: heartbeats and commands over <c>/ws/device</c> of the real gateway.</summary>
public sealed class DeviceChannelTests
{
    private const string Auth = "/api/v1/devices/auth";
    private const int Connected = 5002;
    private const int Lost = 5003;
    private const int ChannelRevoked = 5012;
    private const int ChannelRenewing = 5016;
    private const int Stopped = 5017;

    [Fact]
    public async Task Heartbeats_go_over_the_channel_at_the_acknowledged_interval()
    {
        await using var server = new AgentGateway("none");
        var faults = new GatewayFaults();
        await using var agent = RunningAgent.Start(Channel(server, "ws-beat", faults));

        Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());
        var version = await server.VersionAsync("ws-beat");
        server.Time.Advance(10);
        Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());

        Assert.Equal(version + 1, await server.VersionAsync("ws-beat"));
        var device = await server.DeviceAsync("ws-beat");
        Assert.InRange(device.GetProperty("metrics").GetProperty("cpu_pct").GetDouble(), 0, 100);
        // One upgrade request, no HTTP heartbeats.
        Assert.Equal([("/ws/device", 101)], faults.Requests);
        Assert.Equal(1, agent.Log.Count(Connected));
    }

    [Fact]
    public async Task Commands_are_answered_ping_collect_report_and_unknown_is_refused()
    {
        await using var server = new AgentGateway("none");
        await using var agent = RunningAgent.Start(Channel(server, "ws-commands"));
        await agent.Log.NextWaitAsync();
        var since = (await server.GetJsonAsync("/api/v1/events")).GetProperty("next_cursor").GetString();
        await using var events = await server.ConnectAsync($"/ws/events?since={since}");
        await events.ExpectAsync("hello");
        var version = await server.VersionAsync("ws-commands");

        var ids = new Dictionary<string, string>();
        foreach (var name in new[] { "ping", "collect", "report", "reboot" })
        {
            using var sent = await server.PostJsonAsync("/api/v1/devices/ws-commands/commands", new { name, args = new { delay_s = 5 } });
            Assert.Equal(HttpStatusCode.Accepted, sent.StatusCode);
            ids[(await sent.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("command_id").GetString()!] = name;
        }

        var results = new Dictionary<string, JsonElement>();
        while (results.Count < 4)
        {
            var e = (await events.ExpectAsync("event")).GetProperty("event");
            if (e.GetProperty("type").GetString() == "command.result")
            {
                results[ids[e.GetProperty("data").GetProperty("command_id").GetString()!]] = e.GetProperty("data");
            }
        }

        Assert.Equal((true, "pong"), Outcome(results["ping"]));
        Assert.Equal((true, "heartbeat sent"), Outcome(results["collect"]));
        var (reported, text) = Outcome(results["report"]);
        Assert.True(reported);
        Assert.InRange(text.Length, 1, 16384);
        var report = JsonDocument.Parse(text).RootElement;
        Assert.True(report.GetProperty("metrics").GetProperty("uptime_s").GetDouble() > 0);
        var (refused, reason) = Outcome(results["reboot"]);
        Assert.False(refused);
        Assert.Contains("unknown command 'reboot'", reason, StringComparison.Ordinal);

        // The collect heartbeat went before its result on the same channel: the gateway applied it.
        Assert.True(await server.VersionAsync("ws-commands") > version);

        // The same results are in the event log.
        var page = await server.GetJsonAsync($"/api/v1/events?since={since}&device_id=ws-commands");
        Assert.Equal(4, page.GetProperty("events").EnumerateArray().Count(e => e.GetProperty("type").GetString() == "command.result"));
    }

    [Fact]
    public async Task The_token_goes_in_the_Authorization_header_and_is_renewed_by_reconnecting()
    {
        // Tokens live 60 s: heartbeats at 0 and 10 s ... renewal due at 48 s comes before the heartbeat at 50 s.
        await using var server = new AgentGateway("device-token", new() { ["Presence:Auth:TokenLifetimeMinutes"] = "1" });
        var secret = await server.ProvisionAsync("ws-renew", AgentGateway.AdminKey);
        var faults = new GatewayFaults();
        await using var agent = RunningAgent.Start(Channel(server, "ws-renew", faults) with { Secret = secret });

        for (var beat = 0; beat < 4; beat++)
        {
            Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());
            server.Time.Advance(10);
        }

        Assert.Equal((8, "token renewal"), await agent.Log.NextWaitAsync());
        server.Time.Advance(8);
        await agent.Log.NextAsync(ChannelRenewing);
        Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());

        Assert.Equal([(Auth, 200), ("/ws/device", 101), (Auth, 200), ("/ws/device", 101)], faults.Requests);
        Assert.Equal(0, agent.Log.Count(Lost));
    }

    [Fact]
    public async Task A_channel_closed_with_4001_gets_a_new_token_and_reconnects()
    {
        // The agent's clock is 50 s behind the gateway's: it thinks its one-minute token has 110 s left (renewal due
        // 88 s on), so the gateway finds it expired at the heartbeat 60 s later and closes the channel with 4001.
        await using var server = new AgentGateway("device-token", new()
        {
            ["Presence:Auth:TokenLifetimeMinutes"] = "1",
            ["Presence:Heartbeat:IntervalSeconds"] = "30",
        });
        var secret = await server.ProvisionAsync("ws-4001", AgentGateway.AdminKey);
        var agentTime = new ManualTimeProvider(server.Time.GetUtcNow() - TimeSpan.FromSeconds(50));
        var faults = new GatewayFaults();
        await using var agent = RunningAgent.Start(Channel(server, "ws-4001", faults) with { Secret = secret, Time = agentTime });
        Assert.Equal((30, "interval"), await agent.Log.NextWaitAsync());
        server.Time.Advance(30);
        agentTime.Advance(30);
        Assert.Equal((30, "interval"), await agent.Log.NextWaitAsync());

        server.Time.Advance(30);
        agentTime.Advance(30);

        var revoked = await agent.Log.NextAsync(ChannelRevoked);
        Assert.Contains("token expired", revoked.Message, StringComparison.Ordinal);
        Assert.Equal((30, "interval"), await agent.Log.NextWaitAsync());
        Assert.Equal([(Auth, 200), ("/ws/device", 101), (Auth, 200), ("/ws/device", 101)], faults.Requests);
        Assert.Equal(0, agent.Log.Count(Lost));
    }

    [Fact]
    public async Task A_rotated_secret_closes_the_channel_and_the_agent_backs_off_logging_it_once()
    {
        await using var server = new AgentGateway("device-token");
        var secret = await server.ProvisionAsync("ws-rotated", AgentGateway.AdminKey);
        var faults = new GatewayFaults();
        await using var agent = RunningAgent.Start(Channel(server, "ws-rotated", faults) with { Secret = secret });
        Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());

        using (var rotated = await server.SendAsync(HttpMethod.Put, "/api/v1/devices/ws-rotated?rotate_secret=true", AgentGateway.AdminKey))
        {
            Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        }

        await agent.Log.NextAsync(ChannelRevoked);
        foreach (var expected in new[] { 1, 3, 9 })
        {
            Assert.Equal((expected, "retry"), await agent.Log.NextWaitAsync());
            server.Time.Advance(expected);
        }

        await agent.Log.NextWaitAsync();
        Assert.Equal(4, faults.CountOf(Auth, 401));
        Assert.Equal(1, faults.CountOf("/ws/device"));
        Assert.Contains("refused the device secret", Assert.Single(agent.Log.Entries, e => e.EventId == Lost).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_channel_the_gateway_closes_is_reopened_with_backoff()
    {
        var server = new AgentGateway("none");
        var faults = new GatewayFaults();
        await using var agent = RunningAgent.Start(Channel(server, "ws-gone", faults));
        Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());

        // The gateway stopping closes the channel with 1001.
        await server.DisposeAsync();
        Assert.Equal((1, "retry"), await agent.Log.NextWaitAsync());
        server.Time.Advance(1);
        Assert.Equal((3, "retry"), await agent.Log.NextWaitAsync());

        Assert.Contains("1001", Assert.Single(agent.Log.Entries, e => e.EventId == Lost).Message, StringComparison.Ordinal);
        Assert.Equal(2, faults.CountOf("/ws/device"));
    }

    [Fact]
    public async Task Stopping_closes_the_channel_and_ends_the_run()
    {
        await using var server = new AgentGateway("none");
        var agent = RunningAgent.Start(Channel(server, "ws-sigterm"));
        await agent.Log.NextWaitAsync();

        await agent.DisposeAsync();

        Assert.True(agent.Run.IsCompletedSuccessfully);
        Assert.Equal(1, agent.Log.Count(Stopped));
    }

    private static AgentSettings Channel(PresenceServer server, string deviceId, HttpMessageHandler? handler = null) =>
        RunningAgent.SettingsFor(server.BaseAddress, deviceId, server.Time, handler) with { WebSocket = true };

    private static (bool Ok, string Output) Outcome(JsonElement result) =>
        (result.GetProperty("ok").GetBoolean(), result.GetProperty("output").GetString()!);
}
