using System.Text.Json.Nodes;

namespace Presence.Runner.Scenarios;

/// <summary>The few read calls the scenarios make to the gateway (stats, the cluster view, the event log's current end).</summary>
internal sealed class ServerApi(Uri server) : IDisposable
{
    private readonly HttpClient _http = new() { BaseAddress = server, Timeout = TimeSpan.FromSeconds(30) };

    public async Task<JsonObject> StatsAsync(CancellationToken cancellationToken) =>
        (JsonObject)JsonNode.Parse(await _http.GetStringAsync(new Uri("/api/v1/stats", UriKind.Relative), cancellationToken))!;

    /// <summary><c>GET /api/v1/cluster</c>: partitions, unowned partitions, and each silo's status and partitions.</summary>
    public async Task<JsonObject> ClusterAsync(CancellationToken cancellationToken) =>
        (JsonObject)JsonNode.Parse(await _http.GetStringAsync(new Uri("/api/v1/cluster", UriKind.Relative), cancellationToken))!;

    /// <summary>The cursor at the current end of the event log: a reader resuming from it sees only later events.</summary>
    public async Task<string> EventLogEndAsync(CancellationToken cancellationToken)
    {
        var page = JsonNode.Parse(await _http.GetStringAsync(new Uri("/api/v1/events?limit=1", UriKind.Relative), cancellationToken))!;
        return (string)page["next_cursor"]!;
    }

    public void Dispose() => _http.Dispose();
}
