using System.Net;
using System.Text.Json;

namespace Presence.Gateway.Tests.Security;

/// <summary>The device-token flow end to end: provision, authenticate, heartbeat, rotate, expire.</summary>
public sealed class DeviceTokenFlowTests : IAsyncLifetime
{
    private SecureServer _server = null!;

    public Task InitializeAsync()
    {
        _server = new SecureServer();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task A_provisioned_device_heartbeats_with_its_token_and_rotation_revokes_it()
    {
        var (_, operatorKey) = await _server.CreateKeyAsync("acme", "operator");
        var secret = await _server.ProvisionAsync("agent-1", operatorKey);
        Assert.StartsWith("acme.", secret, StringComparison.Ordinal);
        var token = await _server.TokenAsync("agent-1", secret);

        using (var accepted = await _server.BeatWithTokenAsync("agent-1", token))
        {
            Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        }

        using (var device = await _server.SendAsync(HttpMethod.Get, "/api/v1/devices/agent-1", operatorKey))
        {
            var json = JsonDocument.Parse(await device.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("online", json.GetProperty("status").GetString());
            Assert.False(json.TryGetProperty("secret", out _));
        }

        using (var rotated = await _server.SendAsync(HttpMethod.Put, "/api/v1/devices/agent-1?rotate_secret=true", operatorKey))
        {
            Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
            var newSecret = JsonDocument.Parse(await rotated.Content.ReadAsStringAsync()).RootElement.GetProperty("secret").GetString()!;
            Assert.NotEqual(secret, newSecret);

            using var revoked = await _server.BeatWithTokenAsync("agent-1", token);
            Assert.Equal(HttpStatusCode.Unauthorized, revoked.StatusCode);

            using var oldSecret = await _server.SendAsync(HttpMethod.Post, "/api/v1/devices/auth", body: new { device_id = "agent-1", secret });
            Assert.Equal(HttpStatusCode.Unauthorized, oldSecret.StatusCode);

            using var fresh = await _server.BeatWithTokenAsync("agent-1", await _server.TokenAsync("agent-1", newSecret));
            Assert.Equal(HttpStatusCode.OK, fresh.StatusCode);
        }
    }

    [Fact]
    public async Task A_token_expires_after_its_lifetime()
    {
        var token = await _server.DeviceTokenAsync("agent-2", SecureServer.AdminKey);
        await _server.AdvanceAsync(TimeSpan.FromMinutes(9));
        using (var before = await _server.BeatWithTokenAsync("agent-2", token))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        await _server.AdvanceAsync(TimeSpan.FromMinutes(1));
        using var after = await _server.BeatWithTokenAsync("agent-2", token);
        Assert.Equal(HttpStatusCode.Unauthorized, after.StatusCode);
        Assert.Equal("Bearer", after.Headers.WwwAuthenticate.ToString());
    }

    [Fact]
    public async Task An_unprovisioned_device_cannot_register_itself_in_device_token_mode()
    {
        using var response = await _server.BeatWithTokenAsync("stranger", null);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        using var listed = await _server.SendAsync(HttpMethod.Get, "/api/v1/devices/stranger", SecureServer.AdminKey);
        Assert.Equal(HttpStatusCode.NotFound, listed.StatusCode);
    }
}
