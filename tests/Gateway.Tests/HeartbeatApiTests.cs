using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Presence.Gateway.Tests;

public sealed class HeartbeatApiTests(PresenceServer server) : IClassFixture<PresenceServer>
{
    [Fact]
    public async Task First_heartbeat_registers_the_device_and_answers_the_contract()
    {
        using var response = await server.HeartbeatAsync("hb-first", new { device_name = "  Rack 3 agent ", platform = "linux", app_version = "1.4.2", metrics = new { cpu_pct = 12.5 } });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("ok", body.GetProperty("status").GetString());
        Assert.Equal("online", body.GetProperty("device_status").GetString());
        Assert.Equal(30, body.GetProperty("poll_interval_s").GetInt32());
        Assert.Equal(3, body.GetProperty("timeout_s").GetInt32());
        Assert.Equal("2026-11-22T10:00:00.000Z", body.GetProperty("server_time").GetString());
        Assert.Matches("^[0-9a-f]{16}$", body.GetProperty("session_id").GetString());

        var device = await server.GetJsonAsync("/api/v1/devices/hb-first");
        Assert.Equal("Rack 3 agent", device.GetProperty("device_name").GetString());
        Assert.Equal("linux", device.GetProperty("platform").GetString());
        Assert.Equal(12.5, device.GetProperty("metrics").GetProperty("cpu_pct").GetDouble());
        Assert.Equal(1, device.GetProperty("version").GetInt64());
    }

    [Fact]
    public async Task Connect_alias_accepts_the_same_heartbeat()
    {
        using var response = await server.PostJsonAsync("/api/connect", new { device_id = "hb-alias" });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("online", (await server.GetJsonAsync("/api/v1/devices/hb-alias")).GetProperty("status").GetString());
    }
}
