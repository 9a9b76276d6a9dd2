using System.Collections.Concurrent;
using System.Net;
using Npgsql;
using Presence.Grains.Abstractions;
using Presence.Runtime.Partitioning;
using Presence.Runtime.Storage;
using Presence.Testing;
using Xunit.Abstractions;

namespace Presence.Gateway.Tests.Postgres;

/// <summary>
/// PostgreSQL fails while commits are in flight: it crashes during a burst of registrations, or stops or crashes
/// while a COMMIT waits for its answer (held there by fault injection, see <see cref="Faults.HoldCommitsAsync"/>).
/// Nothing acknowledged is lost, no event is duplicated, nothing else waits for the unanswered COMMIT, and durable
/// writes resume when the database is back.
/// </summary>
public sealed class PostgresCommitFaultTests(PostgresFixture postgres, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    private const int Registrations = 1000;
    private static readonly TimeSpan Recovered = TimeSpan.FromSeconds(30);

    /// <summary>How long a request may take to be answered while PostgreSQL is down (503 or from memory): generous.</summary>
    private static readonly TimeSpan Answered = TimeSpan.FromSeconds(5);

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
            await Api.EventuallyAsync(async () => await server.ReadyAsync() == HttpStatusCode.OK, Recovered, "/readyz turns 200 again");
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
            await postgres.Server.EnsureRunningAsync();
            await server.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_commit_left_unanswered_by_an_outage_does_not_freeze_the_partitions_queued_behind_it()
    {
        var database = await postgres.Server.CreateDatabaseAsync();
        await using var server = new PostgresPresenceServer(database);
        int PartitionOf(string id) => PartitionHash.Of(Faults.Key(id), server.Silo.PartitionCount);
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
            await using (var blocker = await Faults.OpenAsync(database))
            {
                await Faults.HoldCommitsAsync(blocker);

                // Coming back online must be durable: this commit is sent, and its COMMIT waits.
                inFlight = server.Silo.HeartbeatAsync(Faults.Key(InFlight), new HeartbeatInput(InFlight)).AsTask();
                await Faults.WaitUntilACommitIsHeldAsync(blocker);

                // Its partition being idle, this call runs its turn at once: when it returns, its commit is queued
                // behind the one in flight.
                behind = server.Silo.HeartbeatAsync(Faults.Key(queued), new HeartbeatInput(queued)).AsTask();
                Assert.False(behind.IsCompleted);

                // The database goes away: the COMMIT in flight gets no answer. A crash, not a fast shutdown: in a
                // fast one the blocking session could exit first and release its lock, letting the held COMMIT
                // finish and be answered before its own backend stopped (seen on a loaded machine).
                await postgres.Server.CrashAsync();
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
            await postgres.Server.EnsureRunningAsync();
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
            await postgres.Server.SetWalWriterDelayAsync("10s");
            Task<HeartbeatResult> inFlight;
            await using (var blocker = await Faults.OpenAsync(database))
            {
                await Faults.HoldCommitsAsync(blocker);
                inFlight = server.Silo.HeartbeatAsync(Faults.Key(InFlight), new HeartbeatInput(InFlight)).AsTask();
                await Faults.WaitUntilACommitIsHeldAsync(blocker);
                await postgres.Server.CrashAsync();
            }

            Assert.IsAssignableFrom<UnavailableException>(await Record.ExceptionAsync(() => inFlight.WaitAsync(Answered)));
            await postgres.Server.StartAgainAsync();
            await Api.EventuallyAsync(async () => await server.ReadyAsync() == HttpStatusCode.OK, Recovered, "/readyz turns 200 again");

            // Ready again: a registration is answered (once the writer's backoff has passed, a few seconds at most).
            var registration = server.HeartbeatAsync("pg-lost-after");
            var answer = await Record.ExceptionAsync(() => registration.WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.True(answer is null, "a registration got no answer within 10 s after /readyz turned 200 again: durable writes never resume");
            using var response = await registration;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        finally
        {
            await postgres.Server.EnsureRunningAsync();
            await postgres.Server.SetWalWriterDelayAsync(null);
        }
    }
}
