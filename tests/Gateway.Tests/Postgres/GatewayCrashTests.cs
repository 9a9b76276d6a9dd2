using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Presence.Testing;
using Xunit.Abstractions;

namespace Presence.Gateway.Tests.Postgres;

/// <summary>
/// The real gateway process on PostgreSQL, killed with SIGKILL while registrations are in flight: a new process on
/// the same database has every device whose heartbeat was acknowledged, with its events exactly once, and cursors
/// from before the kill resume exactly after them.
/// </summary>
public sealed class GatewayCrashTests(PostgresFixture postgres, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    private const int Wave = 200;

    [Fact]
    public async Task Sigkill_loses_no_acknowledged_registration_and_cursors_from_before_it_resume_exactly_once()
    {
        var database = await postgres.Server.CreateDatabaseAsync();
        GatewayProcess? first = null;
        GatewayProcess? second = null;
        try
        {
            first = await GatewayProcess.StartAsync(database);
            var start = (await first.GetJsonAsync("/api/v1/events")).GetProperty("next_cursor").GetString()!;

            var before = Enumerable.Range(0, Wave).Select(i => $"crash-a-{i:D3}").ToList();
            var statuses = await Task.WhenAll(before.Select(first.HeartbeatAsync));
            Assert.All(statuses, status => Assert.Equal(HttpStatusCode.OK, status));
            var middle = (await first.GetJsonAsync("/api/v1/events")).GetProperty("next_cursor").GetString()!;

            // A second wave, and SIGKILL once some of it has been answered: the rest is in flight or not sent yet.
            var acknowledged = new ConcurrentBag<string>(before);
            var answered = 0;
            var someAnswered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var during = Enumerable.Range(0, Wave).Select(i => $"crash-b-{i:D3}").Select(async id =>
            {
                try
                {
                    if (await first.HeartbeatAsync(id) == HttpStatusCode.OK)
                    {
                        acknowledged.Add(id);
                        if (Interlocked.Increment(ref answered) == 20)
                        {
                            someAnswered.TrySetResult();
                        }
                    }
                }
                catch (HttpRequestException)
                {
                    // Killed before it answered: not acknowledged, so it may or may not have happened.
                }
            }).ToList();
            await someAnswered.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await first.KillAsync();
            await Task.WhenAll(during);
            output.WriteLine($"{acknowledged.Count - Wave} of the second wave of {Wave} were acknowledged before SIGKILL");

            second = await GatewayProcess.StartAsync(database);
            var listed = (await second.GetJsonAsync("/api/v1/devices?limit=1000")).GetProperty("devices").EnumerateArray()
                .ToDictionary(d => d.GetProperty("device_id").GetString()!, d => d.GetProperty("status").GetString());
            var events = await second.EventsAsync(start);

            // Every acknowledged device exists, and every device has its registration events exactly once.
            Assert.All(acknowledged, id => Assert.True(listed.TryGetValue(id, out var status) && status == "online", $"{id} was acknowledged but is {status ?? "missing"} after the restart"));
            var byDevice = events.GroupBy(e => e.Device()).ToDictionary(g => g.Key, g => g.Select(e => $"{e.Summary()} {e.GetProperty("sequence").GetInt64()}").ToList());
            Assert.Equal(listed.Keys.Order(StringComparer.Ordinal), byDevice.Keys.Order(StringComparer.Ordinal));
            Assert.All(byDevice, pair => Assert.Equal(["registered 1", "online/heartbeat 2"], pair.Value));
            Assert.Equal(events.Count, events.Select(e => e.Id()).Distinct().Count());

            // The cursor taken before the kill: exactly the events after it, over REST and the portal WebSocket.
            var cut = events.FindIndex(e => e.Id() == middle);
            Assert.Equal(2 * Wave - 1, cut);
            Assert.All(events.Take(cut + 1), e => Assert.StartsWith("crash-a-", e.Device(), StringComparison.Ordinal));
            var after = events.Skip(cut + 1).Select(e => e.GetRawText()).ToList();
            Assert.Equal(after, (await second.EventsAsync(middle)).Select(e => e.GetRawText()));

            await using var portal = await second.ConnectAsync($"/ws/events?since={middle}");
            await portal.ExpectAsync("hello");
            var streamed = new List<string>();
            foreach (var _ in after)
            {
                streamed.Add((await portal.ExpectAsync("event")).GetProperty("event").GetRawText());
            }

            Assert.Equal(after, streamed);
            Assert.Equal(HttpStatusCode.OK, await second.HeartbeatAsync("crash-c-live"));
            var live = (await portal.ExpectAsync("event")).GetProperty("event");
            Assert.Equal(("crash-c-live", "registered"), (live.Device(), live.Summary()));

            await Api.EventuallyAsync(
                () => Task.FromResult(second.Output.Contains($"Recovery: {listed.Count} devices were online in storage", StringComparison.Ordinal)),
                TimeSpan.FromSeconds(30),
                $"the new process logs that it recovered the {listed.Count} online devices");
        }
        finally
        {
            await DisposeAndReportAsync(("first", first), ("second", second));
        }
    }

    [Fact]
    public async Task Sigterm_stops_the_gateway_process_cleanly_with_exit_code_0_after_flushing_write_behind()
    {
        var database = await postgres.Server.CreateDatabaseAsync();
        GatewayProcess? first = null;
        GatewayProcess? second = null;
        try
        {
            first = await GatewayProcess.StartAsync(database);
            Assert.Equal(HttpStatusCode.OK, await first.HeartbeatAsync("term-device", new() { ["cpu_pct"] = 1 }));
            Assert.Equal(HttpStatusCode.OK, await first.HeartbeatAsync("term-device", new() { ["cpu_pct"] = 2 }));

            var exitCode = await first.TerminateAsync();

            // What the graceful stop flushed is there for the next process.
            second = await GatewayProcess.StartAsync(database);
            var device = Assert.Single((await second.GetJsonAsync("/api/v1/devices")).GetProperty("devices").EnumerateArray());
            Assert.Equal(("term-device", "online", 2.0), (device.GetProperty("device_id").GetString(), device.GetProperty("status").GetString(), device.GetProperty("metrics").GetProperty("cpu_pct").GetDouble()));

            // API.md: "SIGTERM to any process shuts it down gracefully".
            Assert.DoesNotContain("Unhandled exception", first.Output, StringComparison.Ordinal);
            Assert.Equal(0, exitCode);
        }
        finally
        {
            await DisposeAndReportAsync(("first", first), ("second", second));
        }
    }

    private async Task DisposeAndReportAsync(params (string Name, GatewayProcess? Process)[] processes)
    {
        foreach (var (name, process) in processes)
        {
            if (process is not null)
            {
                await process.DisposeAsync();
                output.WriteLine($"--- {name} gateway (pid {process.Id}) output ---\n{process.Output}");
            }
        }
    }
}
