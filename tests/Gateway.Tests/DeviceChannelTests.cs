using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;

namespace Presence.Gateway.Tests;

public sealed class DeviceChannelTests(PresenceServer server) : IClassFixture<PresenceServer>
{
    [Fact]
    public async Task Heartbeat_frame_is_acknowledged_and_applied()
    {
        await using var device = await server.ConnectAsync("/ws/device");

        await device.SendAsync(new { type = "heartbeat", device_id = "ch-ack", metrics = new { cpu_pct = 7.0 } });
        var ack = await device.ExpectAsync("ack");

        Assert.Equal(30, ack.GetProperty("poll_interval_s").GetInt32());
        Assert.Equal(Grains.Abstractions.PresenceJson.FormatTime(server.Time.GetUtcNow().UtcDateTime), ack.GetProperty("server_time").GetString());
        var state = await server.GetJsonAsync("/api/v1/devices/ch-ack");
        Assert.Equal("online", state.GetProperty("status").GetString());
        Assert.Equal(7.0, state.GetProperty("metrics").GetProperty("cpu_pct").GetDouble());
    }

    [Fact]
    public async Task Device_stays_online_while_its_channel_is_open_and_goes_offline_after_the_grace_when_it_closes()
    {
        var device = await server.ConnectAsync("/ws/device");
        await device.SendAsync(new { type = "heartbeat", device_id = "ch-grace" });
        await device.ExpectAsync("ack");

        await server.AdvanceAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("online", (await server.GetJsonAsync("/api/v1/devices/ch-grace")).GetProperty("status").GetString());

        var cursor = (await server.GetJsonAsync("/api/v1/events")).GetProperty("next_cursor").GetString();
        await device.DisposeAsync();
        await WaitForChannelClosedAsync("ch-grace");

        await server.AdvanceAsync(TimeSpan.FromSeconds(1.5));
        Assert.Equal("online", (await server.GetJsonAsync("/api/v1/devices/ch-grace")).GetProperty("status").GetString());
        await server.AdvanceAsync(TimeSpan.FromSeconds(1));

        var events = (await server.GetJsonAsync($"/api/v1/events?since={cursor}&device_id=ch-grace")).GetProperty("events");
        var offline = Assert.Single(events.EnumerateArray());
        Assert.Equal("offline", offline.GetProperty("data").GetProperty("status").GetString());
        Assert.Equal("disconnected", offline.GetProperty("data").GetProperty("reason").GetString());
    }

    [Fact]
    public async Task Reconnecting_within_the_grace_keeps_the_device_online_without_events()
    {
        var first = await server.ConnectAsync("/ws/device");
        await first.SendAsync(new { type = "heartbeat", device_id = "ch-reconnect" });
        await first.ExpectAsync("ack");
        var cursor = (await server.GetJsonAsync("/api/v1/events")).GetProperty("next_cursor").GetString();

        await first.DisposeAsync();
        await WaitForChannelClosedAsync("ch-reconnect");
        await server.AdvanceAsync(TimeSpan.FromSeconds(1));
        await using var second = await server.ConnectAsync("/ws/device");
        await second.SendAsync(new { type = "heartbeat", device_id = "ch-reconnect" });
        await second.ExpectAsync("ack");
        await server.AdvanceAsync(TimeSpan.FromSeconds(10));

        Assert.Equal("online", (await server.GetJsonAsync("/api/v1/devices/ch-reconnect")).GetProperty("status").GetString());
        var events = (await server.GetJsonAsync($"/api/v1/events?since={cursor}&device_id=ch-reconnect")).GetProperty("events");
        Assert.Empty(events.EnumerateArray());
    }

    [Fact]
    public async Task Command_to_a_device_without_a_channel_is_409_device_not_connected()
    {
        (await server.HeartbeatAsync("ch-http-only")).EnsureSuccessStatusCode();

        using var response = await server.PostJsonAsync("/api/v1/devices/ch-http-only/commands", new { name = "ping" });

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Equal("DEVICE_NOT_CONNECTED", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Invalid_frames_get_error_frames_and_the_channel_stays_usable()
    {
        await using var device = await server.ConnectAsync("/ws/device");

        await device.SendTextAsync("not json");
        Assert.Equal("INVALID_BODY", (await device.ExpectAsync("error")).GetProperty("error").GetProperty("code").GetString());
        await device.SendAsync(new { type = "command_result", command_id = "x", ok = true });
        Assert.Equal("CONFLICT", (await device.ExpectAsync("error")).GetProperty("error").GetProperty("code").GetString());
        await device.SendAsync(new { type = "heartbeat", device_id = "bad id" });
        var invalid = (await device.ExpectAsync("error")).GetProperty("error");
        Assert.Equal("device_id", invalid.GetProperty("details")[0].GetProperty("field").GetString());
        await device.Socket.SendAsync(new byte[] { 1, 2, 3 }, WebSocketMessageType.Binary, true, TestSocket.Timeout());
        Assert.Equal("INVALID_BODY", (await device.ExpectAsync("error")).GetProperty("error").GetProperty("code").GetString());

        await device.SendAsync(new { type = "heartbeat", device_id = "ch-errors" });
        await device.ExpectAsync("ack");
        await device.SendAsync(new { type = "heartbeat", device_id = "ch-someone-else" });
        Assert.Equal("INVALID_BODY", (await device.ExpectAsync("error")).GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Frame_over_64_KiB_closes_the_channel_with_1009()
    {
        await using var device = await server.ConnectAsync("/ws/device");

        await device.SendTextAsync($"{{\"type\":\"heartbeat\",\"device_id\":\"ch-big\",\"device_name\":\"{new string('x', 70_000)}\"}}");

        Assert.Null(await device.ReceiveAsync());
        Assert.Equal(WebSocketCloseStatus.MessageTooBig, device.CloseStatus);
    }

    [Fact]
    public async Task Flooding_client_is_closed_with_1008()
    {
        await using var device = await server.ConnectAsync("/ws/device");

        // Time stands still, so the bucket never refills: the 61st message is one too many.
        for (var i = 0; i < 61; i++)
        {
            await device.SendTextAsync("{}");
        }

        var errors = 0;
        while (await device.ReceiveAsync() is { } message)
        {
            Assert.Equal("error", message.GetProperty("type").GetString());
            errors++;
        }

        Assert.Equal(60, errors);
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, device.CloseStatus);
    }

    /// <summary>The gateway reports a closed channel to the grain after the socket ends; wait for that phase.</summary>
    private async Task WaitForChannelClosedAsync(string deviceId)
    {
        var channels = server.Services.GetRequiredService<Channels.DeviceChannels>();
        var key = new Grains.Abstractions.DeviceKey(Grains.Abstractions.DeviceKey.DefaultTenant, deviceId);
        while (true)
        {
            var changed = channels.WhenChangedAsync();
            if (!channels.IsOpen(key))
            {
                return;
            }

            await changed.WaitAsync(TimeSpan.FromSeconds(20));
        }
    }
}
