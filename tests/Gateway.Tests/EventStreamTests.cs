using System.Net;
using System.Net.WebSockets;
using System.Text.Json;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Presence.Grains.Abstractions;

namespace Presence.Gateway.Tests;

public sealed class EventStreamTests(PresenceServer server) : IClassFixture<PresenceServer>
{
    [Fact]
    public async Task Portal_gets_hello_then_a_snapshot_then_live_events_in_order()
    {
        (await server.HeartbeatAsync("es-before")).EnsureSuccessStatusCode();
        await using var portal = await server.ConnectAsync("/ws/events");

        var hello = await portal.ExpectAsync("hello");
        var snapshot = await portal.ExpectAsync("snapshot");
        Assert.Contains(snapshot.GetProperty("devices").EnumerateArray(), d => d.GetProperty("device_id").GetString() == "es-before");
        Assert.Equal(hello.GetProperty("cursor").GetString(), snapshot.GetProperty("cursor").GetString());

        (await server.HeartbeatAsync("es-live")).EnsureSuccessStatusCode();
        var registered = (await portal.ExpectAsync("event")).GetProperty("event");
        var online = (await portal.ExpectAsync("event")).GetProperty("event");

        Assert.Equal("device.registered", registered.GetProperty("type").GetString());
        Assert.Equal("es-live", registered.GetProperty("deviceid").GetString());
        Assert.Equal(1, registered.GetProperty("sequence").GetInt64());
        Assert.Equal("device.status", online.GetProperty("type").GetString());
        Assert.Equal(2, online.GetProperty("sequence").GetInt64());
        Assert.Equal("online", online.GetProperty("data").GetProperty("status").GetString());
        Assert.Equal("heartbeat", online.GetProperty("data").GetProperty("reason").GetString());
    }

    [Fact]
    public async Task Silence_becomes_an_offline_event_on_the_stream()
    {
        (await server.HeartbeatAsync("es-silent")).EnsureSuccessStatusCode();
        await using var portal = await server.ConnectAsync("/ws/events");
        await portal.ExpectAsync("hello");
        await portal.ExpectAsync("snapshot");
        var subscribed = new { type = "subscribe", device_ids = new[] { "es-silent" } };
        await portal.SendAsync(subscribed);
        await portal.ExpectAsync("snapshot");

        await server.AdvanceAsync(TimeSpan.FromSeconds(3.5));

        var offline = (await portal.ExpectAsync("event")).GetProperty("event");
        Assert.Equal("es-silent", offline.GetProperty("deviceid").GetString());
        Assert.Equal("offline", offline.GetProperty("data").GetProperty("status").GetString());
        Assert.Equal("timeout", offline.GetProperty("data").GetProperty("reason").GetString());
    }

    [Fact]
    public async Task Resume_from_a_cursor_delivers_every_later_event_exactly_once_and_no_snapshot()
    {
        var start = (await server.GetJsonAsync("/api/v1/events")).GetProperty("next_cursor").GetString();
        foreach (var id in new[] { "es-r1", "es-r2", "es-r3" })
        {
            (await server.HeartbeatAsync(id)).EnsureSuccessStatusCode();
        }

        var expected = await AllEventIdsAfterAsync(start!);
        var middle = expected[2];

        await using var portal = await server.ConnectAsync($"/ws/events?since={middle}");
        await portal.ExpectAsync("hello");
        var received = new List<string>();
        foreach (var _ in expected.Skip(3))
        {
            received.Add((await portal.ExpectAsync("event")).GetProperty("event").GetProperty("id").GetString()!);
        }

        Assert.Equal(expected.Skip(3), received);

        (await server.HeartbeatAsync("es-r4")).EnsureSuccessStatusCode();
        var live = (await portal.ExpectAsync("event")).GetProperty("event");
        Assert.Equal("es-r4", live.GetProperty("deviceid").GetString());
        Assert.DoesNotContain(live.GetProperty("id").GetString(), received);
    }

    [Fact]
    public async Task Cursor_of_another_epoch_gets_reset_then_snapshot()
    {
        await using var portal = await server.ConnectAsync("/ws/events?since=1-5");

        await portal.ExpectAsync("hello");
        var reset = await portal.ExpectAsync("reset");
        Assert.Equal("CURSOR_EXPIRED", reset.GetProperty("reason").GetString());
        await portal.ExpectAsync("snapshot");
    }

    [Fact]
    public async Task Malformed_cursor_is_refused_before_the_upgrade()
    {
        var error = await Assert.ThrowsAsync<WebSocketException>(() => server.ConnectAsync("/ws/events?since=not-a-cursor"));
        Assert.Contains("400", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Subscription_narrows_the_stream_and_all_widens_it_again()
    {
        await using var portal = await server.ConnectAsync("/ws/events");
        await portal.ExpectAsync("hello");
        await portal.ExpectAsync("snapshot");

        await portal.SendAsync(new { type = "subscribe", device_ids = new[] { "es-watched" } });
        var narrowed = await portal.ExpectAsync("snapshot");
        Assert.Empty(narrowed.GetProperty("devices").EnumerateArray());

        (await server.HeartbeatAsync("es-other")).EnsureSuccessStatusCode();
        (await server.HeartbeatAsync("es-watched")).EnsureSuccessStatusCode();
        var first = (await portal.ExpectAsync("event")).GetProperty("event");
        Assert.Equal("es-watched", first.GetProperty("deviceid").GetString());
        Assert.Equal("device.registered", first.GetProperty("type").GetString());
        Assert.Equal("es-watched", (await portal.ExpectAsync("event")).GetProperty("event").GetProperty("deviceid").GetString());

        await portal.SendAsync(new { type = "subscribe", all = true });
        var widened = await portal.ExpectAsync("snapshot");
        Assert.Contains(widened.GetProperty("devices").EnumerateArray(), d => d.GetProperty("device_id").GetString() == "es-other");
        (await server.HeartbeatAsync("es-third")).EnsureSuccessStatusCode();
        Assert.Equal("es-third", (await portal.ExpectAsync("event")).GetProperty("event").GetProperty("deviceid").GetString());
    }

    [Fact]
    public async Task Invalid_frames_get_error_frames_and_the_socket_stays_open()
    {
        await using var portal = await server.ConnectAsync("/ws/events");
        await portal.ExpectAsync("hello");
        await portal.ExpectAsync("snapshot");

        await portal.SendTextAsync("{not json");
        Assert.Equal("INVALID_BODY", (await portal.ExpectAsync("error")).GetProperty("error").GetProperty("code").GetString());
        await portal.SendAsync(new { type = "subscribe", device_ids = new[] { "bad id!" } });
        var error = (await portal.ExpectAsync("error")).GetProperty("error");
        Assert.Equal("device_ids[0]", error.GetProperty("details")[0].GetProperty("field").GetString());
        await portal.SendAsync(new { type = "dance" });
        Assert.Equal("INVALID_BODY", (await portal.ExpectAsync("error")).GetProperty("error").GetProperty("code").GetString());

        (await server.HeartbeatAsync("es-after-errors")).EnsureSuccessStatusCode();
        Assert.Equal("es-after-errors", (await portal.ExpectAsync("event")).GetProperty("event").GetProperty("deviceid").GetString());
    }

    private async Task<List<string>> AllEventIdsAfterAsync(string cursor)
    {
        var page = await server.GetJsonAsync($"/api/v1/events?since={cursor}&limit=1000");
        return page.GetProperty("events").EnumerateArray().Select(e => e.GetProperty("id").GetString()!).ToList();
    }
}

/// <summary>A gateway whose sockets buffer little, so a portal that stops reading falls behind quickly.</summary>
public sealed class SmallBufferServer() : PresenceServer(new() { ["Presence:Events:MaxSubscriberLag"] = "100" })
{
    protected override void ConfigureListener(ListenOptions listener) =>
        listener.Use(next => connection =>
        {
            if (connection.Features.Get<IConnectionSocketFeature>()?.Socket is { } socket)
            {
                socket.SendBufferSize = 4096;
            }

            return next(connection);
        });
}

public sealed class SlowConsumerTests(SmallBufferServer server) : IClassFixture<SmallBufferServer>
{
    [Fact]
    public async Task Portal_that_falls_behind_is_closed_with_4008_and_resumes_from_its_last_cursor_without_gap_or_duplicate()
    {
        await using var portal = await server.ConnectAsync("/ws/events", receiveBuffer: 4096);
        await portal.ExpectAsync("hello");
        var cursor = (await portal.ExpectAsync("snapshot")).GetProperty("cursor").GetString();

        // The portal stops reading while 1,500 devices register (3,000 events, far more than the socket buffers hold).
        var grains = server.Silo;
        await Task.WhenAll(Enumerable.Range(0, 1500).Select(i =>
            grains.HeartbeatAsync(new DeviceKey(DeviceKey.DefaultTenant, $"slow-{i:D4}"), new HeartbeatInput($"slow-{i:D4}")).AsTask()));
        await grains.QuiesceAsync();

        var received = new List<JsonElement>();
        while (await portal.ReceiveAsync() is { } message)
        {
            Assert.Equal("event", message.GetProperty("type").GetString());
            received.Add(message.GetProperty("event"));
        }

        // Depending on scheduling the close may come before any event: the burst alone exceeds the allowed lag.
        Assert.Equal((WebSocketCloseStatus)4008, portal.CloseStatus);
        Assert.InRange(received.Count, 0, 2999);

        var last = received.Count > 0 ? received[^1].GetProperty("id").GetString() : cursor;
        await using var resumed = await server.ConnectAsync($"/ws/events?since={last}");
        await resumed.ExpectAsync("hello");
        for (var i = received.Count; i < 3000; i++)
        {
            received.Add((await resumed.ExpectAsync("event")).GetProperty("event"));
        }

        var positions = received.Select(e => long.Parse(e.GetProperty("id").GetString()!.Split('-')[1], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(Enumerable.Range((int)positions[0], 3000).Select(p => (long)p), positions);
        Assert.Equal(1500, received.Select(e => e.GetProperty("deviceid").GetString()).Distinct().Count());
    }
}
