using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Presence.Gateway.Tests;

/// <summary>
/// The portal's device endpoints against API.md: listing (order, prefix, paging, status, limit), the <c>Device</c>
/// shape, deletion and its events, sessions, and commands over a device channel.
/// </summary>
public sealed class DevicesApiTests(PresenceServer server) : IClassFixture<PresenceServer>
{
    private static readonly string[] DeviceFields =
    [
        "device_id", "device_name", "platform", "app_version", "status", "last_seen_at", "first_seen_at", "status_changed_at",
        "session_id", "metrics", "containers", "timeout_s", "labels", "version",
    ];

    [Fact]
    public async Task List_is_ordered_by_device_id_ordinally()
    {
        string[] ids = ["lo-b", "lo-A", "lo-a", "lo-_", "lo-9", "lo-.", "lo-:", "lo-@", "lo--", "lo-Z", "lo-aa", "lo-0"];
        foreach (var id in ids)
        {
            await RegisterAsync(id);
        }

        var listed = await ListIdsAsync("/api/v1/devices?prefix=lo-");

        Assert.Equal(ids.Order(StringComparer.Ordinal), listed);
    }

    [Fact]
    public async Task Prefix_lists_only_ids_that_start_with_it_case_sensitively()
    {
        foreach (var id in new[] { "px-one", "px-two", "pxx-three", "p-four", "PX-five" })
        {
            await RegisterAsync(id);
        }

        Assert.Equal(["px-one", "px-two"], await ListIdsAsync("/api/v1/devices?prefix=px-"));
        Assert.Equal(["px-one", "px-two", "pxx-three"], await ListIdsAsync("/api/v1/devices?prefix=px"));
        Assert.Equal(["PX-five"], await ListIdsAsync("/api/v1/devices?prefix=PX"));
        Assert.Empty(await ListIdsAsync("/api/v1/devices?prefix=px-z"));
    }

    [Fact]
    public async Task Paging_with_after_and_next_returns_every_device_exactly_once()
    {
        var ids = Enumerable.Range(0, 23).Select(i => $"pg-{i:D2}").ToArray();
        foreach (var id in ids.Reverse())
        {
            await RegisterAsync(id);
        }

        var seen = new List<string>();
        string? after = null;
        var pages = 0;
        do
        {
            var page = await server.GetJsonAsync($"/api/v1/devices?prefix=pg-&limit=5{(after is null ? "" : $"&after={after}")}");
            var pageIds = page.GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("device_id").GetString()!).ToList();
            Assert.InRange(pageIds.Count, 1, 5);
            seen.AddRange(pageIds);
            after = page.GetProperty("next").GetString();
            if (after is not null)
            {
                Assert.Equal(5, pageIds.Count);
                Assert.Equal(pageIds[^1], after);
            }

            pages++;
            Assert.True(pages <= 10, "paging does not end");
        }
        while (after is not null);

        Assert.Equal(ids, seen);
        Assert.Equal(5, pages);
    }

    [Fact]
    public async Task After_is_exclusive_and_may_name_a_device_that_does_not_exist()
    {
        foreach (var id in new[] { "af-1", "af-2", "af-3", "af-5" })
        {
            await RegisterAsync(id);
        }

        Assert.Equal(["af-3", "af-5"], await ListIdsAsync("/api/v1/devices?prefix=af-&after=af-2"));
        Assert.Equal(["af-5"], await ListIdsAsync("/api/v1/devices?prefix=af-&after=af-4"));
        Assert.Empty(await ListIdsAsync("/api/v1/devices?prefix=af-&after=af-5"));
    }

    [Fact]
    public async Task Limit_caps_the_page_and_next_is_null_on_the_last_page()
    {
        foreach (var id in new[] { "lm-a", "lm-b", "lm-c" })
        {
            await RegisterAsync(id);
        }

        var first = await server.GetJsonAsync("/api/v1/devices?prefix=lm-&limit=1");
        var whole = await server.GetJsonAsync("/api/v1/devices?prefix=lm-&limit=3");
        var max = await server.GetJsonAsync("/api/v1/devices?prefix=lm-&limit=1000");

        Assert.Single(first.GetProperty("devices").EnumerateArray());
        Assert.Equal("lm-a", first.GetProperty("next").GetString());
        Assert.Equal(3, whole.GetProperty("devices").GetArrayLength());
        Assert.Equal(JsonValueKind.Null, whole.GetProperty("next").ValueKind);
        Assert.Equal(3, max.GetProperty("devices").GetArrayLength());
        Assert.Equal(JsonValueKind.Null, max.GetProperty("next").ValueKind);
    }

    [Fact]
    public async Task Status_filter_lists_online_or_offline_devices_only()
    {
        await RegisterAsync("sf-up");
        await RegisterAsync("sf-down");
        await server.AdvanceAsync(TimeSpan.FromSeconds(3.5));
        await RegisterAsync("sf-up");

        Assert.Equal(["sf-up"], await ListIdsAsync("/api/v1/devices?prefix=sf-&status=online"));
        Assert.Equal(["sf-down"], await ListIdsAsync("/api/v1/devices?prefix=sf-&status=offline"));
        Assert.Equal(["sf-down", "sf-up"], await ListIdsAsync("/api/v1/devices?prefix=sf-"));
        var online = await server.GetJsonAsync("/api/v1/devices?prefix=sf-&status=online");
        Assert.All(online.GetProperty("devices").EnumerateArray(), d => Assert.Equal("online", d.GetProperty("status").GetString()));
    }

    [Fact]
    public async Task Status_filter_pages_through_matching_devices_only()
    {
        foreach (var id in new[] { "sp-1", "sp-2", "sp-3", "sp-4", "sp-5" })
        {
            await RegisterAsync(id);
        }

        await server.AdvanceAsync(TimeSpan.FromSeconds(3.5));
        await RegisterAsync("sp-2");
        await RegisterAsync("sp-4");

        var first = await server.GetJsonAsync("/api/v1/devices?prefix=sp-&status=offline&limit=2");
        var second = await server.GetJsonAsync($"/api/v1/devices?prefix=sp-&status=offline&limit=2&after={first.GetProperty("next").GetString()}");

        Assert.Equal(["sp-1", "sp-3"], first.GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("device_id").GetString()));
        Assert.Equal(["sp-5"], second.GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("device_id").GetString()));
        Assert.Equal(JsonValueKind.Null, second.GetProperty("next").ValueKind);
    }

    [Fact]
    public async Task Get_device_has_exactly_the_fields_of_the_contract()
    {
        var now = server.Time.GetUtcNow();
        using var response = await server.HeartbeatAsync("gd-full", new
        {
            device_name = " Rack 3 agent ",
            platform = "linux",
            app_version = "1.4.2",
            metrics = new { cpu_pct = 12.5, uptime_s = 86400 },
            containers = new[] { new { name = "web", image = "nginx:1.27", state = "running", ports = "80/tcp" } },
        });
        var accepted = await response.Content.ReadFromJsonAsync<JsonElement>();

        var device = await server.GetJsonAsync("/api/v1/devices/gd-full");

        Assert.Equal(DeviceFields.Order(StringComparer.Ordinal), device.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal("gd-full", device.GetProperty("device_id").GetString());
        Assert.Equal("Rack 3 agent", device.GetProperty("device_name").GetString());
        Assert.Equal("linux", device.GetProperty("platform").GetString());
        Assert.Equal("1.4.2", device.GetProperty("app_version").GetString());
        Assert.Equal("online", device.GetProperty("status").GetString());
        Assert.Equal(Time(now), device.GetProperty("last_seen_at").GetString());
        Assert.Equal(Time(now), device.GetProperty("first_seen_at").GetString());
        Assert.Equal(Time(now), device.GetProperty("status_changed_at").GetString());
        Assert.Equal(accepted.GetProperty("session_id").GetString(), device.GetProperty("session_id").GetString());
        Assert.Matches("^[0-9a-f]{16}$", device.GetProperty("session_id").GetString());
        Assert.Equal(12.5, device.GetProperty("metrics").GetProperty("cpu_pct").GetDouble());
        Assert.Equal(86400, device.GetProperty("metrics").GetProperty("uptime_s").GetDouble());
        var container = Assert.Single(device.GetProperty("containers").EnumerateArray());
        Assert.Equal("web", container.GetProperty("name").GetString());
        Assert.Equal("nginx:1.27", container.GetProperty("image").GetString());
        Assert.Equal("running", container.GetProperty("state").GetString());
        Assert.Equal("80/tcp", container.GetProperty("ports").GetString());
        Assert.Equal(3, device.GetProperty("timeout_s").GetInt64());
        Assert.Equal(JsonValueKind.Object, device.GetProperty("labels").ValueKind);
        Assert.Equal(1, device.GetProperty("version").GetInt64());
    }

    [Fact]
    public async Task Device_name_defaults_to_the_device_id_and_optional_fields_are_null()
    {
        await RegisterAsync("gd-bare");

        var device = await server.GetJsonAsync("/api/v1/devices/gd-bare");

        Assert.Equal("gd-bare", device.GetProperty("device_name").GetString());
        Assert.Equal(JsonValueKind.Null, device.GetProperty("platform").ValueKind);
        Assert.Equal(JsonValueKind.Null, device.GetProperty("app_version").ValueKind);
        Assert.Empty(device.GetProperty("metrics").EnumerateObject());
        Assert.Empty(device.GetProperty("containers").EnumerateArray());
    }

    [Fact]
    public async Task Every_accepted_heartbeat_is_one_version_and_moves_last_seen_only()
    {
        var first = server.Time.GetUtcNow();
        await RegisterAsync("gd-versions", new { metrics = new { cpu_pct = 1.0 } });
        var before = await server.GetJsonAsync("/api/v1/devices/gd-versions");
        await server.AdvanceAsync(TimeSpan.FromSeconds(1));
        var second = server.Time.GetUtcNow();
        await RegisterAsync("gd-versions", new { metrics = new { cpu_pct = 2.0 } });
        await RegisterAsync("gd-versions", new { app_version = "2.0" });

        var after = await server.GetJsonAsync("/api/v1/devices/gd-versions");

        Assert.Equal(3, after.GetProperty("version").GetInt64());
        Assert.Equal(Time(first), after.GetProperty("first_seen_at").GetString());
        Assert.Equal(Time(first), after.GetProperty("status_changed_at").GetString());
        Assert.Equal(Time(second), after.GetProperty("last_seen_at").GetString());
        Assert.Equal(before.GetProperty("session_id").GetString(), after.GetProperty("session_id").GetString());
        Assert.Equal(2.0, after.GetProperty("metrics").GetProperty("cpu_pct").GetDouble());
        Assert.Equal("2.0", after.GetProperty("app_version").GetString());
    }

    [Fact]
    public async Task List_shows_the_latest_heartbeat_within_the_flush_interval()
    {
        await RegisterAsync("fl-1", new { metrics = new { cpu_pct = 1.0 } });
        await server.AdvanceAsync(TimeSpan.FromSeconds(1));
        var seen = server.Time.GetUtcNow();
        await RegisterAsync("fl-1", new { metrics = new { cpu_pct = 2.0 } });

        await server.AdvanceAsync(TimeSpan.FromSeconds(1));
        var listed = Assert.Single((await server.GetJsonAsync("/api/v1/devices?prefix=fl-")).GetProperty("devices").EnumerateArray());
        var device = await server.GetJsonAsync("/api/v1/devices/fl-1");

        Assert.Equal(2.0, listed.GetProperty("metrics").GetProperty("cpu_pct").GetDouble());
        Assert.Equal(Time(seen), listed.GetProperty("last_seen_at").GetString());
        Assert.Equal(device.GetRawText(), listed.GetRawText());
    }

    [Fact]
    public async Task Delete_answers_204_then_404_and_emits_offline_removed_then_device_removed()
    {
        await RegisterAsync("del-online");
        var cursor = await CursorAsync();

        using var deleted = await server.Http.DeleteAsync("/api/v1/devices/del-online");
        using var get = await server.Http.GetAsync("/api/v1/devices/del-online");
        using var again = await server.Http.DeleteAsync("/api/v1/devices/del-online");
        using var sessions = await server.Http.GetAsync("/api/v1/devices/del-online/sessions");

        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        Assert.Empty(await deleted.Content.ReadAsByteArrayAsync());
        await ErrorShape.AssertAsync(get, HttpStatusCode.NotFound, "NOT_FOUND");
        await ErrorShape.AssertAsync(again, HttpStatusCode.NotFound, "NOT_FOUND");
        await ErrorShape.AssertAsync(sessions, HttpStatusCode.NotFound, "NOT_FOUND");
        Assert.Empty(await ListIdsAsync("/api/v1/devices?prefix=del-online"));

        var events = (await server.GetJsonAsync($"/api/v1/events?since={cursor}&device_id=del-online")).GetProperty("events").EnumerateArray().ToList();
        Assert.Equal(["device.status", "device.removed"], events.Select(e => e.GetProperty("type").GetString()));
        var offline = events[0].GetProperty("data");
        Assert.Equal("offline", offline.GetProperty("status").GetString());
        Assert.Equal("online", offline.GetProperty("previous_status").GetString());
        Assert.Equal("removed", offline.GetProperty("reason").GetString());
        Assert.Equal([3L, 4L], events.Select(e => e.GetProperty("sequence").GetInt64()));
    }

    [Fact]
    public async Task Delete_of_an_offline_device_emits_only_device_removed()
    {
        await RegisterAsync("del-offline");
        await server.AdvanceAsync(TimeSpan.FromSeconds(3.5));
        Assert.Equal("offline", (await server.GetJsonAsync("/api/v1/devices/del-offline")).GetProperty("status").GetString());
        var cursor = await CursorAsync();

        using var deleted = await server.Http.DeleteAsync("/api/v1/devices/del-offline");

        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        var events = (await server.GetJsonAsync($"/api/v1/events?since={cursor}&device_id=del-offline")).GetProperty("events").EnumerateArray().ToList();
        var removed = Assert.Single(events);
        Assert.Equal("device.removed", removed.GetProperty("type").GetString());
        Assert.Equal(4, removed.GetProperty("sequence").GetInt64());
    }

    [Fact]
    public async Task Heartbeat_after_delete_registers_the_device_anew()
    {
        await RegisterAsync("del-back", new { device_name = "old name" });
        await RegisterAsync("del-back");
        using (var deleted = await server.Http.DeleteAsync("/api/v1/devices/del-back"))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        var cursor = await CursorAsync();
        await RegisterAsync("del-back");

        var device = await server.GetJsonAsync("/api/v1/devices/del-back");
        Assert.Equal(1, device.GetProperty("version").GetInt64());
        Assert.Equal("del-back", device.GetProperty("device_name").GetString());
        var events = (await server.GetJsonAsync($"/api/v1/events?since={cursor}&device_id=del-back")).GetProperty("events").EnumerateArray().ToList();
        Assert.Equal(["device.registered", "device.status"], events.Select(e => e.GetProperty("type").GetString()));
        Assert.Equal([1L, 2L], events.Select(e => e.GetProperty("sequence").GetInt64()));
    }

    [Fact]
    public async Task Sessions_are_newest_first_with_the_end_reason_of_a_timeout()
    {
        var firstStart = server.Time.GetUtcNow();
        await RegisterAsync("ses-1");
        await server.AdvanceAsync(TimeSpan.FromSeconds(1));
        var lastBeat = server.Time.GetUtcNow();
        await RegisterAsync("ses-1");
        await server.AdvanceAsync(TimeSpan.FromSeconds(3.5));
        var secondStart = server.Time.GetUtcNow();
        await RegisterAsync("ses-1");

        var sessions = (await server.GetJsonAsync("/api/v1/devices/ses-1/sessions")).GetProperty("sessions").EnumerateArray().ToList();

        Assert.Equal(2, sessions.Count);
        var current = sessions[0];
        var ended = sessions[1];
        Assert.Equal(
            new[] { "session_id", "started_at", "ended_at", "end_reason", "heartbeats" }.Order(StringComparer.Ordinal),
            current.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(Time(secondStart), current.GetProperty("started_at").GetString());
        Assert.Equal(JsonValueKind.Null, current.GetProperty("ended_at").ValueKind);
        Assert.Equal(JsonValueKind.Null, current.GetProperty("end_reason").ValueKind);
        Assert.Equal(1, current.GetProperty("heartbeats").GetInt64());
        Assert.Equal((await server.GetJsonAsync("/api/v1/devices/ses-1")).GetProperty("session_id").GetString(), current.GetProperty("session_id").GetString());

        Assert.Equal(Time(firstStart), ended.GetProperty("started_at").GetString());
        Assert.Equal("timeout", ended.GetProperty("end_reason").GetString());
        Assert.Equal(2, ended.GetProperty("heartbeats").GetInt64());
        var endedAt = DateTimeOffset.Parse(ended.GetProperty("ended_at").GetString()!, CultureInfo.InvariantCulture);
        Assert.InRange(endedAt, lastBeat.AddSeconds(3), lastBeat.AddSeconds(4));
        Assert.NotEqual(current.GetProperty("session_id").GetString(), ended.GetProperty("session_id").GetString());
        Assert.Matches("^[0-9a-f]{16}$", ended.GetProperty("session_id").GetString());

        var limited = (await server.GetJsonAsync("/api/v1/devices/ses-1/sessions?limit=1")).GetProperty("sessions").EnumerateArray().ToList();
        Assert.Equal(current.GetRawText(), Assert.Single(limited).GetRawText());
    }

    [Fact]
    public async Task Sessions_of_an_offline_device_are_all_ended()
    {
        await RegisterAsync("ses-2");
        await server.AdvanceAsync(TimeSpan.FromSeconds(3.5));

        var sessions = (await server.GetJsonAsync("/api/v1/devices/ses-2/sessions")).GetProperty("sessions").EnumerateArray().ToList();

        var only = Assert.Single(sessions);
        Assert.Equal("timeout", only.GetProperty("end_reason").GetString());
        Assert.NotEqual(JsonValueKind.Null, only.GetProperty("ended_at").ValueKind);
    }

    [Fact]
    public async Task Command_to_a_device_with_a_channel_is_202_delivered_and_its_result_becomes_an_event()
    {
        await using var socket = await server.ConnectAsync("/ws/device");
        await socket.SendAsync(new { type = "heartbeat", device_id = "cmd-1" });
        await socket.ExpectAsync("ack");
        var cursor = await CursorAsync();

        using var response = await server.PostJsonAsync("/api/v1/devices/cmd-1/commands", new { name = "reboot", args = new { delay_s = 5 } });

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var accepted = await response.Content.ReadFromJsonAsync<JsonElement>();
        var commandId = accepted.GetProperty("command_id").GetString();
        Assert.False(string.IsNullOrEmpty(commandId));
        Assert.Equal("sent", accepted.GetProperty("status").GetString());

        var command = await socket.ExpectAsync("command");
        Assert.Equal(commandId, command.GetProperty("command_id").GetString());
        Assert.Equal("reboot", command.GetProperty("name").GetString());
        Assert.Equal(5, command.GetProperty("args").GetProperty("delay_s").GetInt32());

        await socket.SendAsync(new { type = "command_result", command_id = commandId, ok = true, output = "rebooting" });
        // Frames are handled in order: the ack of a later heartbeat means the result was applied.
        await socket.SendAsync(new { type = "heartbeat", device_id = "cmd-1" });
        await socket.ExpectAsync("ack");

        var result = Assert.Single((await server.GetJsonAsync($"/api/v1/events?since={cursor}&device_id=cmd-1")).GetProperty("events").EnumerateArray());
        Assert.Equal("command.result", result.GetProperty("type").GetString());
        Assert.Equal(commandId, result.GetProperty("data").GetProperty("command_id").GetString());
        Assert.True(result.GetProperty("data").GetProperty("ok").GetBoolean());
        Assert.Equal("rebooting", result.GetProperty("data").GetProperty("output").GetString());
        Assert.Equal(3, result.GetProperty("sequence").GetInt64());
    }

    private async Task RegisterAsync(string deviceId, object? extra = null)
    {
        using var response = await server.HeartbeatAsync(deviceId, extra);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"heartbeat {deviceId}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    private async Task<string[]> ListIdsAsync(string path)
    {
        var page = await server.GetJsonAsync(path);
        return [.. page.GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("device_id").GetString()!)];
    }

    private async Task<string> CursorAsync() => (await server.GetJsonAsync("/api/v1/events")).GetProperty("next_cursor").GetString()!;

    private static string Time(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
}
