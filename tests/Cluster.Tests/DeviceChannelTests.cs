using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Presence.Cluster.Tests.Support;
using Presence.Testing;

namespace Presence.Cluster.Tests;

/// <summary><c>/ws/device</c> and commands through a cluster gateway, whichever silo owns the device, before and after it moves.</summary>
[Collection(ClusterCollection.Name)]
public sealed class DeviceChannelTests(PostgresFixture postgres)
{
    [Fact]
    public async Task A_device_channel_and_its_commands_keep_working_when_the_devices_partition_moves_to_another_silo()
    {
        await using var cluster = await TestCluster.StartAsync(postgres.Server, silos: 2);
        var device = Enumerable.Range(0, 1000).Select(i => $"chan-{i}").First(id => cluster.OwnerOf(id) == cluster.Silos[0]);
        var cursor = await cluster.Gateway.CursorAsync();
        await using var channel = await cluster.Gateway.ConnectAsync("/ws/device");
        await channel.SendAsync(new { type = "heartbeat", device_id = device });
        await channel.ExpectAsync("ack");

        var first = await CommandAsync(cluster, channel, device, "collect");

        await cluster.StopSiloAsync(cluster.Silos[0]); // the owner drains; the other silo takes the partition
        Assert.Equal(cluster.Silos[0], cluster.OwnerOf(device));
        await channel.SendAsync(new { type = "heartbeat", device_id = device });
        await channel.ExpectAsync("ack");
        var second = await CommandAsync(cluster, channel, device, "ping");

        var events = await cluster.Gateway.EventsAsync(cursor, atLeast: 4, device);
        var results = events.Where(e => e.GetProperty("type").GetString() == "command.result").Select(e => e.GetProperty("data").GetProperty("command_id").GetString()).ToList();
        Assert.Equal([first, second], results);
        Assert.Equal(Enumerable.Range(1, events.Count), events.Select(e => e.GetProperty("sequence").GetInt32()));
        Assert.DoesNotContain("offline", events.Select(e => e.Status()));
    }

    /// <summary>Sends a command through the portal API, answers it on the channel, and returns its id.</summary>
    private static async Task<string> CommandAsync(TestCluster cluster, Gateway.Tests.TestSocket channel, string device, string name)
    {
        using var response = await cluster.Gateway.PostJsonAsync($"/api/v1/devices/{device}/commands", new { name });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("command_id").GetString()!;
        Assert.Equal(id, (await channel.ExpectAsync("command")).GetProperty("command_id").GetString());
        await channel.SendAsync(new { type = "command_result", command_id = id, ok = true, output = name });
        await channel.SendAsync(new { type = "heartbeat", device_id = device }); // frames are applied in order
        await channel.ExpectAsync("ack");
        return id;
    }
}
