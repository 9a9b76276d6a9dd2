using System.Net;
using System.Text.Json;
using Presence.Testing;

namespace Presence.Gateway.Tests.Postgres;

/// <summary>
/// The gateway on a real PostgreSQL (one throwaway server for the class, a fresh database per test): what it
/// acknowledged survives a restart, cursors keep working across restarts, devices online at a restart get one
/// timeout of grace from it, per-device sequences and sessions continue, and write-behind reaches storage.
/// </summary>
public sealed class PostgresRestartTests(PostgresFixture postgres) : IClassFixture<PostgresFixture>
{
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan FlushInterval = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task Registration_and_its_events_are_visible_unchanged_after_a_restart()
    {
        var first = new PostgresPresenceServer(await postgres.Server.CreateDatabaseAsync());
        var start = await first.CursorAsync();
        await first.BeatAsync("pg-durable", new
        {
            device_name = "Rack 3 agent",
            platform = "linux",
            app_version = "1.4.2",
            metrics = new { cpu_pct = 12.5, mem_pct = 40.1 },
            containers = new[] { new { name = "web", image = "nginx:1.27", state = "running", ports = "80/tcp" } },
        });
        var device = (await first.GetJsonAsync("/api/v1/devices/pg-durable")).GetRawText();
        var events = (await first.EventsAsync(start)).Select(e => e.GetRawText()).ToList();

        await using var second = await first.RestartAsync(TimeSpan.FromSeconds(1));

        Assert.Equal(device, (await second.GetJsonAsync("/api/v1/devices/pg-durable")).GetRawText());
        Assert.Equal(device, (await second.ListedAsync("pg-durable"))?.GetRawText());
        Assert.Equal(events, (await second.EventsAsync(start)).Select(e => e.GetRawText()));
        Assert.Equal(["registered", "online/heartbeat"], (await second.EventsAsync(start)).Select(e => e.Summary()));
        var stats = await second.GetJsonAsync("/api/v1/stats");
        Assert.Equal((1, 1), (stats.GetProperty("devices_total").GetInt64(), stats.GetProperty("online").GetInt64()));
        Assert.Contains(second.Logs.Lines, line => line.StartsWith("Information Recovery: 1 devices were online in storage", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_cursor_from_before_a_restart_resumes_with_exactly_the_later_events_over_rest_and_websocket()
    {
        var first = new PostgresPresenceServer(await postgres.Server.CreateDatabaseAsync());
        var start = await first.CursorAsync();
        await first.BeatAsync("pg-cur-a");
        await first.BeatAsync("pg-cur-b");
        var middle = await first.CursorAsync();
        await first.BeatAsync("pg-cur-c");

        await using var second = await first.RestartAsync(TimeSpan.FromSeconds(1));
        await second.BeatAsync("pg-cur-d");

        var all = await second.EventsAsync(start);
        var later = await second.EventsAsync(middle);
        Assert.Equal(
            ["pg-cur-a", "pg-cur-a", "pg-cur-b", "pg-cur-b", "pg-cur-c", "pg-cur-c", "pg-cur-d", "pg-cur-d"],
            all.Select(e => e.Device()));
        Assert.Equal(all.Select(e => e.Id()).Distinct(), all.Select(e => e.Id()));
        Assert.Equal(middle, all[3].Id());
        Assert.Equal(all.Skip(4).Select(e => e.GetRawText()), later.Select(e => e.GetRawText()));

        // The same cursor on the portal WebSocket: every later event exactly once, then live events.
        await using var portal = await second.ConnectAsync($"/ws/events?since={middle}");
        await portal.ExpectAsync("hello");
        var streamed = new List<JsonElement>();
        foreach (var _ in later)
        {
            streamed.Add((await portal.ExpectAsync("event")).GetProperty("event"));
        }

        Assert.Equal(later.Select(e => e.GetRawText()), streamed.Select(e => e.GetRawText()));
        await second.BeatAsync("pg-cur-e");
        var live = (await portal.ExpectAsync("event")).GetProperty("event");
        Assert.Equal(("pg-cur-e", "registered"), (live.Device(), live.Summary()));
    }

    [Fact]
    public async Task After_a_restart_a_silent_device_gets_one_timeout_of_grace_and_a_beating_one_never_goes_offline()
    {
        var first = new PostgresPresenceServer(await postgres.Server.CreateDatabaseAsync());
        var lastSeenSilent = first.Time.GetUtcNow();
        await first.BeatAsync("pg-grace-silent");
        await first.BeatAsync("pg-grace-beating");
        await first.AdvanceAsync(TimeSpan.FromSeconds(2));
        await first.BeatAsync("pg-grace-beating");
        var cursor = await first.CursorAsync();

        // Restarted one second later: the silent device's own deadline (last seen + 3 s) is the restart itself.
        await using var server = await first.RestartAsync(TimeSpan.FromSeconds(1));
        var restart = server.Time.GetUtcNow();
        Assert.Equal(lastSeenSilent + PostgresPresenceServer.Timeout, restart);
        Assert.Contains(server.Logs.Lines, line => line.StartsWith("Information Recovery: 2 devices were online in storage", StringComparison.Ordinal));
        Assert.Equal("online", (await server.GetJsonAsync("/api/v1/devices/pg-grace-silent")).GetProperty("status").GetString());

        for (var elapsed = TimeSpan.Zero; elapsed < TimeSpan.FromSeconds(6); elapsed += Tick)
        {
            if (elapsed.Ticks % TimeSpan.TicksPerSecond == 0)
            {
                await server.BeatAsync("pg-grace-beating");
            }

            if (elapsed == TimeSpan.FromSeconds(2.75))
            {
                Assert.Empty(await server.EventsAsync(cursor));
                Assert.Equal("online", (await server.GetJsonAsync("/api/v1/devices/pg-grace-silent")).GetProperty("status").GetString());
            }

            await server.AdvanceAsync(Tick);
        }

        var events = await server.EventsAsync(cursor);
        var offline = Assert.Single(events);
        Assert.Equal(("pg-grace-silent", "offline/timeout"), (offline.Device(), offline.Summary()));
        Assert.InRange(offline.Time(), restart + PostgresPresenceServer.Timeout, restart + PostgresPresenceServer.Timeout + TimeSpan.FromSeconds(1));
        Assert.Equal("offline", (await server.GetJsonAsync("/api/v1/devices/pg-grace-silent")).GetProperty("status").GetString());
        Assert.Equal("online", (await server.GetJsonAsync("/api/v1/devices/pg-grace-beating")).GetProperty("status").GetString());
    }

    [Fact]
    public async Task Per_device_sequence_continues_without_gaps_across_restarts()
    {
        var server = new PostgresPresenceServer(await postgres.Server.CreateDatabaseAsync());
        try
        {
            var start = await server.CursorAsync();
            await server.BeatAsync("pg-seq");                                       // registered 1, online 2
            await server.AdvanceAsync(TimeSpan.FromSeconds(3.5));                   // offline (timeout) 3
            server = await server.RestartAsync(TimeSpan.FromSeconds(1));
            await server.BeatAsync("pg-seq");                                       // online 4
            await server.BeatAsync("pg-seq");                                       // no event
            server = await server.RestartAsync(TimeSpan.FromSeconds(1));
            await server.AdvanceAsync(TimeSpan.FromSeconds(3.5));                   // offline (timeout, after the grace) 5
            server = await server.RestartAsync(TimeSpan.FromSeconds(1));
            await server.BeatAsync("pg-seq");                                       // online 6
            using (var deleted = await server.Http.DeleteAsync("/api/v1/devices/pg-seq"))
            {
                Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);         // offline (removed) 7, removed 8
            }

            var events = await server.EventsAsync(start, "pg-seq");

            Assert.Equal([1L, 2L, 3L, 4L, 5L, 6L, 7L, 8L], events.Select(e => e.GetProperty("sequence").GetInt64()));
            Assert.Equal(
                ["registered", "online/heartbeat", "offline/timeout", "online/heartbeat", "offline/timeout", "online/heartbeat", "offline/removed", "removed"],
                events.Select(e => e.Summary()));
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    [Fact]
    public async Task Sessions_survive_restarts_current_and_ended()
    {
        var server = new PostgresPresenceServer(await postgres.Server.CreateDatabaseAsync());
        try
        {
            var firstSession = (await server.BeatAsync("pg-sess")).GetProperty("session_id").GetString();
            var firstStarted = server.Time.GetUtcNow();
            await server.AdvanceAsync(TimeSpan.FromSeconds(1));
            await server.BeatAsync("pg-sess");
            await server.AdvanceAsync(TimeSpan.FromSeconds(3.5));                   // timed out at +4
            var secondStarted = server.Time.GetUtcNow();
            var secondSession = (await server.BeatAsync("pg-sess")).GetProperty("session_id").GetString();
            await server.BeatAsync("pg-sess");
            await server.AdvanceAsync(TimeSpan.FromSeconds(0.5));
            await server.BeatAsync("pg-sess");
            var before = (await server.GetJsonAsync("/api/v1/devices/pg-sess/sessions")).GetRawText();

            server = await server.RestartAsync(TimeSpan.FromSeconds(1));
            var after = await server.GetJsonAsync("/api/v1/devices/pg-sess/sessions");

            Assert.Equal(before, after.GetRawText());
            var sessions = after.GetProperty("sessions").EnumerateArray().ToList();
            Assert.Equal(2, sessions.Count);
            Assert.Equal((secondSession, 3, JsonValueKind.Null), (sessions[0].GetProperty("session_id").GetString(), sessions[0].GetProperty("heartbeats").GetInt32(), sessions[0].GetProperty("ended_at").ValueKind));
            Assert.Equal(secondStarted, sessions[0].Time("started_at"));
            Assert.Equal((firstSession, 2, "timeout"), (sessions[1].GetProperty("session_id").GetString(), sessions[1].GetProperty("heartbeats").GetInt32(), sessions[1].GetProperty("end_reason").GetString()));
            Assert.Equal(firstStarted, sessions[1].Time("started_at"));
            Assert.InRange(sessions[1].Time("ended_at"), firstStarted + TimeSpan.FromSeconds(4), firstStarted + TimeSpan.FromSeconds(5));

            // The current session ends after the grace, and that too outlives a restart.
            await server.AdvanceAsync(TimeSpan.FromSeconds(3.5));
            server = await server.RestartAsync(TimeSpan.FromSeconds(1));
            var ended = (await server.GetJsonAsync("/api/v1/devices/pg-sess/sessions")).GetProperty("sessions").EnumerateArray().ToList();
            Assert.Equal([secondSession, firstSession], ended.Select(s => s.GetProperty("session_id").GetString()));
            Assert.Equal(("timeout", 3), (ended[0].GetProperty("end_reason").GetString(), ended[0].GetProperty("heartbeats").GetInt32()));
            Assert.Equal(sessions[1].GetRawText(), ended[1].GetRawText());
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    [Fact]
    public async Task Last_seen_and_metrics_of_an_online_device_reach_storage_by_write_behind()
    {
        await using var server = new PostgresPresenceServer(await postgres.Server.CreateDatabaseAsync());
        await server.BeatAsync("pg-wb", new { metrics = new { cpu_pct = 10.0 } });
        Assert.Equal(10.0, (await server.ListedAsync("pg-wb"))!.Value.GetProperty("metrics").GetProperty("cpu_pct").GetDouble());

        await server.AdvanceAsync(TimeSpan.FromSeconds(0.5));
        var seen = server.Time.GetUtcNow();
        await server.BeatAsync("pg-wb", new { metrics = new { cpu_pct = 55.5 }, app_version = "2.0" });

        // One flush interval hands the change to the writer; the next one writes it (the write itself is I/O).
        await server.AdvanceAsync(FlushInterval + Tick);
        await server.AdvanceAsync(FlushInterval);
        await Api.EventuallyAsync(
            async () => await server.ListedAsync("pg-wb") is { } listed
                && listed.GetProperty("metrics").GetProperty("cpu_pct").GetDouble() == 55.5
                && listed.Time("last_seen_at") == seen,
            TimeSpan.FromSeconds(10),
            "the listing (read from storage) shows the heartbeat's metrics and last_seen_at");
        var listed = (await server.ListedAsync("pg-wb"))!.Value;
        Assert.Equal(("online", "2.0", 2L), (listed.GetProperty("status").GetString(), listed.GetProperty("app_version").GetString(), listed.GetProperty("version").GetInt64()));
        Assert.Equal((await server.GetJsonAsync("/api/v1/devices/pg-wb")).GetRawText(), listed.GetRawText());
    }
}
