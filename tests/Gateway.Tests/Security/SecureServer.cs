using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Presence.Gateway.Tests.Security;

/// <summary>
/// The real gateway with credentials on: <c>device-token</c> mode by default (or the mode given), a bootstrap admin
/// key, a low failure limit, and helpers that go through the public API only (provision, authenticate, create keys).
/// </summary>
public class SecureServer : PresenceServer
{
    public const string AdminKey = "bootstrap-admin-key-0123456789";
    public const string SigningKey = "test-signing-key-0123456789abcdef-0123456789";
    public const string ConnectSecret = "fleet-connect-secret-0123456789";

    public SecureServer() : this(new Dictionary<string, string>())
    {
    }

    protected SecureServer(Dictionary<string, string> settings) : base(Defaults(settings))
    {
    }

    private static Dictionary<string, string> Defaults(Dictionary<string, string> settings)
    {
        var all = new Dictionary<string, string>
        {
            ["Presence:Auth:Mode"] = "device-token",
            ["Presence:Auth:TokenSigningKey"] = SigningKey,
            ["Presence:Auth:SharedSecret"] = ConnectSecret,
            ["Presence:Auth:AdminApiKey"] = AdminKey,
            ["Presence:Auth:TokenLifetimeMinutes"] = "10",
            ["Presence:Auth:SecretHashIterations"] = "10000",
        };
        foreach (var (key, value) in settings)
        {
            all[key] = value;
        }

        return all;
    }

    /// <summary>Sends a request with an optional bearer credential and extra headers; the body is JSON when given.</summary>
    public Task<HttpResponseMessage> SendAsync(
        HttpMethod method, string path, string? bearer = null, object? body = null, IEnumerable<(string Name, string Value)>? headers = null)
    {
        var request = new HttpRequestMessage(method, path);
        if (bearer is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        foreach (var (name, value) in headers ?? [])
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        if (body is not null)
        {
            request.Content = new StringContent(body as string ?? JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
        }

        return Http.SendAsync(request);
    }

    /// <summary>Creates an API key for <paramref name="tenant"/> with <paramref name="role"/>, using <paramref name="adminKey"/> (bootstrap by default).</summary>
    public async Task<(string KeyId, string ApiKey)> CreateKeyAsync(string tenant, string role, string? adminKey = null)
    {
        using var response = await SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenant}/api-keys", adminKey ?? AdminKey, new { role, name = $"{role} of {tenant}" });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"create key: {(int)response.StatusCode} {body}");
        var json = JsonDocument.Parse(body).RootElement;
        return (json.GetProperty("key_id").GetString()!, json.GetProperty("api_key").GetString()!);
    }

    /// <summary>Provisions a device with an operator (or admin) key and returns its secret (shown once).</summary>
    public async Task<string> ProvisionAsync(string deviceId, string apiKey, object? body = null)
    {
        using var response = await SendAsync(HttpMethod.Put, $"/api/v1/devices/{deviceId}", apiKey, body ?? new { });
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"provision {deviceId}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.GetProperty("secret").GetString()!;
    }

    /// <summary>Trades a device's secret for a token.</summary>
    public async Task<string> TokenAsync(string deviceId, string secret)
    {
        using var response = await Http.PostAsJsonAsync("/api/v1/devices/auth", new { device_id = deviceId, secret });
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"auth {deviceId}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.GetProperty("token").GetString()!;
    }

    /// <summary>Provisions a device and returns a token for it.</summary>
    public async Task<string> DeviceTokenAsync(string deviceId, string apiKey) => await TokenAsync(deviceId, await ProvisionAsync(deviceId, apiKey));

    /// <summary>A heartbeat with a device token.</summary>
    public Task<HttpResponseMessage> BeatWithTokenAsync(string deviceId, string? token) =>
        SendAsync(HttpMethod.Post, "/api/v1/heartbeat", token, new { device_id = deviceId });
}
