using System.Text.Json;
using Presence.Gateway.Tests.Security;

namespace Presence.Agent.Tests.Support;

/// <summary>
/// The real gateway for agent tests, in the auth mode given (<c>none</c>, <c>shared-secret</c> or <c>device-token</c>),
/// telling devices to heartbeat every 10 s, with a timeout long enough that driving the clock through backoff keeps
/// the device's state readable. The bootstrap admin key reads and provisions in every mode.
/// </summary>
public sealed class AgentGateway(string mode, Dictionary<string, string>? settings = null) : SecureServer(Settings(mode, settings))
{
    public const int IntervalSeconds = 10;

    private static Dictionary<string, string> Settings(string mode, Dictionary<string, string>? extra)
    {
        var all = new Dictionary<string, string>
        {
            ["Presence:Auth:Mode"] = mode,
            ["Presence:Heartbeat:IntervalSeconds"] = IntervalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Presence:Heartbeat:TimeoutSeconds"] = "600",
        };
        foreach (var (key, value) in extra ?? [])
        {
            all[key] = value;
        }

        return all;
    }

    /// <summary><c>GET /api/v1/devices/{id}</c> with the admin key.</summary>
    public async Task<JsonElement> DeviceAsync(string deviceId)
    {
        using var response = await SendAsync(HttpMethod.Get, $"/api/v1/devices/{deviceId}", AdminKey);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET device {deviceId}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    public async Task<long> VersionAsync(string deviceId) => (await DeviceAsync(deviceId)).GetProperty("version").GetInt64();
}
