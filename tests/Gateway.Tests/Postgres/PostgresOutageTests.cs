using System.Net;
using System.Text.Json;
using Presence.Testing;

namespace Presence.Gateway.Tests.Postgres;

/// <summary>
/// PostgreSQL stops under a running gateway and comes back (<see cref="PostgresServer.StopAsync"/>,
/// <see cref="PostgresServer.StartAgainAsync"/>): readiness follows storage, online devices are served from memory,
/// whatever needs a durable write or a database read is 503 with <c>Retry-After</c> and changes nothing, nobody is
/// declared offline while that cannot be made durable, and everything catches up when the database is back.
/// </summary>
public sealed class PostgresOutageTests(PostgresFixture postgres) : IClassFixture<PostgresFixture>
{
    private static readonly TimeSpan Recovered = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task During_an_outage_online_devices_are_served_from_memory_durable_work_is_refused_and_all_catches_up_after()
    {
        // A small in-memory tail, so a cursor from the start can only be served by the database.
        await using var server = new PostgresPresenceServer(
            await postgres.Server.CreateDatabaseAsync(), settings: new() { ["Presence:Events:Retention"] = "100" });
        try
        {
            var start = await server.CursorAsync();
            await server.BeatAsync("pg-out-offline");
            await Task.WhenAll(Enumerable.Range(0, 50).Select(i => server.BeatAsync($"pg-out-filler-{i:D2}")));
            await server.AdvanceAsync(TimeSpan.FromSeconds(3.5));                  // all of them offline (timeout)
            await server.BeatAsync("pg-out-online");
            var silentSeen = server.Time.GetUtcNow();
            await server.BeatAsync("pg-out-silent");
            var cursor = await server.CursorAsync();

            await postgres.Server.StopAsync();

            // Reads that need the database.
            await Faults.AssertUnavailableAsync(await server.Http.GetAsync("/api/v1/devices"));
            await Api.EventuallyAsync(async () => await server.ReadyAsync() == HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(10), "/readyz turns 503");
            await Faults.AssertUnavailableAsync(await server.Http.GetAsync("/api/v1/stats"));
            await Faults.AssertUnavailableAsync(await server.Http.GetAsync("/api/v1/devices/pg-out-online/sessions"));
            await Faults.AssertUnavailableAsync(await server.Http.GetAsync($"/api/v1/events?since={start}"));

            // Heartbeats: an online device's from memory; a registration or a return online needs a durable write.
            var served = await server.BeatAsync("pg-out-online", new { metrics = new { cpu_pct = 42.0 } });
            Assert.Equal("online", served.GetProperty("device_status").GetString());
            await Faults.AssertUnavailableAsync(await server.HeartbeatAsync("pg-out-new"));
            await Faults.AssertUnavailableAsync(await server.HeartbeatAsync("pg-out-offline"));

            // The silent device's deadline (+3 s) passes during the outage: it is not declared offline.
            for (var second = 0; second < 5; second++)
            {
                await server.AdvanceAsync(TimeSpan.FromSeconds(1));
                await server.BeatAsync("pg-out-online");
            }

            Assert.Empty(await server.EventsAsync(cursor)); // the recent tail is served from memory
            using (var silent = await server.Http.GetAsync("/api/v1/devices/pg-out-silent"))
            {
                var body = await silent.Content.ReadAsStringAsync();
                Assert.True(
                    silent.StatusCode == HttpStatusCode.ServiceUnavailable || JsonDocument.Parse(body).RootElement.GetProperty("status").GetString() == "online",
                    $"the silent device must not be reported offline while that cannot be durable; GET answered {(int)silent.StatusCode} {body}");
            }

            await postgres.Server.StartAgainAsync();
            await Api.EventuallyAsync(async () => await server.ReadyAsync() == HttpStatusCode.OK, Recovered, "/readyz turns 200 again");

            // Now the silent device goes offline, once; registrations and returns work again.
            await server.AdvanceAsync(TimeSpan.FromSeconds(1.25));
            var offline = Assert.Single(await server.EventsAsync(cursor));
            Assert.Equal(("pg-out-silent", "offline/timeout"), (offline.Device(), offline.Summary()));
            Assert.True(offline.Time() >= silentSeen + PostgresPresenceServer.Timeout, $"offline at {offline.Time():o}, before its deadline");
            await server.BeatAsync("pg-out-online");
            Assert.Equal("online", (await server.BeatAsync("pg-out-new")).GetProperty("device_status").GetString());
            Assert.Equal("online", (await server.BeatAsync("pg-out-offline")).GetProperty("device_status").GetString());

            var events = await server.EventsAsync(cursor);
            Assert.Equal(
                ["pg-out-silent offline/timeout", "pg-out-new registered", "pg-out-new online/heartbeat", "pg-out-offline online/heartbeat"],
                events.Select(e => $"{e.Device()} {e.Summary()}"));
            Assert.Equal(50 * 3 + 3 + 2 + 2 + events.Count, (await server.EventsAsync(start)).Count);

            // What was served from memory during the outage reaches storage (write-behind catches up).
            await server.AdvanceAsync(TimeSpan.FromSeconds(1.25));
            await server.BeatAsync("pg-out-online");
            await server.AdvanceAsync(TimeSpan.FromSeconds(1));
            await server.BeatAsync("pg-out-online");
            await Api.EventuallyAsync(
                async () => await server.ListedAsync("pg-out-online") is { } listed && listed.GetProperty("metrics").TryGetProperty("cpu_pct", out var cpu) && cpu.GetDouble() == 42.0,
                TimeSpan.FromSeconds(10),
                "the metrics sent during the outage are in storage");
            var stats = await server.GetJsonAsync("/api/v1/stats");
            Assert.Equal((54L, 3L), (stats.GetProperty("devices_total").GetInt64(), stats.GetProperty("online").GetInt64()));
        }
        finally
        {
            await postgres.Server.EnsureRunningAsync();
        }
    }

    [Fact]
    public async Task Readiness_reports_an_outage_even_when_nothing_touches_storage()
    {
        await using var server = new PostgresPresenceServer(await postgres.Server.CreateDatabaseAsync());
        try
        {
            Assert.Equal(HttpStatusCode.OK, await server.ReadyAsync());

            await postgres.Server.StopAsync();
            Assert.True(
                await Api.WithinAsync(async () => await server.ReadyAsync() == HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(10)),
                "/readyz still answers 200 10 s after PostgreSQL stopped; the gateway logged:\n" + string.Join('\n', server.Logs.Lines));

            await postgres.Server.StartAgainAsync();
            await Api.EventuallyAsync(async () => await server.ReadyAsync() == HttpStatusCode.OK, Recovered, "/readyz turns 200 again");
        }
        finally
        {
            await postgres.Server.EnsureRunningAsync();
        }
    }

    [Fact]
    public async Task A_heartbeat_answered_503_when_the_outage_begins_changes_nothing()
    {
        await using var server = new PostgresPresenceServer(await postgres.Server.CreateDatabaseAsync());
        try
        {
            await server.BeatAsync("pg-503-device");
            await server.AdvanceAsync(TimeSpan.FromSeconds(3.5));                  // offline (timeout)
            var cursor = await server.CursorAsync();

            // The first request after PostgreSQL stopped: bringing the device back online needs a durable write.
            await postgres.Server.StopAsync();
            await Faults.AssertUnavailableAsync(await server.HeartbeatAsync("pg-503-device"));

            // API.md: "a 4xx/5xx response means nothing was applied".
            using (var read = await server.Http.GetAsync("/api/v1/devices/pg-503-device"))
            {
                var body = await read.Content.ReadAsStringAsync();
                Assert.True(
                    read.StatusCode == HttpStatusCode.ServiceUnavailable || JsonDocument.Parse(body).RootElement.GetProperty("status").GetString() == "offline",
                    $"the device must not be online after its heartbeat was refused; GET answered {(int)read.StatusCode} {body}");
            }

            await postgres.Server.StartAgainAsync();
            await Api.EventuallyAsync(async () => await server.ReadyAsync() == HttpStatusCode.OK, Recovered, "/readyz turns 200 again");
            await server.Silo.QuiesceAsync();
            await server.Silo.Store.FlushAsync();

            Assert.Empty(await server.EventsAsync(cursor));
            Assert.Equal("offline", (await server.GetJsonAsync("/api/v1/devices/pg-503-device")).GetProperty("status").GetString());
        }
        finally
        {
            await postgres.Server.EnsureRunningAsync();
        }
    }
}
