using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;

namespace Presence.Cluster.Tests.Support;

/// <summary>Reads the durable event log through the gateway's API, waiting (on the log's doorbell, not a clock) for events the silos committed.</summary>
public static class ClusterEvents
{
    /// <summary>The end of the log as this gateway knows it (it may not have heard of the very latest commits yet).</summary>
    public static async Task<string> CursorAsync(this ClusterGateway gateway) =>
        (await gateway.GetJsonAsync("/api/v1/events?limit=1")).GetProperty("next_cursor").GetString()!;

    /// <summary>Events after <paramref name="since"/> (optionally of one device) until at least <paramref name="atLeast"/> arrived.</summary>
    public static async Task<List<JsonElement>> EventsAsync(this ClusterGateway gateway, string since, int atLeast, string? deviceId = null)
    {
        var log = gateway.Services.GetRequiredService<IPresenceStore>().Events;
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (true)
        {
            var query = $"/api/v1/events?since={since}&limit=1000" + (deviceId is null ? "" : $"&device_id={deviceId}");
            var page = await gateway.GetJsonAsync(query);
            var events = page.GetProperty("events").EnumerateArray().ToList();
            if (events.Count >= atLeast)
            {
                return events;
            }

            // The gateway hears of other processes' commits by NOTIFY: wait for the log to move past what it holds now.
            await log.WaitAsync(log.Head, deadline.Token);
        }
    }

    public static string? Status(this JsonElement e) =>
        e.GetProperty("type").GetString() == "device.status" ? e.GetProperty("data").GetProperty("status").GetString() : null;

    public static DeviceKey Key(string deviceId) => new(DeviceKey.DefaultTenant, deviceId);
}
