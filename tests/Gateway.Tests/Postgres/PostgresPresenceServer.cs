using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Presence.Gateway.Tests.Postgres;

/// <summary>
/// The real gateway (embedded silo) on PostgreSQL storage, configured with the keys an operator would pass
/// (<c>Presence:Storage:Provider=postgres</c>, <c>ConnectionStrings:Presence</c>), with driven time and its log
/// captured. "Restarting" disposes it (a graceful stop) and starts a new one on the same database whose clock
/// continues from where this one stopped.
/// </summary>
public sealed class PostgresPresenceServer : PresenceServer
{
    private readonly string _connectionString;
    private readonly Dictionary<string, string> _extra;

    public PostgresPresenceServer(string connectionString, DateTimeOffset? start = null, Dictionary<string, string>? settings = null)
        : base(Settings(connectionString, settings), start)
    {
        _connectionString = connectionString;
        _extra = settings ?? [];
    }

    /// <summary>Everything the gateway logged, as "Level message ExceptionType".</summary>
    public LogCapture Logs { get; } = new();

    /// <summary>The heartbeat timeout these tests configure (PresenceServer's default).</summary>
    public static TimeSpan Timeout => TimeSpan.FromSeconds(3);

    /// <summary>Stops this gateway gracefully, then starts a new one on the same database, <paramref name="downtime"/> later on the clock.</summary>
    public async Task<PostgresPresenceServer> RestartAsync(TimeSpan downtime)
    {
        var stoppedAt = Time.GetUtcNow();
        await DisposeAsync();
        var next = new PostgresPresenceServer(_connectionString, stoppedAt + downtime, _extra);
        await next.Silo.Recovery.WaitAsync(TimeSpan.FromSeconds(30));
        return next;
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.ConfigureTestServices(services => services.AddSingleton<ILoggerProvider>(Logs));
    }

    private static Dictionary<string, string> Settings(string connectionString, Dictionary<string, string>? settings)
    {
        var all = new Dictionary<string, string>
        {
            ["Presence:Storage:Provider"] = "postgres",
            ["ConnectionStrings:Presence"] = connectionString,
        };
        foreach (var (key, value) in settings ?? [])
        {
            all[key] = value;
        }

        return all;
    }
}

/// <summary>What the PostgreSQL tests ask of a gateway, over its public API only.</summary>
internal static class Api
{
    /// <summary>A heartbeat that must be accepted; returns the response body.</summary>
    public static async Task<JsonElement> BeatAsync(this PresenceServer server, string deviceId, object? extra = null)
    {
        using var response = await server.HeartbeatAsync(deviceId, extra);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"heartbeat {deviceId}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>The current end of the event log.</summary>
    public static async Task<string> CursorAsync(this PresenceServer server) =>
        (await server.GetJsonAsync("/api/v1/events")).GetProperty("next_cursor").GetString()!;

    /// <summary>Every event after <paramref name="cursor"/>, following <c>next_cursor</c> until a page is empty.</summary>
    public static async Task<List<JsonElement>> EventsAsync(this PresenceServer server, string cursor, string? deviceId = null)
    {
        var events = new List<JsonElement>();
        for (var pages = 0; ; pages++)
        {
            Assert.True(pages < 1000, "paging /api/v1/events does not end");
            var page = await server.GetJsonAsync($"/api/v1/events?since={cursor}&limit=1000" + (deviceId is null ? "" : $"&device_id={deviceId}"));
            var batch = page.GetProperty("events").EnumerateArray().ToList();
            cursor = page.GetProperty("next_cursor").GetString()!;
            if (batch.Count == 0)
            {
                return events;
            }

            events.AddRange(batch);
        }
    }

    /// <summary>The device as storage lists it (the list reads storage; <c>GET /devices/{id}</c> asks the grain).</summary>
    public static async Task<JsonElement?> ListedAsync(this PresenceServer server, string deviceId)
    {
        var page = await server.GetJsonAsync($"/api/v1/devices?prefix={deviceId}&limit=1000");
        return page.GetProperty("devices").EnumerateArray().Where(d => d.GetProperty("device_id").GetString() == deviceId).Cast<JsonElement?>().FirstOrDefault();
    }

    public static string Type(this JsonElement e) => e.GetProperty("type").GetString()!;

    public static string Device(this JsonElement e) => e.GetProperty("deviceid").GetString()!;

    public static string Id(this JsonElement e) => e.GetProperty("id").GetString()!;

    /// <summary>"registered", "online/heartbeat", "offline/timeout", "removed": an event in a few words.</summary>
    public static string Summary(this JsonElement e) => e.Type() switch
    {
        "device.registered" => "registered",
        "device.removed" => "removed",
        "device.status" => $"{e.GetProperty("data").GetProperty("status").GetString()}/{e.GetProperty("data").GetProperty("reason").GetString()}",
        var other => other,
    };

    public static DateTimeOffset Time(this JsonElement e, string property = "time") =>
        DateTimeOffset.Parse(e.GetProperty(property).GetString()!, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// Polls <paramref name="condition"/> until it holds, for at most <paramref name="limit"/> of real time. Only for
    /// waiting on another process (PostgreSQL restarting, a child gateway starting, a write in flight to the database).
    /// </summary>
    public static async Task EventuallyAsync(Func<Task<bool>> condition, TimeSpan limit, string what) =>
        Assert.True(await WithinAsync(condition, limit), $"{what}: not within {limit.TotalSeconds} s");

    /// <summary>Whether <paramref name="condition"/> came to hold within <paramref name="limit"/> (see <see cref="EventuallyAsync"/>).</summary>
    public static async Task<bool> WithinAsync(Func<Task<bool>> condition, TimeSpan limit)
    {
        var started = Stopwatch.GetTimestamp();
        while (!await condition())
        {
            if (Stopwatch.GetElapsedTime(started) >= limit)
            {
                return false;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(25));
        }

        return true;
    }
}
