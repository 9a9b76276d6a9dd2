using System.Net;
using System.Net.WebSockets;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Presence.Gateway.Tests.Security;

/// <summary>
/// With every Presence category at Trace (and ASP.NET Core at its shipped level), a session that provisions, rotates,
/// authenticates, fails, heartbeats over HTTP and WebSocket, and revokes, logs no secret, token, API key, configured
/// key or full device id.
/// </summary>
public sealed class LogHygieneTests : IAsyncLifetime
{
    private const string DeviceId = "rack-17-agent-with-a-long-id";
    private LoggingServer _server = null!;

    public Task InitializeAsync()
    {
        _server = new LoggingServer();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Nothing_secret_and_no_full_device_id_reaches_the_logs()
    {
        var (keyId, operatorKey) = await _server.CreateKeyAsync("acme", "operator");
        var secret = await _server.ProvisionAsync(DeviceId, operatorKey);
        var token = await _server.TokenAsync(DeviceId, secret);
        using (var beat = await _server.BeatWithTokenAsync(DeviceId, token))
        {
            Assert.Equal(HttpStatusCode.OK, beat.StatusCode);
        }

        using (var wrong = await _server.SendAsync(HttpMethod.Post, "/api/v1/devices/auth", body: new { device_id = DeviceId, secret = secret + "x" }))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        }

        await using (var socket = await _server.ConnectAsync($"/ws/device?access_token={Uri.EscapeDataString(token)}"))
        {
            await socket.SendAsync(new { type = "heartbeat", device_id = DeviceId });
            await socket.ExpectAsync("ack");
            using var rotated = await _server.SendAsync(HttpMethod.Put, $"/api/v1/devices/{DeviceId}?rotate_secret=true", operatorKey);
            var newSecret = JsonDocument.Parse(await rotated.Content.ReadAsStringAsync()).RootElement.GetProperty("secret").GetString()!;
            Assert.Null(await socket.ReceiveAsync());
            Assert.Equal((WebSocketCloseStatus)4001, socket.CloseStatus);

            using var stale = await _server.BeatWithTokenAsync(DeviceId, token);
            Assert.Equal(HttpStatusCode.Unauthorized, stale.StatusCode);
            AssertClean(secret, token, newSecret, operatorKey);
        }

        using (var revoked = await _server.SendAsync(HttpMethod.Delete, $"/api/v1/api-keys/{keyId}", SecureServer.AdminKey))
        {
            Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        }

        using (var refused = await _server.SendAsync(HttpMethod.Get, $"/api/v1/devices/{DeviceId}", operatorKey))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }

        // The device goes offline by timeout: the silo's debug log line names it by prefix only.
        await _server.AdvanceAsync(TimeSpan.FromSeconds(200));
        Assert.Contains(_server.Logs.Lines, line => line.Contains("rack-17-", StringComparison.Ordinal) && line.Contains("offline", StringComparison.Ordinal));
        AssertClean(secret, token, operatorKey);
    }

    private void AssertClean(params string[] secrets)
    {
        var forbidden = secrets.Concat([DeviceId, SecureServer.AdminKey, SecureServer.SigningKey, SecureServer.ConnectSecret]);
        var lines = _server.Logs.Lines.ToList();
        Assert.NotEmpty(lines);
        foreach (var value in forbidden)
        {
            Assert.DoesNotContain(lines, line => line.Contains(value, StringComparison.Ordinal));
        }
    }

    private sealed class LoggingServer() : SecureServer(new Dictionary<string, string>
    {
        ["Logging:LogLevel:Default"] = "Trace",
        ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
    })
    {
        public LogCapture Logs { get; } = new();

        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            base.ConfigureWebHost(builder);
            builder.ConfigureTestServices(services => services.AddSingleton<ILoggerProvider>(Logs));
        }
    }
}
