using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text.Json;
using Presence.Cluster.Tests.Support;
using Presence.Testing;

namespace Presence.Cluster.Tests;

/// <summary>Two gateways behind one load balancer: what one is asked about a device channel or key held by the other.</summary>
[Collection(ClusterCollection.Name)]
public sealed class GatewayRelayTests(PostgresFixture postgres)
{
    [Fact]
    public async Task A_command_sent_through_one_gateway_reaches_the_channel_held_by_the_other()
    {
        await using var cluster = await TestCluster.StartAsync(postgres.Server, silos: 2);
        await using var other = await cluster.StartGatewayAsync();
        await using var channel = await cluster.Gateway.ConnectAsync("/ws/device");
        await channel.SendAsync(new { type = "heartbeat", device_id = "relayed" });
        await channel.ExpectAsync("ack");

        using var response = await other.PostJsonAsync("/api/v1/devices/relayed/commands", new { name = "collect", args = new { depth = 2 } });

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("command_id").GetString();
        var command = await channel.ExpectAsync("command");
        Assert.Equal(id, command.GetProperty("command_id").GetString());
        Assert.Equal(2, command.GetProperty("args").GetProperty("depth").GetInt32());
    }

    [Fact]
    public async Task A_command_for_a_device_with_no_channel_on_any_gateway_is_409()
    {
        await using var cluster = await TestCluster.StartAsync(postgres.Server, silos: 1);
        await using var other = await cluster.StartGatewayAsync();
        using (await cluster.Gateway.HeartbeatAsync("http-only"))
        {
        }

        using var response = await other.PostJsonAsync("/api/v1/devices/http-only/commands", new { name = "ping" });

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
    }

    [Fact]
    public async Task Removing_a_device_through_one_gateway_closes_its_channel_on_the_other()
    {
        await using var cluster = await TestCluster.StartAsync(postgres.Server, silos: 2);
        await using var other = await cluster.StartGatewayAsync();
        await using var channel = await cluster.Gateway.ConnectAsync("/ws/device");
        await channel.SendAsync(new { type = "heartbeat", device_id = "removed-elsewhere" });
        await channel.ExpectAsync("ack");

        using var deleted = await other.Http.DeleteAsync("/api/v1/devices/removed-elsewhere");

        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        Assert.Null(await channel.ReceiveAsync());
        Assert.Equal(WebSocketCloseStatus.NormalClosure, channel.CloseStatus);
    }

    [Fact]
    public async Task Revoking_an_api_key_through_one_gateway_closes_its_event_stream_on_the_other()
    {
        const string Admin = "admin-key-for-relay-tests";
        await using var cluster = await TestCluster.StartAsync(postgres.Server, silos: 1, new Dictionary<string, string>
        {
            ["Presence:Auth:Mode"] = "shared-secret",
            ["Presence:Auth:SharedSecret"] = "shared-secret-for-relay-tests",
            ["Presence:Auth:AdminApiKey"] = Admin,
        });
        await using var other = await cluster.StartGatewayAsync();
        using var create = new HttpRequestMessage(HttpMethod.Post, "/api/v1/tenants/default/api-keys")
        {
            Content = JsonContent.Create(new { role = "viewer", name = "portal" }),
        };
        create.Headers.Add("X-Api-Key", Admin);
        using var created = await other.Http.SendAsync(create);
        var key = await created.Content.ReadFromJsonAsync<JsonElement>();
        await using var stream = await cluster.Gateway.ConnectAsync($"/ws/events?access_token={key.GetProperty("api_key").GetString()}");
        await stream.ExpectAsync("hello");
        await stream.ExpectAsync("snapshot");

        using var revoke = new HttpRequestMessage(HttpMethod.Delete, $"/api/v1/api-keys/{key.GetProperty("key_id").GetString()}");
        revoke.Headers.Add("X-Api-Key", Admin);
        using var revoked = await other.Http.SendAsync(revoke);

        Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        Assert.Null(await stream.ReceiveAsync());
        Assert.Equal((WebSocketCloseStatus)4001, stream.CloseStatus);
    }
}
