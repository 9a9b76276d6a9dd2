using System.Net;
using System.Text;
using System.Text.Json;
using Presence.Agent.Docker;
using Presence.Agent.Host;
using Presence.Agent.Reporting;
using Presence.Agent.Tests.Support;

namespace Presence.Agent.Tests.Reporting;

public sealed class HeartbeatJsonTests
{
    private static readonly HeartbeatJson.Identity Identity = new("agent-42", "Rack 3 agent", "linux", "1.2.3");
    private static readonly HostMetrics Metrics = new(12.5, 40.1, 1_000_000, 86400.5, 0.25);

    [Fact]
    public void A_heartbeat_carries_identity_metrics_and_containers()
    {
        var report = new HostReport(Metrics, [new ContainerInfo("web", "nginx:1.27", "running", "80/tcp")]);

        var json = JsonDocument.Parse(HeartbeatJson.Heartbeat(Identity, report, frame: false, out var sent)).RootElement;

        Assert.Equal(1, sent);
        Assert.False(json.TryGetProperty("type", out _));
        Assert.Equal("agent-42", json.GetProperty("device_id").GetString());
        Assert.Equal("Rack 3 agent", json.GetProperty("device_name").GetString());
        Assert.Equal("linux", json.GetProperty("platform").GetString());
        Assert.Equal("1.2.3", json.GetProperty("app_version").GetString());
        Assert.Equal("""{"cpu_pct":12.5,"mem_pct":40.1,"mem_used_bytes":1000000,"uptime_s":86400.5,"load1":0.25}""", json.GetProperty("metrics").GetRawText());
        Assert.Equal("web", json.GetProperty("containers")[0].GetProperty("name").GetString());
    }

    [Fact]
    public void A_frame_has_its_type_and_unknown_metrics_and_containers_are_left_out()
    {
        var report = new HostReport(HostMetrics.None with { UptimeS = 5 }, null);

        var json = JsonDocument.Parse(HeartbeatJson.Heartbeat(Identity with { DeviceName = null }, report, frame: true, out _)).RootElement;

        Assert.Equal("heartbeat", json.GetProperty("type").GetString());
        Assert.False(json.TryGetProperty("device_name", out _));
        Assert.False(json.TryGetProperty("containers", out _));
        Assert.Equal("""{"uptime_s":5}""", json.GetProperty("metrics").GetRawText());
    }

    [Fact]
    public async Task The_most_a_host_can_report_still_fits_the_gateways_64_KiB_and_is_accepted()
    {
        // 256 containers at every field's limit (and characters JSON escapes) would be ~190 KiB: some are left out.
        var containers = Enumerable.Range(0, 256)
            .Select(i => new ContainerInfo($"{i:D3}" + new string('<', 125), new string('i', 256), new string('s', 32), new string('p', 128)))
            .ToList();
        var body = HeartbeatJson.Heartbeat(Identity, new HostReport(Metrics, containers), frame: false, out var sent);

        Assert.InRange(body.Length, 1, HeartbeatJson.MaxHeartbeatBytes);
        Assert.InRange(sent, 1, 255);
        Assert.Equal(sent, JsonDocument.Parse(body).RootElement.GetProperty("containers").GetArrayLength());

        await using var server = new AgentGateway("none");
        using var response = await server.PostRawAsync("/api/v1/heartbeat", Encoding.UTF8.GetString(body));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(sent, (await server.DeviceAsync("agent-42")).GetProperty("containers").GetArrayLength());
    }

    [Fact]
    public void A_report_is_JSON_within_16_KiB()
    {
        var containers = Enumerable.Range(0, 256).Select(i => new ContainerInfo($"c{i}", new string('i', 200), "running", "80/tcp")).ToList();

        var text = HeartbeatJson.Report(new HostReport(Metrics, containers));

        Assert.InRange(text.Length, 1, 16384);
        var json = JsonDocument.Parse(text).RootElement;
        Assert.Equal(256, json.GetProperty("containers_total").GetInt32());
        Assert.InRange(json.GetProperty("containers").GetArrayLength(), 1, 255);
        Assert.Equal(12.5, json.GetProperty("metrics").GetProperty("cpu_pct").GetDouble());
    }
}
