using System.Net;
using System.Text.Json;
using Presence.Agent.Tests.Support;
using Presence.Testing;

namespace Presence.Agent.Tests.Connection;

/// <summary>The agent over HTTP against the real gateway on loopback, sharing its driven clock.</summary>
public sealed class HttpAgentTests
{
    private const int Connected = 5002;
    private const int Lost = 5003;
    private const int Unreachable = 5004;
    private const int Restored = 5005;
    private const int RateLimited = 5007;
    private const int Stopped = 5017;

    [Fact]
    public async Task Heartbeats_arrive_with_the_hosts_metrics_and_containers()
    {
        await using var server = new AgentGateway("none");
        await using var docker = await FakeDockerEngine.StartAsync();
        docker.Answer("""[{"Id":"0123456789abcdef","Names":["/web"],"Image":"nginx:1.27","State":"running","Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"}]}]""");
        await using var agent = RunningAgent.Start(RunningAgent.SettingsFor(server.BaseAddress, "agent-metrics", server.Time) with { DockerSocket = docker.SocketPath });

        Assert.Equal((AgentGateway.IntervalSeconds, "interval"), await agent.Log.NextWaitAsync());

        var device = await server.DeviceAsync("agent-metrics");
        Assert.Equal("online", device.GetProperty("status").GetString());
        Assert.Equal("test agent agent-metrics", device.GetProperty("device_name").GetString());
        Assert.Equal("linux", device.GetProperty("platform").GetString());
        Assert.Equal("9.9.9-test", device.GetProperty("app_version").GetString());
        var metrics = device.GetProperty("metrics");
        Assert.InRange(metrics.GetProperty("cpu_pct").GetDouble(), 0, 100);
        Assert.InRange(metrics.GetProperty("mem_pct").GetDouble(), double.Epsilon, 100);
        Assert.True(metrics.GetProperty("mem_used_bytes").GetDouble() > 0);
        Assert.True(metrics.GetProperty("uptime_s").GetDouble() > 0);
        Assert.True(metrics.GetProperty("load1").GetDouble() >= 0);
        var container = Assert.Single(device.GetProperty("containers").EnumerateArray());
        Assert.Equal(
            ("web", "nginx:1.27", "running", "0.0.0.0:8080->80/tcp"),
            (container.GetProperty("name").GetString(), container.GetProperty("image").GetString(),
             container.GetProperty("state").GetString(), container.GetProperty("ports").GetString()));
        Assert.Equal(1, agent.Log.Count(Connected));
    }

    [Fact]
    public async Task The_agent_follows_the_gateways_interval_with_its_jitter()
    {
        await using var server = new AgentGateway("none");
        var settings = RunningAgent.SettingsFor(server.BaseAddress, "agent-interval", server.Time) with { Jitter = delay => delay * 1.1 };
        await using var agent = RunningAgent.Start(settings);

        Assert.Equal((11, "interval"), await agent.Log.NextWaitAsync());
        var version = await server.VersionAsync("agent-interval");

        // Not due yet: the timer has not fired, so no heartbeat was even started.
        server.Time.Advance(10.9);
        Assert.Equal(version, await server.VersionAsync("agent-interval"));

        server.Time.Advance(0.1);
        Assert.Equal((11, "interval"), await agent.Log.NextWaitAsync());
        Assert.Equal(version + 1, await server.VersionAsync("agent-interval"));

        server.Time.Advance(11);
        Assert.Equal((11, "interval"), await agent.Log.NextWaitAsync());
        Assert.Equal(version + 2, await server.VersionAsync("agent-interval"));
    }

    [Fact]
    public async Task A_closed_port_gets_backoff_1_3_9_then_every_30_seconds_and_one_log_line()
    {
        var time = new ManualTimeProvider();
        var closed = new Uri($"http://127.0.0.1:{ClosedPort()}/");
        await using var agent = RunningAgent.Start(RunningAgent.SettingsFor(closed, "agent-nowhere", time));

        foreach (var expected in new[] { 1, 3, 9, 30, 30, 30 })
        {
            Assert.Equal((expected, "retry"), await agent.Log.NextWaitAsync());
            time.Advance(expected);
        }

        await agent.Log.NextWaitAsync();
        Assert.Equal(1, agent.Log.Count(Unreachable));
        Assert.Equal(0, agent.Log.Count(Lost));
        Assert.Equal(0, agent.Log.Count(Connected));
        Assert.Contains("ConnectionRefused", agent.Log.Entries.Single(e => e.EventId == Unreachable).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_gateway_that_goes_away_is_retried_with_backoff_and_its_return_is_logged_once()
    {
        await using var server = new AgentGateway("none");
        var faults = new GatewayFaults();
        await using var agent = RunningAgent.Start(RunningAgent.SettingsFor(server.BaseAddress, "agent-outage", server.Time, faults));
        Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());

        faults.Down = true;
        server.Time.Advance(10);
        foreach (var expected in new[] { 1, 3, 9, 30, 30 })
        {
            Assert.Equal((expected, "retry"), await agent.Log.NextWaitAsync());
            server.Time.Advance(expected);
        }

        // The sixth attempt is under way; the one after it finds the gateway back.
        Assert.Equal((30, "retry"), await agent.Log.NextWaitAsync());
        faults.Down = false;
        server.Time.Advance(30);
        Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());

        Assert.Equal(1, agent.Log.Count(Lost));
        var back = Assert.Single(agent.Log.Entries, e => e.EventId == Restored);
        Assert.Equal(6, back.Values["Attempts"]);
        Assert.Equal(1 + 3 + 9 + 30 + 30 + 30, Convert.ToDouble(back.Values["Seconds"], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(8, faults.CountOf("/api/v1/heartbeat"));
        Assert.Equal("online", (await server.DeviceAsync("agent-outage")).GetProperty("status").GetString());
    }

    [Fact]
    public async Task A_stopped_gateway_is_a_lost_connection_with_the_socket_error()
    {
        var server = new AgentGateway("none");
        await using var agent = RunningAgent.Start(RunningAgent.SettingsFor(server.BaseAddress, "agent-stopped-gw", server.Time));
        Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());

        await server.DisposeAsync();
        server.Time.Advance(10);
        Assert.Equal((1, "retry"), await agent.Log.NextWaitAsync());
        server.Time.Advance(1);
        Assert.Equal((3, "retry"), await agent.Log.NextWaitAsync());

        var lost = Assert.Single(agent.Log.Entries, e => e.EventId == Lost);
        Assert.Contains("ConnectionRefused", lost.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rate_limiting_waits_for_Retry_After_and_is_logged_once_without_a_lost_connection()
    {
        await using var server = new AgentGateway("none");
        var faults = new GatewayFaults();
        faults.AnswerNext("/api/v1/heartbeat", HttpStatusCode.TooManyRequests, retryAfter: 7);
        faults.AnswerNext("/api/v1/heartbeat", HttpStatusCode.TooManyRequests, retryAfter: 5);
        await using var agent = RunningAgent.Start(RunningAgent.SettingsFor(server.BaseAddress, "agent-429", server.Time, faults));

        Assert.Equal((7, "rate limited"), await agent.Log.NextWaitAsync());
        server.Time.Advance(7);
        Assert.Equal((5, "rate limited"), await agent.Log.NextWaitAsync());
        server.Time.Advance(5);
        Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());

        Assert.Equal(1, agent.Log.Count(RateLimited));
        Assert.Equal(0, agent.Log.Count(Unreachable) + agent.Log.Count(Lost));
    }

    [Fact]
    public async Task An_unavailable_gateway_is_retried_after_its_Retry_After()
    {
        await using var server = new AgentGateway("none");
        var faults = new GatewayFaults();
        await using var agent = RunningAgent.Start(RunningAgent.SettingsFor(server.BaseAddress, "agent-503", server.Time, faults));
        Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());

        faults.AnswerNext("/api/v1/heartbeat", HttpStatusCode.ServiceUnavailable, retryAfter: 2);
        faults.AnswerNext("/api/v1/heartbeat", HttpStatusCode.ServiceUnavailable);
        server.Time.Advance(10);
        Assert.Equal((2, "retry after"), await agent.Log.NextWaitAsync());
        server.Time.Advance(2);
        Assert.Equal((3, "retry"), await agent.Log.NextWaitAsync());
        server.Time.Advance(3);
        Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());

        Assert.Contains("HTTP 503", Assert.Single(agent.Log.Entries, e => e.EventId == Lost).Message, StringComparison.Ordinal);
        Assert.Equal(2, Assert.Single(agent.Log.Entries, e => e.EventId == Restored).Values["Attempts"]);
    }

    [Fact]
    public async Task Shared_secret_mode_sends_X_Connect_Secret()
    {
        await using var server = new AgentGateway("shared-secret");
        await using var agent = RunningAgent.Start(
            RunningAgent.SettingsFor(server.BaseAddress, "agent-shared", server.Time) with { SharedSecret = AgentGateway.ConnectSecret });

        Assert.Equal((10, "interval"), await agent.Log.NextWaitAsync());
        Assert.Equal("online", (await server.DeviceAsync("agent-shared")).GetProperty("status").GetString());
    }

    [Fact]
    public async Task A_wrong_shared_secret_is_logged_once_and_retried_with_backoff()
    {
        await using var server = new AgentGateway("shared-secret");
        await using var agent = RunningAgent.Start(
            RunningAgent.SettingsFor(server.BaseAddress, "agent-wrong", server.Time) with { SharedSecret = "not-the-fleet-secret-at-all" });

        Assert.Equal((1, "retry"), await agent.Log.NextWaitAsync());
        server.Time.Advance(1);
        Assert.Equal((3, "retry"), await agent.Log.NextWaitAsync());

        var line = Assert.Single(agent.Log.Entries, e => e.EventId == Unreachable).Message;
        Assert.Contains("refused the shared secret", line, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-fleet-secret-at-all", string.Join('\n', agent.Log.Entries), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stopping_ends_the_run_cleanly_and_sends_nothing_more()
    {
        await using var server = new AgentGateway("none");
        var faults = new GatewayFaults();
        var agent = RunningAgent.Start(RunningAgent.SettingsFor(server.BaseAddress, "agent-sigterm", server.Time, faults));
        await agent.Log.NextWaitAsync();

        await agent.DisposeAsync();

        Assert.True(agent.Run.IsCompletedSuccessfully);
        Assert.Equal(1, agent.Log.Count(Stopped));
        server.Time.Advance(60);
        Assert.Equal(1, faults.CountOf("/api/v1/heartbeat"));
    }

    internal static int ClosedPort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
