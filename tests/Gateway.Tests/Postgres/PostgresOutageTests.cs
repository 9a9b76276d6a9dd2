using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Npgsql;
using Presence.Grains.Abstractions;
using Presence.Runtime.Partitioning;
using Presence.Runtime.Storage;
using Presence.Testing;
using Xunit.Abstractions;

namespace Presence.Gateway.Tests.Postgres;

/// <summary>
/// PostgreSQL stops under a running gateway and comes back (<see cref="PostgresServer.StopAsync"/>,
/// <see cref="PostgresServer.StartAgainAsync"/>): readiness follows storage, online devices are served from memory,
/// whatever needs a durable write or a database read is 503 with <c>Retry-After</c>, nobody is declared offline
/// while that cannot be made durable, and everything catches up when the database is back.
/// </summary>
public sealed class PostgresOutageTests(PostgresFixture postgres, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    private static readonly TimeSpan Recovered = TimeSpan.FromSeconds(30);

    /// <summary>How long a request may take to be answered while PostgreSQL is down (503 or from memory): generous.</summary>
    private static readonly TimeSpan Answered = TimeSpan.FromSeconds(5);
    private const int Registrations = 1000;

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
            await AssertUnavailableAsync(await server.Http.GetAsync("/api/v1/devices"));
            await Api.EventuallyAsync(async () => await ReadyAsync(server) == HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(10), "/readyz turns 503");
            await AssertUnavailableAsync(await server.Http.GetAsync("/api/v1/stats"));
            await AssertUnavailableAsync(await server.Http.GetAsync("/api/v1/devices/pg-out-online/sessions"));
            await AssertUnavailableAsync(await server.Http.GetAsync($"/api/v1/events?since={start}"));

            // Heartbeats: an online device's from memory; a registration or a return online needs a durable write.
            var served = await server.BeatAsync("pg-out-online", new { metrics = new { cpu_pct = 42.0 } });
            Assert.Equal("online", served.GetProperty("device_status").GetString());
            await AssertUnavailableAsync(await server.HeartbeatAsync("pg-out-new"));
            await AssertUnavailableAsync(await server.HeartbeatAsync("pg-out-offline"));

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
            await Api.EventuallyAsync(async () => await ReadyAsync(server) == HttpStatusCode.OK, Recovered, "/readyz turns 200 again");

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
            await EnsureRunningAsync();
        }
    }

    [Fact]
    public async Task Readiness_reports_an_outage_even_when_nothing_touches_storage()
    {
        await using var server = new PostgresPresenceServer(await postgres.Server.CreateDatabaseAsync());
        try
        {
            Assert.Equal(HttpStatusCode.OK, await ReadyAsync(server));

            await postgres.Server.StopAsync();
            Assert.True(
                await Api.WithinAsync(async () => await ReadyAsync(server) == HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(10)),
                "/readyz still answers 200 10 s after PostgreSQL stopped; the gateway logged:\n" + string.Join('\n', server.Logs.Lines));

            await postgres.Server.StartAgainAsync();
            await Api.EventuallyAsync(async () => await ReadyAsync(server) == HttpStatusCode.OK, Recovered, "/readyz turns 200 again");
        }
        finally
        {
            await EnsureRunningAsync();
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
            await AssertUnavailableAsync(await server.HeartbeatAsync("pg-503-device"));

            // API.md: "a 4xx/5xx response means nothing was applied".
            using (var read = await server.Http.GetAsync("/api/v1/devices/pg-503-device"))
            {
                var body = await read.Content.ReadAsStringAsync();
                Assert.True(
                    read.StatusCode == HttpStatusCode.ServiceUnavailable || JsonDocument.Parse(body).RootElement.GetProperty("status").GetString() == "offline",
                    $"the device must not be online after its heartbeat was refused; GET answered {(int)read.StatusCode} {body}");
            }

            await postgres.Server.StartAgainAsync();
            await Api.EventuallyAsync(async () => await ReadyAsync(server) == HttpStatusCode.OK, Recovered, "/readyz turns 200 again");
            await server.Silo.QuiesceAsync();
            await server.Silo.Store.FlushAsync();

            Assert.Empty(await server.EventsAsync(cursor));
            Assert.Equal("offline", (await server.GetJsonAsync("/api/v1/devices/pg-503-device")).GetProperty("status").GetString());
        }
        finally
        {
            await EnsureRunningAsync();
        }
    }

    [Fact]
    public async Task A_postgres_crash_during_registrations_loses_no_acknowledged_one_and_duplicates_no_event()
    {
        var database = await postgres.Server.CreateDatabaseAsync();
        var server = new PostgresPresenceServer(database);
        try
        {
            var start = await server.CursorAsync();
            var acknowledged = new ConcurrentBag<string>();
            var answered = 0;
            var someAnswered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var registering = Enumerable.Range(0, Registrations).Select(i => $"pg-crash-{i:D4}").Select(async id =>
            {
                using var response = await server.HeartbeatAsync(id);
                Assert.True(
                    response.StatusCode is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable,
                    $"heartbeat {id}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    acknowledged.Add(id);
                    if (Interlocked.Increment(ref answered) == 10)
                    {
                        someAnswered.TrySetResult();
                    }
                }
            }).ToList();

            // Immediate shutdown (no checkpoint, connections cut) while registrations are being committed. Some
            // requests may only be answered once the database is back (see the next test), so it comes back first.
            await someAnswered.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await postgres.Server.CrashAsync();
            await postgres.Server.StartAgainAsync();
            await Task.WhenAll(registering).WaitAsync(Recovered);
            await Api.EventuallyAsync(async () => await ReadyAsync(server) == HttpStatusCode.OK, Recovered, "/readyz turns 200 again");
            await server.Silo.QuiesceAsync();
            await server.Silo.Store.FlushAsync();
            var served = (await server.EventsAsync(start)).Select(e => e.GetRawText()).ToList();

            server = await server.RestartAsync(TimeSpan.FromSeconds(1));
            var listed = (await server.GetJsonAsync("/api/v1/devices?limit=1000")).GetProperty("devices").EnumerateArray()
                .Select(d => d.GetProperty("device_id").GetString()!).ToHashSet();
            var events = await server.EventsAsync(start);
            output.WriteLine($"{acknowledged.Count} of {Registrations} registrations acknowledged around the crash; {listed.Count} devices exist after it");

            Assert.All(acknowledged, id => Assert.Contains(id, listed));
            var byDevice = events.GroupBy(e => e.Device()).ToDictionary(g => g.Key, g => g.Select(e => $"{e.Summary()} {e.GetProperty("sequence").GetInt64()}").ToList());
            Assert.Equal(listed.Order(StringComparer.Ordinal), byDevice.Keys.Order(StringComparer.Ordinal));
            Assert.All(byDevice, pair => Assert.Equal(["registered 1", "online/heartbeat 2"], pair.Value));
            Assert.Equal(events.Count, events.Select(e => e.Id()).Distinct().Count());
            Assert.Equal(served, events.Select(e => e.GetRawText()));
        }
        finally
        {
            await EnsureRunningAsync();
            await server.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_commit_left_unanswered_by_an_outage_does_not_freeze_the_partitions_queued_behind_it()
    {
        var database = await postgres.Server.CreateDatabaseAsync();
        await using var server = new PostgresPresenceServer(database);
        int PartitionOf(string id) => PartitionHash.Of(Key(id), server.Silo.PartitionCount);
        const string InFlight = "pg-unanswered-first";
        const string Online = "pg-unanswered-online";
        var queued = Enumerable.Range(0, 100_000).Select(i => $"pg-unanswered-queued-{i}").First(id => PartitionOf(id) == PartitionOf(Online));
        Assert.NotEqual(PartitionOf(InFlight), PartitionOf(Online));
        try
        {
            await server.BeatAsync(InFlight);
            await server.BeatAsync(queued);
            await server.AdvanceAsync(TimeSpan.FromSeconds(3.5));                  // both offline; their grains stay active
            await server.BeatAsync(Online);

            Task<HeartbeatResult> inFlight, behind;
            await using (var blocker = await OpenAsync(database))
            {
                await HoldCommitsAsync(blocker);

                // Coming back online must be durable: this commit is sent, and its COMMIT waits.
                inFlight = server.Silo.HeartbeatAsync(Key(InFlight), new HeartbeatInput(InFlight)).AsTask();
                await WaitUntilACommitIsHeldAsync(blocker);

                // Its partition being idle, this call runs its turn at once: when it returns, its commit is queued
                // behind the one in flight.
                behind = server.Silo.HeartbeatAsync(Key(queued), new HeartbeatInput(queued)).AsTask();
                Assert.False(behind.IsCompleted);

                // The database stops: the COMMIT in flight gets no answer.
                await postgres.Server.StopAsync();
            }

            Assert.IsAssignableFrom<UnavailableException>(await Record.ExceptionAsync(() => inFlight.WaitAsync(Answered)));

            // While it is down, the queued change is refused (503), and the online device of that partition is served from memory.
            var online = server.HeartbeatAsync(Online);
            await Record.ExceptionAsync(() => Task.WhenAll(behind, online).WaitAsync(Answered));
            Assert.True(
                behind.Exception?.InnerException is UnavailableException && online.IsCompletedSuccessfully,
                $"while PostgreSQL was down, within {Answered.TotalSeconds} s: the change queued behind the unanswered COMMIT " +
                (behind.Status switch { TaskStatus.Faulted => $"failed with {behind.Exception!.InnerException!.GetType().Name}", TaskStatus.RanToCompletion => "succeeded", _ => "got no answer" }) +
                "; the heartbeat of an online device in the same partition " + (online.IsCompleted ? "was answered" : "got no answer"));
            using var response = await online;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        finally
        {
            await EnsureRunningAsync();
        }
    }

    [Fact]
    public async Task After_a_crash_loses_an_unanswered_commit_the_gateway_accepts_changes_again()
    {
        var database = await postgres.Server.CreateDatabaseAsync();
        await using var server = new PostgresPresenceServer(database, settings: new() { ["shutdownTimeoutSeconds"] = "5" });
        const string InFlight = "pg-lost-first";
        try
        {
            await server.BeatAsync(InFlight);
            await server.AdvanceAsync(TimeSpan.FromSeconds(3.5));                  // offline; its grain stays active

            // The WAL writer now flushes rarely, so the crash loses the WAL of the transaction whose COMMIT waits:
            // PostgreSQL comes back as if it had never begun (as after a failover to a replica that had not received it).
            await SetWalWriterDelayAsync("10s");
            Task<HeartbeatResult> inFlight;
            await using (var blocker = await OpenAsync(database))
            {
                await HoldCommitsAsync(blocker);
                inFlight = server.Silo.HeartbeatAsync(Key(InFlight), new HeartbeatInput(InFlight)).AsTask();
                await WaitUntilACommitIsHeldAsync(blocker);
                await postgres.Server.CrashAsync();
            }

            Assert.IsAssignableFrom<UnavailableException>(await Record.ExceptionAsync(() => inFlight.WaitAsync(Answered)));
            await postgres.Server.StartAgainAsync();
            await Api.EventuallyAsync(async () => await ReadyAsync(server) == HttpStatusCode.OK, Recovered, "/readyz turns 200 again");

            // Ready again: a registration is answered (once the writer's backoff has passed, a few seconds at most).
            var registration = server.HeartbeatAsync("pg-lost-after");
            var answer = await Record.ExceptionAsync(() => registration.WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.True(answer is null, "a registration got no answer within 10 s after /readyz turned 200 again: durable writes never resume");
            using var response = await registration;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        finally
        {
            await EnsureRunningAsync();
            await SetWalWriterDelayAsync(null);
        }
    }

    private static DeviceKey Key(string deviceId) => new(DeviceKey.DefaultTenant, deviceId);

    private static async Task<NpgsqlConnection> OpenAsync(string connectionString)
    {
        var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        return connection;
    }

    /// <summary>
    /// Fault injection: from now on a transaction that appends events waits, at COMMIT, for an advisory lock that
    /// <paramref name="connection"/> holds until it closes (or the server stops).
    /// </summary>
    private static async Task HoldCommitsAsync(NpgsqlConnection connection)
    {
        await ExecuteAsync(connection,
            "CREATE FUNCTION presence_test_hold_commit() RETURNS trigger LANGUAGE plpgsql AS " +
            "$$ BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NULL; END $$");
        await ExecuteAsync(connection,
            "CREATE CONSTRAINT TRIGGER presence_test_hold_commit AFTER INSERT ON presence_events " +
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION presence_test_hold_commit()");
        await ExecuteAsync(connection, "SELECT pg_advisory_lock(4242)");
    }

    /// <summary>Waits (bounded) until a session of the database waits at COMMIT for the lock of <see cref="HoldCommitsAsync"/>.</summary>
    private static Task WaitUntilACommitIsHeldAsync(NpgsqlConnection connection) =>
        Api.EventuallyAsync(
            async () => await ExecuteAsync(connection,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'commit%' " +
                "AND wait_event_type = 'Lock' AND wait_event = 'advisory'") is 1L,
            TimeSpan.FromSeconds(10),
            "a commit waits at COMMIT");

    /// <summary>Sets (or with null resets) the server's <c>wal_writer_delay</c>.</summary>
    private async Task SetWalWriterDelayAsync(string? delay)
    {
        await using var admin = await OpenAsync(postgres.Server.ConnectionString);
        await ExecuteAsync(admin, delay is null ? "ALTER SYSTEM RESET wal_writer_delay" : $"ALTER SYSTEM SET wal_writer_delay = '{delay}'");
        await ExecuteAsync(admin, "SELECT pg_reload_conf()");
    }

    private static async Task<object?> ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }

    private static async Task<HttpStatusCode> ReadyAsync(PresenceServer server)
    {
        using var response = await server.Http.GetAsync("/readyz");
        return response.StatusCode;
    }

    private static async Task AssertUnavailableAsync(HttpResponseMessage response)
    {
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync();
            var request = $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri?.PathAndQuery}";
            Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{request}: expected 503, got {(int)response.StatusCode} {body}");
            Assert.Equal("UNAVAILABLE", JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString());
            Assert.True(response.Headers.RetryAfter?.Delta > TimeSpan.Zero, $"{request}: 503 without a Retry-After");
        }
    }

    /// <summary>A test that stopped the shared server leaves it running, whatever happened.</summary>
    private async Task EnsureRunningAsync()
    {
        if (!postgres.Server.IsRunning)
        {
            await postgres.Server.StartAgainAsync();
        }
    }
}
