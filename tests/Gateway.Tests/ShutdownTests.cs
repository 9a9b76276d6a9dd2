using System.Net.WebSockets;

namespace Presence.Gateway.Tests;

public sealed class ShutdownTests
{
    [Fact]
    public async Task Stopping_the_gateway_closes_both_websockets_with_1001()
    {
        var server = new PresenceServer();
        await using var portal = await server.ConnectAsync("/ws/events");
        await portal.ExpectAsync("hello");
        await portal.ExpectAsync("snapshot");
        await using var device = await server.ConnectAsync("/ws/device");
        await device.SendAsync(new { type = "heartbeat", device_id = "sd-device" });
        await device.ExpectAsync("ack");

        var stopping = server.DisposeAsync().AsTask();

        while (await portal.ReceiveAsync() is { } message)
        {
            Assert.Equal("event", message.GetProperty("type").GetString()); // the device's registration may still arrive first
        }

        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, portal.CloseStatus);
        Assert.Null(await device.ReceiveAsync());
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, device.CloseStatus);
        await portal.DisposeAsync();
        await device.DisposeAsync();
        await stopping.WaitAsync(TimeSpan.FromSeconds(20));
    }
}
