using System.Net;
using System.Text.Json;
using Presence.Cluster.Tests.Support;
using Presence.Testing;

namespace Presence.Cluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class PlacementTests(PostgresFixture postgres)
{
    [Fact]
    public async Task Two_silos_split_the_partitions_and_the_gateway_routes_each_device_to_its_owner()
    {
        await using var cluster = await TestCluster.StartAsync(postgres.Server, silos: 2);
        var counts = cluster.Silos.Select(s => s.Runtime.OwnedPartitions().Count).ToList();
        Assert.Equal(TestCluster.Partitions, counts.Sum());
        Assert.All(counts, count => Assert.InRange(count, 1, TestCluster.Partitions - 1));

        for (var i = 0; i < 20; i++)
        {
            using var response = await cluster.Gateway.HeartbeatAsync($"dev-{i}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        for (var i = 0; i < 20; i++)
        {
            var owner = cluster.OwnerOf($"dev-{i}");
            var device = await owner.Runtime.GetAsync(new Grains.Abstractions.DeviceKey("default", $"dev-{i}"));
            Assert.NotNull(device);
            var read = await cluster.Gateway.GetJsonAsync($"/api/v1/devices/dev-{i}");
            Assert.Equal("online", read.GetProperty("status").GetString());
        }

        Assert.True(cluster.Silos.All(s => s.Runtime.Activations > 0), "both silos host devices");
    }

    [Fact]
    public async Task The_cluster_view_shows_every_silo_with_its_partitions_and_devices()
    {
        await using var cluster = await TestCluster.StartAsync(postgres.Server, silos: 2);
        using (await cluster.Gateway.HeartbeatAsync("viewed"))
        {
        }

        await cluster.RoundAsync();
        var view = await cluster.Gateway.GetJsonAsync("/api/v1/cluster");
        Assert.Equal(TestCluster.Partitions, view.GetProperty("partitions_total").GetInt32());
        Assert.Equal(0, view.GetProperty("partitions_unowned").GetInt32());
        var silos = view.GetProperty("silos").EnumerateArray().ToList();
        Assert.Equal(2, silos.Count);
        Assert.All(silos, s => Assert.Equal("active", s.GetProperty("status").GetString()));
        Assert.Equal(TestCluster.Partitions, silos.Sum(s => s.GetProperty("partitions").GetInt32()));
        Assert.Equal(1, silos.Sum(s => s.GetProperty("devices").GetInt64()));
        Assert.All(silos, s => Assert.StartsWith("127.0.0.1:", s.GetProperty("address").GetString(), StringComparison.Ordinal));
        Assert.Equal(JsonValueKind.String, silos[0].GetProperty("last_heartbeat_at").ValueKind);
    }
}
