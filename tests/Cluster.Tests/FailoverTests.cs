using System.Net;
using Presence.Cluster.Tests.Support;
using Presence.Grains.Abstractions;
using Presence.Runtime.Cluster;
using Presence.Runtime.Storage;
using Presence.Testing;

namespace Presence.Cluster.Tests;

/// <summary>Take-over after a crash, hand-off on drain and join, fencing of a silo cut off from the database.</summary>
[Collection(ClusterCollection.Name)]
public sealed class FailoverTests(PostgresFixture postgres)
{
    [Fact]
    public async Task A_killed_silos_partitions_are_taken_over_and_a_heartbeating_device_never_goes_offline()
    {
        await using var cluster = await TestCluster.StartAsync(postgres.Server, silos: 2);
        var victim = cluster.Silos[0];
        var (alive, silent) = TwoDevicesOn(cluster, victim);
        var cursor = await cluster.Gateway.CursorAsync();
        await HeartbeatAsync(cluster, alive);
        await HeartbeatAsync(cluster, silent);

        await cluster.KillSiloAsync(victim);
        // The device keeps heartbeating every round: its calls wait at the gateway while no silo owns its partition.
        var pending = new List<Task<HttpResponseMessage>>();
        var rounds = 0;
        while (!cluster.IsSettled())
        {
            Assert.True(++rounds <= 10, $"take-over took more than 10 rounds: {cluster.Describe()}");
            pending.Add(cluster.Gateway.HeartbeatAsync(alive));
            await cluster.RoundAsync();
        }

        // Default timings: the lease runs out after 5 s, then the survivor acquires at its next round.
        Assert.InRange(rounds, 5, 7);
        Assert.Equal(cluster.Silos[0], cluster.OwnerOf(alive));
        await cluster.RoundAsync(); // waiting calls read the map again and reach the new owner
        foreach (var heartbeat in pending)
        {
            using var response = await heartbeat.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // The silent device gets one timeout of grace from the take-over, then goes offline once.
        for (var i = 0; i < 5; i++)
        {
            await HeartbeatAsync(cluster, alive);
            await cluster.AdvanceAsync(TimeSpan.FromSeconds(1));
        }

        var silentEvents = await cluster.Gateway.EventsAsync(cursor, atLeast: 3, silent);
        Assert.Equal(["registered", "online", "offline"], Order(silentEvents));
        Assert.Equal("timeout", silentEvents[2].GetProperty("data").GetProperty("reason").GetString());
        var aliveEvents = await cluster.Gateway.EventsAsync(cursor, atLeast: 2, alive);
        Assert.DoesNotContain("offline", aliveEvents.Select(e => e.Status()));
        Assert.Equal(Enumerable.Range(1, aliveEvents.Count), aliveEvents.Select(e => e.GetProperty("sequence").GetInt32()));
        Assert.Equal("online", (await cluster.Gateway.GetJsonAsync($"/api/v1/devices/{alive}")).GetProperty("status").GetString());
    }

    [Fact]
    public async Task A_draining_silo_hands_off_its_partitions_with_their_latest_state_and_no_offline_event()
    {
        await using var cluster = await TestCluster.StartAsync(postgres.Server, silos: 2);
        var leaving = cluster.Silos[0];
        var (device, _) = TwoDevicesOn(cluster, leaving);
        var cursor = await cluster.Gateway.CursorAsync();
        await HeartbeatAsync(cluster, device);
        await cluster.AdvanceAsync(TimeSpan.FromSeconds(1));
        await HeartbeatAsync(cluster, device, new { metrics = new { cpu_pct = 42.5 } });
        var before = await cluster.Gateway.GetJsonAsync($"/api/v1/devices/{device}");

        await cluster.StopSiloAsync(leaving);

        var survivor = Assert.Single(cluster.Silos);
        Assert.Equal(TestCluster.Partitions, survivor.Runtime.OwnedPartitions().Count);
        var after = await cluster.Gateway.GetJsonAsync($"/api/v1/devices/{device}");
        // Write-behind state (last-seen, metrics) was flushed before the release: nothing went back in time.
        Assert.Equal(before.GetProperty("last_seen_at").GetString(), after.GetProperty("last_seen_at").GetString());
        Assert.Equal(42.5, after.GetProperty("metrics").GetProperty("cpu_pct").GetDouble());
        Assert.Equal(before.GetProperty("version").GetInt64(), after.GetProperty("version").GetInt64());
        await HeartbeatAsync(cluster, device);
        var events = await cluster.Gateway.EventsAsync(cursor, atLeast: 2, device);
        Assert.DoesNotContain("offline", events.Select(e => e.Status()));

        var view = await cluster.Gateway.GetJsonAsync("/api/v1/cluster");
        Assert.Equal(0, view.GetProperty("partitions_unowned").GetInt32());
        Assert.Contains(view.GetProperty("silos").EnumerateArray(),
            s => s.GetProperty("silo_id").GetString() == leaving.Id && s.GetProperty("status").GetString() == "dead" && s.GetProperty("partitions").GetInt32() == 0);
    }

    [Fact]
    public async Task A_joining_silo_gets_its_rendezvous_share_and_devices_stay_online()
    {
        await using var cluster = await TestCluster.StartAsync(postgres.Server, silos: 1);
        var devices = Enumerable.Range(0, 30).Select(i => $"join-{i}").ToList();
        var cursor = await cluster.Gateway.CursorAsync();
        foreach (var device in devices)
        {
            await HeartbeatAsync(cluster, device);
        }

        var joined = await cluster.StartSiloAsync();

        Assert.True(cluster.IsSettled());
        var share = joined.Runtime.OwnedPartitions().Count;
        Assert.InRange(share, 1, TestCluster.Partitions - 1);
        Assert.Equal(TestCluster.Partitions, cluster.Silos.Sum(s => s.Runtime.OwnedPartitions().Count));
        foreach (var device in devices)
        {
            await HeartbeatAsync(cluster, device);
            Assert.Equal("online", (await cluster.Gateway.GetJsonAsync($"/api/v1/devices/{device}")).GetProperty("status").GetString());
        }

        Assert.Contains(devices, d => cluster.OwnerOf(d) == joined);
        var events = await cluster.Gateway.EventsAsync(cursor, atLeast: 2 * devices.Count);
        Assert.DoesNotContain("offline", events.Select(e => e.Status()));
    }

    [Fact]
    public async Task A_silo_cut_off_from_the_database_is_fenced_once_another_silo_takes_its_partitions()
    {
        await using var cluster = await TestCluster.StartAsync(postgres.Server, silos: 2);
        var cutOff = cluster.Silos[0];
        var (device, _) = TwoDevicesOn(cluster, cutOff);
        await HeartbeatAsync(cluster, device);
        var partition = Runtime.Partitioning.PartitionHash.Of(ClusterEvents.Key(device), TestCluster.Partitions);

        // Its membership rounds stop (as when its database connection is cut), but it keeps running and serving.
        await cutOff.Member.AbandonAsync();
        cluster.Silos.Remove(cutOff);
        await cluster.SettleAsync();
        Assert.True(cluster.Silos[0].Runtime.OwnedPartitions().ContainsKey(partition));
        await HeartbeatAsync(cluster, device); // at the new owner

        // Two activations of the device exist now; only the new owner's writes persist.
        var stale = await Assert.ThrowsAsync<PartitionFencedException>(async () =>
            await cutOff.Runtime.RemoveAsync(ClusterEvents.Key(device)));
        Assert.Equal(partition, stale.Partition);
        Assert.Equal("online", (await cluster.Gateway.GetJsonAsync($"/api/v1/devices/{device}")).GetProperty("status").GetString());
        // And it refuses everything after that (a gateway retries at the owner).
        await Assert.ThrowsAsync<PartitionFencedException>(async () => await cutOff.Runtime.GetAsync(ClusterEvents.Key(device)));
        await cutOff.KillAsync();
    }

    [Fact]
    public async Task With_no_live_owner_a_heartbeat_gets_503_with_retry_after_once_the_route_timeout_passes()
    {
        await using var cluster = await TestCluster.StartAsync(postgres.Server, silos: 1);
        await cluster.KillSiloAsync(cluster.Silos[0]);

        var waiting = cluster.Gateway.Client.NextWaitAsync();
        var heartbeat = cluster.Gateway.HeartbeatAsync("orphan");
        await waiting.WaitAsync(TimeSpan.FromSeconds(20));

        // RouteTimeoutSeconds is 10: the request waits at the gateway for ten rounds of the clock.
        for (var rounds = 0; !heartbeat.IsCompleted; rounds++)
        {
            Assert.True(rounds < 12, "the heartbeat was neither routed nor refused within the route timeout");
            var next = cluster.Gateway.Client.NextWaitAsync();
            await cluster.RoundAsync();
            await Task.WhenAny(heartbeat, next).WaitAsync(TimeSpan.FromSeconds(20));
        }

        using var response = await heartbeat.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        using var ready = await cluster.Gateway.Http.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
    }

    private static string[] Order(List<System.Text.Json.JsonElement> events) =>
        events.Select(e => e.GetProperty("type").GetString() == "device.registered" ? "registered" : e.Status() ?? "other").ToArray();

    /// <summary>Two device ids whose partitions <paramref name="silo"/> owns.</summary>
    private static (string, string) TwoDevicesOn(TestCluster cluster, TestSilo silo)
    {
        var ids = Enumerable.Range(0, 1000).Select(i => $"dev-{i}").Where(id => cluster.OwnerOf(id) == silo).Take(2).ToList();
        return (ids[0], ids[1]);
    }

    private static async Task HeartbeatAsync(TestCluster cluster, string device, object? extra = null)
    {
        using var response = await cluster.Gateway.HeartbeatAsync(device, extra);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
