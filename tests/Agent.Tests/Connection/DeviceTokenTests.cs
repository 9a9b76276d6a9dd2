using System.Net;
using Presence.Agent.Tests.Support;

namespace Presence.Agent.Tests.Connection;

/// <summary>The device-token flow over HTTP: a token for the secret, renewed before it expires and after a 401.</summary>
public sealed class DeviceTokenTests
{
    private const string Auth = "/api/v1/devices/auth";
    private const string Heartbeat = "/api/v1/heartbeat";
    private const int Lost = 5003;
    private const int TokenObtained = 5011;
    private static readonly DateTimeOffset Start = new Presence.Testing.ManualTimeProvider().GetUtcNow();

    [Fact]
    public async Task The_agent_trades_its_secret_for_a_token_and_heartbeats_with_it()
    {
        await using var server = new AgentGateway("device-token");
        var secret = await server.ProvisionAsync("agent-token", AgentGateway.AdminKey);
        var faults = new GatewayFaults();
        await using var agent = RunningAgent.Start(RunningAgent.SettingsFor(server.BaseAddress, "agent-token", server.Time, faults) with { Secret = secret });

        Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());
        server.Time.Advance(10);
        Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());

        Assert.Equal("online", (await server.DeviceAsync("agent-token")).GetProperty("status").GetString());
        Assert.Equal([(Auth, 200), (Heartbeat, 200), (Heartbeat, 200)], faults.Requests);
        var log = string.Join('\n', agent.Log.Entries.Select(e => e.Message));
        Assert.DoesNotContain(secret, log, StringComparison.Ordinal);
        Assert.DoesNotContain("v1.", log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_token_is_renewed_at_80_percent_of_its_lifetime_before_it_expires()
    {
        // Tokens live one minute: renewal is due at 48 s, the sixth heartbeat (at 50 s) gets a new token first.
        await using var server = new AgentGateway("device-token", new() { ["Presence:Auth:TokenLifetimeMinutes"] = "1" });
        var secret = await server.ProvisionAsync("agent-renew", AgentGateway.AdminKey);
        var faults = new GatewayFaults();
        await using var agent = RunningAgent.Start(RunningAgent.SettingsFor(server.BaseAddress, "agent-renew", server.Time, faults) with { Secret = secret });

        for (var beat = 1; beat <= 8; beat++)
        {
            Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());
            Assert.Equal(beat <= 5 ? 1 : 2, faults.CountOf(Auth));
            server.Time.Advance(10);
        }

        await agent.Log.NextWaitAsync();
        var tokens = agent.Log.Entries.Where(e => e.EventId == TokenObtained).Select(e => (DateTimeOffset)e.Values["ExpiresAt"]!).ToList();
        Assert.Equal([Start.AddSeconds(60), Start.AddSeconds(50 + 60)], tokens);
        Assert.Equal(0, faults.CountOf(Heartbeat, 401));
        Assert.Equal(9, faults.CountOf(Heartbeat, 200));
    }

    [Fact]
    public async Task A_refused_token_is_replaced_and_the_heartbeat_sent_again_at_once()
    {
        await using var server = new AgentGateway("device-token");
        var secret = await server.ProvisionAsync("agent-401", AgentGateway.AdminKey);
        var faults = new GatewayFaults();
        await using var agent = RunningAgent.Start(RunningAgent.SettingsFor(server.BaseAddress, "agent-401", server.Time, faults) with { Secret = secret });
        Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());

        faults.AnswerNext(Heartbeat, HttpStatusCode.Unauthorized);
        server.Time.Advance(10);

        Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());
        Assert.Equal([(Auth, 200), (Heartbeat, 200), (Heartbeat, 401), (Auth, 200), (Heartbeat, 200)], faults.Requests);
        Assert.Equal(0, agent.Log.Count(Lost));
    }

    [Fact]
    public async Task After_the_secret_is_rotated_the_agent_keeps_failing_with_backoff_and_logs_it_once()
    {
        await using var server = new AgentGateway("device-token");
        var secret = await server.ProvisionAsync("agent-rotated", AgentGateway.AdminKey);
        var faults = new GatewayFaults();
        await using var agent = RunningAgent.Start(RunningAgent.SettingsFor(server.BaseAddress, "agent-rotated", server.Time, faults) with { Secret = secret });
        Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());

        using (var rotated = await server.SendAsync(HttpMethod.Put, "/api/v1/devices/agent-rotated?rotate_secret=true", AgentGateway.AdminKey))
        {
            Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        }

        server.Time.Advance(10);
        foreach (var expected in new[] { 1, 3, 9, 30, 30 })
        {
            Assert.Equal((expected, "retry"), await agent.Log.NextWaitAsync());
            server.Time.Advance(expected);
        }

        await agent.Log.NextWaitAsync();
        // One token request per attempt: the first 401 to a heartbeat, then each retry; never a spin.
        Assert.Equal(1 + 6, faults.CountOf(Auth));
        Assert.Equal(6, faults.CountOf(Auth, 401));
        Assert.Equal(1, faults.CountOf(Heartbeat, 401));
        var lost = Assert.Single(agent.Log.Entries, e => e.EventId == Lost).Message;
        Assert.Contains("refused the device secret", lost, StringComparison.Ordinal);
    }
}
