using System.Globalization;
using System.Net;
using System.Text.Json;

namespace Presence.Gateway.Tests;

/// <summary><c>GET /api/v1/events</c>: the current end, resuming from a cursor exactly once, filters, and the event shape.</summary>
public sealed class EventsApiTests(PresenceServer server) : IClassFixture<PresenceServer>
{
    [Fact]
    public async Task Empty_query_parameters_count_as_absent()
    {
        (await server.HeartbeatAsync("ev-empty-args")).EnsureSuccessStatusCode();

        var devices = await server.GetJsonAsync("/api/v1/devices?limit=&status=&prefix=&after=");
        var events = await server.GetJsonAsync("/api/v1/events?limit=&since=&device_id=");

        Assert.Contains(devices.GetProperty("devices").EnumerateArray(), d => d.GetProperty("device_id").GetString() == "ev-empty-args");
        Assert.Empty(events.GetProperty("events").EnumerateArray());
    }

    [Fact]
    public async Task Without_since_the_page_is_empty_and_its_cursor_is_the_current_end()
    {
        await RegisterAsync("ev-end-1");

        var page = await server.GetJsonAsync("/api/v1/events");
        await RegisterAsync("ev-end-2");
        var next = await server.GetJsonAsync($"/api/v1/events?since={page.GetProperty("next_cursor").GetString()}");

        Assert.Empty(page.GetProperty("events").EnumerateArray());
        Assert.False(string.IsNullOrEmpty(page.GetProperty("next_cursor").GetString()));
        var events = next.GetProperty("events").EnumerateArray().ToList();
        Assert.Equal(["device.registered", "device.status"], events.Select(e => e.GetProperty("type").GetString()));
        Assert.All(events, e => Assert.Equal("ev-end-2", e.GetProperty("deviceid").GetString()));
    }

    [Fact]
    public async Task Events_after_a_cursor_come_in_order_and_exactly_once_across_pages_of_one()
    {
        var start = await CursorAsync();
        string[] devices = ["ev-page-a", "ev-page-b", "ev-page-c"];
        foreach (var id in devices)
        {
            await RegisterAsync(id);
        }

        await server.AdvanceAsync(TimeSpan.FromSeconds(3.5));
        await RegisterAsync("ev-page-b");

        var whole = (await server.GetJsonAsync($"/api/v1/events?since={start}&limit=1000")).GetProperty("events").EnumerateArray().ToList();
        var paged = new List<JsonElement>();
        var cursor = start;
        for (var pages = 0; ; pages++)
        {
            Assert.True(pages < 100, "paging does not end");
            var page = await server.GetJsonAsync($"/api/v1/events?since={cursor}&limit=1");
            var events = page.GetProperty("events").EnumerateArray().ToList();
            Assert.InRange(events.Count, 0, 1);
            var next = page.GetProperty("next_cursor").GetString()!;
            if (events.Count == 0)
            {
                Assert.Equal(cursor, next);
                break;
            }

            Assert.Equal(events[0].GetProperty("id").GetString(), next);
            paged.AddRange(events);
            cursor = next;
        }

        var ours = whole.Where(e => devices.Contains(e.GetProperty("deviceid").GetString())).ToList();
        Assert.Equal(10, ours.Count); // 3 x (registered, online), 3 x offline, 1 x online again
        Assert.Equal(whole.Select(e => e.GetRawText()), paged.Select(e => e.GetRawText()));
        Assert.Equal(paged.Count, paged.Select(e => e.GetProperty("id").GetString()).Distinct().Count());
        var positions = paged.Select(e => Position(e.GetProperty("id").GetString()!)).ToList();
        Assert.Equal(positions.Order(), positions);
        foreach (var id in devices)
        {
            var types = ours.Where(e => e.GetProperty("deviceid").GetString() == id).Select(e => e.GetProperty("type").GetString()).Take(2);
            Assert.Equal(["device.registered", "device.status"], types);
        }
    }

    [Fact]
    public async Task Next_cursor_chains_so_each_event_is_read_once()
    {
        var first = await server.GetJsonAsync($"/api/v1/events?since={await CursorAsync()}");
        Assert.Empty(first.GetProperty("events").EnumerateArray());

        await RegisterAsync("ev-chain-1");
        var second = await server.GetJsonAsync($"/api/v1/events?since={first.GetProperty("next_cursor").GetString()}");
        await RegisterAsync("ev-chain-2");
        var third = await server.GetJsonAsync($"/api/v1/events?since={second.GetProperty("next_cursor").GetString()}");
        var fourth = await server.GetJsonAsync($"/api/v1/events?since={third.GetProperty("next_cursor").GetString()}");

        Assert.Equal(["ev-chain-1", "ev-chain-1"], second.GetProperty("events").EnumerateArray().Select(e => e.GetProperty("deviceid").GetString()));
        Assert.Equal(["ev-chain-2", "ev-chain-2"], third.GetProperty("events").EnumerateArray().Select(e => e.GetProperty("deviceid").GetString()));
        Assert.Empty(fourth.GetProperty("events").EnumerateArray());
        Assert.Equal(third.GetProperty("next_cursor").GetString(), fourth.GetProperty("next_cursor").GetString());
    }

    [Fact]
    public async Task Device_id_filter_returns_only_that_devices_events_and_pages_past_others()
    {
        var start = await CursorAsync();
        await RegisterAsync("ev-filter-x");
        await RegisterAsync("ev-filter-y");
        await RegisterAsync("ev-filter-z");

        var page = await server.GetJsonAsync($"/api/v1/events?since={start}&device_id=ev-filter-y");
        var rest = await server.GetJsonAsync($"/api/v1/events?since={page.GetProperty("next_cursor").GetString()}&device_id=ev-filter-y");
        var firstOnly = await server.GetJsonAsync($"/api/v1/events?since={start}&device_id=ev-filter-y&limit=1");
        var unknown = await server.GetJsonAsync($"/api/v1/events?since={start}&device_id=ev-filter-nobody");

        var events = page.GetProperty("events").EnumerateArray().ToList();
        Assert.Equal(2, events.Count);
        Assert.All(events, e => Assert.Equal("ev-filter-y", e.GetProperty("deviceid").GetString()));
        Assert.Empty(rest.GetProperty("events").EnumerateArray());
        Assert.Equal("device.registered", Assert.Single(firstOnly.GetProperty("events").EnumerateArray()).GetProperty("type").GetString());
        Assert.Empty(unknown.GetProperty("events").EnumerateArray());
    }

    [Fact]
    public async Task Per_device_sequence_counts_every_event_without_gaps()
    {
        var start = await CursorAsync();
        await RegisterAsync("ev-seq");                                  // registered 1, online 2
        await server.AdvanceAsync(TimeSpan.FromSeconds(3.5));           // offline (timeout) 3
        await RegisterAsync("ev-seq");                                  // online 4
        await RegisterAsync("ev-seq");                                  // metrics only: no event
        using (var deleted = await server.Http.DeleteAsync("/api/v1/devices/ev-seq"))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode); // offline (removed) 5, removed 6
        }

        var events = (await server.GetJsonAsync($"/api/v1/events?since={start}&device_id=ev-seq")).GetProperty("events").EnumerateArray().ToList();

        Assert.Equal([1L, 2L, 3L, 4L, 5L, 6L], events.Select(e => e.GetProperty("sequence").GetInt64()));
        Assert.Equal(
            ["device.registered", "device.status", "device.status", "device.status", "device.status", "device.removed"],
            events.Select(e => e.GetProperty("type").GetString()));
        Assert.Equal(
            ["heartbeat", "timeout", "heartbeat", "removed"],
            events.Where(e => e.GetProperty("type").GetString() == "device.status").Select(e => e.GetProperty("data").GetProperty("reason").GetString()));
        Assert.Equal(
            ["online", "offline", "online", "offline"],
            events.Where(e => e.GetProperty("type").GetString() == "device.status").Select(e => e.GetProperty("data").GetProperty("status").GetString()));
    }

    [Fact]
    public async Task Events_are_cloudevents_with_the_presence_extensions()
    {
        var start = await CursorAsync();
        var now = server.Time.GetUtcNow();
        using (var heartbeat = await server.HeartbeatAsync("ev-shape", new { device_name = "Shape", platform = "linux" }))
        {
            Assert.Equal(HttpStatusCode.OK, heartbeat.StatusCode);
        }

        var device = await server.GetJsonAsync("/api/v1/devices/ev-shape");
        var events = (await server.GetJsonAsync($"/api/v1/events?since={start}&device_id=ev-shape")).GetProperty("events").EnumerateArray().ToList();

        Assert.Equal(2, events.Count);
        foreach (var e in events)
        {
            Assert.Equal("1.0", e.GetProperty("specversion").GetString());
            Assert.Equal("/tenants/default/devices/ev-shape", e.GetProperty("source").GetString());
            Assert.Equal("default", e.GetProperty("tenantid").GetString());
            Assert.Equal("ev-shape", e.GetProperty("deviceid").GetString());
            Assert.Equal(Time(now), e.GetProperty("time").GetString());
            Assert.False(string.IsNullOrEmpty(e.GetProperty("id").GetString()));
        }

        var registered = events[0].GetProperty("data");
        Assert.Equal("device.registered", events[0].GetProperty("type").GetString());
        Assert.Equal("Shape", registered.GetProperty("device_name").GetString());
        Assert.Equal("linux", registered.GetProperty("platform").GetString());

        var online = events[1].GetProperty("data");
        Assert.Equal("device.status", events[1].GetProperty("type").GetString());
        Assert.Equal("online", online.GetProperty("status").GetString());
        Assert.Equal("offline", online.GetProperty("previous_status").GetString());
        Assert.Equal("heartbeat", online.GetProperty("reason").GetString());
        Assert.Equal(Time(now), online.GetProperty("last_seen_at").GetString());
        Assert.Equal(device.GetProperty("session_id").GetString(), online.GetProperty("session_id").GetString());
    }

    [Fact]
    public async Task Timeout_event_comes_no_earlier_than_timeout_s_and_no_later_than_one_second_after()
    {
        var lastBeat = server.Time.GetUtcNow();
        await RegisterAsync("ev-late");
        var start = await CursorAsync();

        await server.AdvanceAsync(TimeSpan.FromSeconds(2.75));
        var early = (await server.GetJsonAsync($"/api/v1/events?since={start}&device_id=ev-late")).GetProperty("events");
        await server.AdvanceAsync(TimeSpan.FromSeconds(1.25));
        var late = (await server.GetJsonAsync($"/api/v1/events?since={start}&device_id=ev-late")).GetProperty("events");

        Assert.Empty(early.EnumerateArray());
        var offline = Assert.Single(late.EnumerateArray());
        Assert.Equal("timeout", offline.GetProperty("data").GetProperty("reason").GetString());
        var at = DateTimeOffset.Parse(offline.GetProperty("time").GetString()!, CultureInfo.InvariantCulture);
        Assert.InRange(at, lastBeat.AddSeconds(3), lastBeat.AddSeconds(4));
    }

    private async Task RegisterAsync(string deviceId)
    {
        using var response = await server.HeartbeatAsync(deviceId);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"heartbeat {deviceId}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    private async Task<string> CursorAsync() => (await server.GetJsonAsync("/api/v1/events")).GetProperty("next_cursor").GetString()!;

    /// <summary>Cursors are opaque; this suite only relies on their documented form <c>epoch-position</c> to check order.</summary>
    private static long Position(string cursor) => long.Parse(cursor[(cursor.IndexOf('-', StringComparison.Ordinal) + 1)..], CultureInfo.InvariantCulture);

    private static string Time(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
}

/// <summary><c>GET /api/v1/stats</c> on a gateway of its own, so every count is known.</summary>
public sealed class StatsApiTests(PresenceServer server) : IClassFixture<PresenceServer>
{
    [Fact]
    public async Task Stats_count_devices_by_status_new_devices_and_heartbeats_of_the_last_minute()
    {
        var empty = await server.GetJsonAsync("/api/v1/stats");
        Assert.Equal(
            new[] { "devices_total", "online", "offline", "new_last_24h", "heartbeats_last_minute" }.Order(StringComparer.Ordinal),
            empty.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(0, empty.GetProperty("devices_total").GetInt64());

        foreach (var id in new[] { "st-a", "st-b", "st-c", "st-a" })
        {
            using var response = await server.HeartbeatAsync(id);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await AssertStatsAsync(total: 3, online: 3, offline: 0, fresh: 3, heartbeats: 4);

        await server.AdvanceAsync(TimeSpan.FromSeconds(3.5));
        using (var response = await server.HeartbeatAsync("st-b"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await AssertStatsAsync(total: 3, online: 1, offline: 2, fresh: 3, heartbeats: 5);

        using (var deleted = await server.Http.DeleteAsync("/api/v1/devices/st-b"))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        await AssertStatsAsync(total: 2, online: 0, offline: 2, fresh: 2, heartbeats: 5);

        await server.AdvanceAsync(TimeSpan.FromSeconds(61));
        await AssertStatsAsync(total: 2, online: 0, offline: 2, fresh: 2, heartbeats: 0);
    }

    private async Task AssertStatsAsync(long total, long online, long offline, long fresh, long heartbeats)
    {
        var stats = await server.GetJsonAsync("/api/v1/stats");
        Assert.Equal(
            (total, online, offline, fresh, heartbeats),
            (stats.GetProperty("devices_total").GetInt64(), stats.GetProperty("online").GetInt64(), stats.GetProperty("offline").GetInt64(),
             stats.GetProperty("new_last_24h").GetInt64(), stats.GetProperty("heartbeats_last_minute").GetInt64()));
    }
}
