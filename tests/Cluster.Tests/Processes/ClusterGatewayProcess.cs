using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using Presence.Testing;

namespace Presence.Cluster.Tests.Processes;

/// <summary>
/// A gateway in cluster client mode as a child process (<c>dotnet Presence.Gateway.dll --Presence:Cluster:Mode=client</c>)
/// on a free loopback port, started and awaited until it listens.
/// </summary>
internal sealed partial class ClusterGatewayProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private readonly PresenceProcess _process;

    private ClusterGatewayProcess(PresenceProcess process, Uri address)
    {
        _process = process;
        Address = address;
        Http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
    }

    public string Name => _process.Name;

    public Uri Address { get; }

    /// <summary>A client for the operator API (devices heartbeat through <see cref="DeviceFleet"/>'s own clients).</summary>
    public HttpClient Http { get; }

    public bool HasExited => _process.HasExited;

    public string Output => _process.Output;

    public static async Task<ClusterGatewayProcess> StartAsync(string name, string connectionString, IEnumerable<string> settings)
    {
        var address = new Uri($"http://127.0.0.1:{FreePort()}");
        var process = PresenceProcess.Start(
            name,
            PresenceProcess.BuildOutput("Gateway", "Presence.Gateway.dll"),
            ["--urls", address.ToString().TrimEnd('/'), "--Presence:Cluster:Mode=client", $"--ConnectionStrings:Presence={connectionString}", .. settings]);
        try
        {
            await process.WaitForLineAsync(Listening(), StartTimeout);
            return new ClusterGatewayProcess(process, address);
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
    }

    /// <summary><c>kill -9</c>: its WebSockets and in-flight requests break.</summary>
    public Task KillAsync() => _process.KillAsync();

    /// <summary><c>GET /api/v1/cluster</c>.</summary>
    public async Task<ClusterView> ClusterAsync(CancellationToken cancellationToken = default)
    {
        using var response = await Http.GetAsync("/api/v1/cluster", cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        Assert.True(response.IsSuccessStatusCode, $"GET /api/v1/cluster on {Name}: {(int)response.StatusCode} {text}");
        return ClusterView.Parse(JsonDocument.Parse(text).RootElement);
    }

    /// <summary>The end of the event log now (<c>GET /api/v1/events</c> without <c>since</c>): a cursor to read every later event from.</summary>
    public async Task<string> EventLogHeadAsync()
    {
        using var response = await Http.GetAsync("/api/v1/events?limit=1");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET /api/v1/events on {Name}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.GetProperty("next_cursor").GetString()!;
    }

    /// <summary>The ids of every event after <paramref name="since"/> from <c>GET /api/v1/events</c>, following <c>next_cursor</c> until a page is empty.</summary>
    public async Task<List<string>> EventIdsAsync(string since)
    {
        var ids = new List<string>();
        for (var pages = 0; pages < 1000; pages++)
        {
            using var response = await Http.GetAsync($"/api/v1/events?since={Uri.EscapeDataString(since)}&limit=500");
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, $"GET /api/v1/events on {Name}: {(int)response.StatusCode} {text}");
            var page = JsonDocument.Parse(text).RootElement;
            var events = page.GetProperty("events").EnumerateArray().Select(e => e.GetProperty("id").GetString()!).ToList();
            if (events.Count == 0)
            {
                return ids;
            }

            ids.AddRange(events);
            since = page.GetProperty("next_cursor").GetString()!;
        }

        Assert.Fail($"paging /api/v1/events on {Name} did not end");
        return ids;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _process.DisposeAsync();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [GeneratedRegex("Presence is listening on")]
    private static partial Regex Listening();
}

/// <summary>What <c>GET /api/v1/cluster</c> answered.</summary>
internal sealed record ClusterView(int PartitionsTotal, int PartitionsUnowned, IReadOnlyList<SiloView> Silos)
{
    public static ClusterView Parse(JsonElement json) => new(
        json.GetProperty("partitions_total").GetInt32(),
        json.GetProperty("partitions_unowned").GetInt32(),
        json.GetProperty("silos").EnumerateArray()
            .Select(s => new SiloView(s.GetProperty("silo_id").GetString()!, s.GetProperty("status").GetString()!, s.GetProperty("partitions").GetInt32()))
            .ToList());

    /// <summary>Partitions <paramref name="siloId"/> holds a current lease on (0 for a silo not listed).</summary>
    public int PartitionsOf(string siloId) => Silos.FirstOrDefault(s => s.SiloId == siloId)?.Partitions ?? 0;

    public override string ToString() =>
        $"{PartitionsTotal - PartitionsUnowned}/{PartitionsTotal} owned; " + string.Join(", ", Silos.Select(s => $"{s.SiloId} {s.Status} {s.Partitions}"));
}

internal sealed record SiloView(string SiloId, string Status, int Partitions);
