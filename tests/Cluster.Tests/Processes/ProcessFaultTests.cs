using System.Diagnostics;
using Presence.Testing;
using Xunit.Abstractions;

namespace Presence.Cluster.Tests.Processes;

/// <summary>
/// Fault scenarios with real processes: silos and cluster-mode gateways as children of the test, PostgreSQL as a real
/// server, devices heartbeating over HTTP and portal readers on <c>/ws/events</c>. Real time runs: phases are polled
/// with short waits under overall deadlines.
/// </summary>
[Collection(ClusterCollection.Name)]
[Trait("Category", Category)]
public sealed class ProcessFaultTests(PostgresFixture postgres, ITestOutputHelper output)
{
    /// <summary>test.sh runs these after everything else: five processes and a fleet want the machine to themselves.</summary>
    public const string Category = "Processes";

    private static readonly TimeSpan HeartbeatInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan FailoverBound = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Silo_crash_join_and_drain_under_load_lose_no_heartbeat_and_no_event()
    {
        await using var cluster = await ProcessCluster.CreateAsync(postgres.Server, output);
        var originals = await Task.WhenAll(cluster.StartSiloAsync(), cluster.StartSiloAsync());
        var (crashing, draining) = (originals[0], originals[1]);
        var gateways = await Task.WhenAll(cluster.StartGatewayAsync(), cluster.StartGatewayAsync());
        await ProcessCluster.WaitForAsync(gateways[0], "both silos own partitions", v => ProcessCluster.FullyOwnedBy(v, crashing, draining), TimeSpan.FromSeconds(30), originals);

        var since = await gateways[0].EventLogHeadAsync();
        await using var first = await EventReader.ConnectAsync("reader-1", gateways[0].Address, since);
        await using var second = await EventReader.ConnectAsync("reader-2", gateways[1].Address, since);
        await using var fleet = new DeviceFleet(gateways.Select(g => g.Address));

        // Silent devices heartbeat once and must then go offline exactly once, whichever silo holds them by then.
        var silent = Enumerable.Range(0, 20).Select(i => $"silent-{i:D2}").ToList();
        var outcomes = (await Task.WhenAll(silent.Select(fleet.HeartbeatAsync))).ToList();
        var devices = Enumerable.Range(0, 200).Select(i => $"fleet-{i:D3}").ToList();
        var run = fleet.Start(devices, HeartbeatInterval, TimeSpan.FromMinutes(3));
        await WaitForEventsAsync(first, "every fleet device came online", events => devices.All(OnlineIn(events)), TimeSpan.FromSeconds(30));

        var failover = Stopwatch.StartNew();
        await crashing.KillAsync();
        await ProcessCluster.WaitForAsync(gateways[0], $"the survivor owns every partition after {crashing.SiloId} crashed", v => ProcessCluster.FullyOwnedBy(v, draining), TimeSpan.FromSeconds(30), draining);
        failover.Stop();
        output.WriteLine($"failover after kill -9: every partition owned again {failover.Elapsed.TotalSeconds:F1} s after the kill");
        Assert.True(failover.Elapsed <= FailoverBound, $"take-over took {failover.Elapsed.TotalSeconds:F1} s (bound {FailoverBound.TotalSeconds} s)");

        var joined = await cluster.StartSiloAsync();
        await ProcessCluster.WaitForAsync(gateways[1], $"{joined.SiloId} took partitions", v => ProcessCluster.FullyOwnedBy(v, draining, joined), TimeSpan.FromSeconds(30), draining, joined);

        await draining.TerminateAsync(TimeSpan.FromSeconds(30));
        Assert.Contains($"Silo {draining.SiloId} left the cluster", draining.Output, StringComparison.Ordinal);
        await ProcessCluster.WaitForAsync(gateways[0], $"{joined.SiloId} owns every partition after the drain", v => ProcessCluster.FullyOwnedBy(v, joined), TimeSpan.FromSeconds(15), joined);

        await WaitForEventsAsync(first, "every silent device went offline", events => silent.All(OfflineIn(events)), TimeSpan.FromSeconds(60));
        // Three more heartbeats of every fleet device through the last silo alone.
        await fleet.AcceptedAsync(fleet.Accepted + (3 * devices.Count), TimeSpan.FromSeconds(60));
        outcomes.AddRange(await run.StopAsync());

        // Once the fleet stops, its devices time out for real: wait for that, then for both readers to agree.
        await WaitForEventsAsync(first, "every fleet device went offline after the fleet stopped", events => devices.All(OfflineIn(events)), TimeSpan.FromSeconds(60));
        await WaitForSameCountAsync(first, second);
        Report(outcomes, first.Events);

        AssertEveryHeartbeatAccepted(outcomes);
        AssertLifecycles(first.Events, silent, devices, outcomes);
        AssertSameStream(first.Events, second.Events, "reader-1 (gateway-1)", "reader-2 (gateway-2)");
        // The paged REST view of the log is the same stream too.
        Assert.Equal(first.Events.Select(e => e.Id), await gateways[1].EventIdsAsync(since));
        Assert.Null(first.Ended);
        Assert.Null(second.Ended);
    }

    [Fact]
    public async Task A_reader_resuming_on_another_gateway_after_a_gateway_crash_misses_and_repeats_nothing()
    {
        await using var cluster = await ProcessCluster.CreateAsync(postgres.Server, output);
        var silos = await Task.WhenAll(cluster.StartSiloAsync(), cluster.StartSiloAsync());
        var gateways = await Task.WhenAll(cluster.StartGatewayAsync(), cluster.StartGatewayAsync());
        await ProcessCluster.WaitForAsync(gateways[0], "both silos own partitions", v => ProcessCluster.FullyOwnedBy(v, silos), TimeSpan.FromSeconds(30), silos);

        var since = await gateways[0].EventLogHeadAsync();
        await using var steady = await EventReader.ConnectAsync("reader-1", gateways[0].Address, since);
        await using var cut = await EventReader.ConnectAsync("reader-2", gateways[1].Address, since);
        await using var fleet = new DeviceFleet(gateways.Select(g => g.Address));
        var devices = Enumerable.Range(0, 100).Select(i => $"fleet-{i:D3}").ToList();
        var run = fleet.Start(devices, HeartbeatInterval, TimeSpan.FromMinutes(2));
        await WaitForEventsAsync(cut, "every fleet device came online", events => devices.All(OnlineIn(events)), TimeSpan.FromSeconds(30));

        await gateways[1].KillAsync();
        await cut.EndedAsync(TimeSpan.FromSeconds(10));

        // Events the cut reader must catch up on: devices that register (and later time out) while its gateway is down.
        var late = Enumerable.Range(0, 20).Select(i => $"late-{i:D2}").ToList();
        var outcomes = (await Task.WhenAll(late.Select(fleet.HeartbeatAsync))).ToList();
        await WaitForEventsAsync(steady, "every late device came online", events => late.All(OnlineIn(events)), TimeSpan.FromSeconds(30));
        var replacement = await cluster.StartGatewayAsync();
        fleet.ReplaceGateway(1, replacement.Address);
        await using var resumed = await EventReader.ConnectAsync("reader-3", replacement.Address, cut.LastCursor);
        output.WriteLine($"reader-2 ended after {cut.Events.Count} events ({cut.Ended}); reader-3 resumes from {cut.LastCursor}");

        // Three more heartbeats of every device, half of them through the replacement.
        await fleet.AcceptedAsync(fleet.Accepted + (3 * devices.Count), TimeSpan.FromSeconds(60));
        outcomes.AddRange(await run.StopAsync());
        await WaitForEventsAsync(steady, "every device went offline after the fleet stopped", events => devices.Concat(late).All(OfflineIn(events)), TimeSpan.FromSeconds(60));
        await WaitForSameCountAsync(steady, cut, resumed);
        Report(outcomes, steady.Events);

        AssertEveryHeartbeatAccepted(outcomes);
        AssertLifecycles(steady.Events, late, devices, outcomes);
        AssertSameStream(steady.Events, [.. cut.Events, .. resumed.Events], "reader-1 (gateway-1)", "reader-2 then reader-3 (gateway-2, then gateway-3)");
        Assert.Null(steady.Ended);
        Assert.Null(resumed.Ended);
    }

    private static Func<string, bool> OnlineIn(IReadOnlyList<ObservedEvent> events)
    {
        var online = events.Where(e => e.Type == "device.status" && e.Status == "online").Select(e => e.DeviceId).ToHashSet();
        return online.Contains;
    }

    private static Func<string, bool> OfflineIn(IReadOnlyList<ObservedEvent> events)
    {
        var offline = events.Where(e => e.IsOffline).Select(e => e.DeviceId).ToHashSet();
        return offline.Contains;
    }

    /// <summary>Re-checks <paramref name="condition"/> at every event the reader receives; fails after <paramref name="timeout"/>.</summary>
    private static async Task WaitForEventsAsync(EventReader reader, string what, Func<IReadOnlyList<ObservedEvent>, bool> condition, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (true)
        {
            var next = reader.NextChangeAsync(); // before the check: an event in between is not missed
            if (condition(reader.Events))
            {
                return;
            }

            try
            {
                await next.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"not within {timeout.TotalSeconds} s: {what} ({reader.Name} has {reader.Events.Count} events, ended: {reader.Ended ?? "no"})");
            }
        }
    }

    /// <summary>
    /// Waits, at every event either side receives, until <paramref name="other"/> holds as many events as
    /// <paramref name="one"/> (called once no more events can come: every device is offline and the fleet stopped).
    /// </summary>
    private static async Task WaitForSameCountAsync(EventReader one, params EventReader[] other)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (true)
        {
            var next = Task.WhenAny(other.Append(one).Select(r => r.NextChangeAsync()));
            var (expected, got) = (one.Events.Count, other.Sum(r => r.Events.Count));
            if (expected == got)
            {
                return;
            }

            try
            {
                await next.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"the readers did not reach the same count: {one.Name} {expected}, {string.Join(" + ", other.Select(r => r.Name))} {got}");
            }
        }
    }

    private static void AssertEveryHeartbeatAccepted(IReadOnlyList<HeartbeatOutcome> outcomes)
    {
        var refused = outcomes.Where(o => !o.Accepted).ToList();
        Assert.True(refused.Count == 0, $"{refused.Count} of {outcomes.Count} heartbeats were never accepted, e.g.:\n" + string.Join("\n", refused.Take(10)));
    }

    /// <summary>
    /// Every device's events, in order, are exactly: registered (1), online by heartbeat (2), offline by timeout (3);
    /// so sequences are gapless and unrepeated, no device went offline while it heartbeated (it would have come back
    /// online: a fourth event), and a heartbeating device went offline no earlier than the timeout after its last
    /// accepted heartbeat.
    /// </summary>
    private static void AssertLifecycles(
        IReadOnlyList<ObservedEvent> events, IReadOnlyList<string> silent, IReadOnlyList<string> heartbeating, IReadOnlyList<HeartbeatOutcome> outcomes)
    {
        Assert.All(events, e => Assert.DoesNotContain("unexpected", e.Type, StringComparison.Ordinal));
        var byDevice = events.GroupBy(e => e.DeviceId).ToDictionary(g => g.Key, g => g.ToList());
        Assert.Equal(silent.Concat(heartbeating).Order(), byDevice.Keys.Order());
        var lastAccepted = outcomes.Where(o => o.Accepted).GroupBy(o => o.DeviceId).ToDictionary(g => g.Key, g => g.Max(o => o.StartedAt));
        var violations = new List<string>();
        foreach (var (device, lifecycle) in byDevice)
        {
            var shape = lifecycle.Select(e => (e.Sequence, e.Type, e.Status, e.Reason)).ToList();
            List<(long, string, string?, string?)> expected =
            [
                (1, "device.registered", null, null),
                (2, "device.status", "online", "heartbeat"),
                (3, "device.status", "offline", "timeout"),
            ];
            // device.registered carries the device, not a status: compare its sequence and type only.
            if (shape.Count != expected.Count
                || shape[0].Sequence != 1 || shape[0].Type != "device.registered"
                || shape[1] != expected[1] || shape[2] != expected[2])
            {
                violations.Add($"{device}: " + string.Join(" | ", lifecycle));
                continue;
            }

            var offline = lifecycle[2].Time;
            if (heartbeating.Contains(device) && offline < lastAccepted[device] + ProcessCluster.HeartbeatTimeout)
            {
                violations.Add($"{device}: offline at {offline:HH:mm:ss.fff}, but its last accepted heartbeat started at {lastAccepted[device]:HH:mm:ss.fff}");
            }
        }

        Assert.True(violations.Count == 0, $"{violations.Count} devices broke registered -> online -> offline(timeout), e.g.:\n" + string.Join("\n", violations.Take(15)));
    }

    private static void AssertSameStream(IReadOnlyList<ObservedEvent> one, IReadOnlyList<ObservedEvent> other, string oneName, string otherName)
    {
        var common = Math.Min(one.Count, other.Count);
        for (var i = 0; i < common; i++)
        {
            Assert.True(one[i].Id == other[i].Id, $"event {i} differs: {oneName} has {one[i]}, {otherName} has {other[i]}");
        }

        Assert.True(one.Count == other.Count, $"{oneName} has {one.Count} events, {otherName} {other.Count}");
        Assert.Equal(one.Count, one.Select(e => e.Id).Distinct().Count());
    }

    private void Report(IReadOnlyList<HeartbeatOutcome> outcomes, IReadOnlyList<ObservedEvent> events)
    {
        var retried = outcomes.Where(o => o.Attempts > 1).ToList();
        output.WriteLine(
            $"{outcomes.Count} heartbeats, {outcomes.Count(o => o.Accepted)} accepted, {retried.Count} needed retries " +
            $"(longest {(outcomes.Count == 0 ? 0 : outcomes.Max(o => o.Elapsed.TotalSeconds)):F1} s, most attempts {(outcomes.Count == 0 ? 0 : outcomes.Max(o => o.Attempts))}); {events.Count} events");
    }
}
