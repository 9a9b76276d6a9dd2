using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Presence.Testing;

namespace Presence.Gateway.Tests.Postgres;

/// <summary>
/// The real gateway (embedded silo, PostgreSQL storage) as a child process (a <see cref="PresenceProcess"/>) at a free
/// loopback port. Disposing kills it if it still runs.
/// </summary>
public sealed class GatewayProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private readonly PresenceProcess _process;

    private GatewayProcess(PresenceProcess process, Uri address)
    {
        _process = process;
        Address = address;
        Http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
    }

    public Uri Address { get; }

    public HttpClient Http { get; }

    /// <summary>The process id (kept: it stays readable after the process is disposed).</summary>
    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>What the process wrote to stdout and stderr so far.</summary>
    public string Output => _process.Output;

    /// <summary>Starts a gateway on PostgreSQL at a free loopback port and returns once <c>/readyz</c> answers 200.</summary>
    public static async Task<GatewayProcess> StartAsync(string connectionString)
    {
        var address = new Uri($"http://127.0.0.1:{FreePort()}");
        var process = PresenceProcess.Start("gateway", PresenceProcess.BuildOutput("Gateway", "Presence.Gateway.dll"),
        [
            "--urls", address.ToString().TrimEnd('/'),
            "--Presence:Storage:Provider=postgres", $"--ConnectionStrings:Presence={connectionString}",
        ]);
        var gateway = new GatewayProcess(process, address);
        try
        {
            // The gateway says when it listens (after its storage and silo have started): await that line.
            await process.WaitForLineAsync(new Regex("Presence is listening on"), StartTimeout);
            Assert.True(await gateway.IsReadyAsync(), $"the gateway listens but is not ready:\n{gateway.Output}");
            return gateway;
        }
        catch
        {
            await gateway.DisposeAsync();
            throw;
        }
    }

    /// <summary><c>kill -9</c>: no shutdown, no flush.</summary>
    public Task KillAsync() => _process.KillAsync();

    /// <summary>SIGTERM (what an operator's stop does); returns the exit code.</summary>
    public Task<int> TerminateAsync() => _process.TerminateAsync(TimeSpan.FromSeconds(30));

    public async Task<JsonElement> GetJsonAsync(string path)
    {
        using var response = await Http.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET {path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    public Task<HttpStatusCode> HeartbeatAsync(string deviceId) => HeartbeatAsync(deviceId, null);

    /// <param name="metrics">The heartbeat's <c>metrics</c>, if any.</param>
    public async Task<HttpStatusCode> HeartbeatAsync(string deviceId, Dictionary<string, double>? metrics)
    {
        var body = metrics is null ? JsonSerializer.Serialize(new { device_id = deviceId }) : JsonSerializer.Serialize(new { device_id = deviceId, metrics });
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await Http.PostAsync("/api/v1/heartbeat", content);
        return response.StatusCode;
    }

    /// <summary>Every event after <paramref name="cursor"/>, following <c>next_cursor</c> until a page is empty.</summary>
    public async Task<List<JsonElement>> EventsAsync(string cursor)
    {
        var events = new List<JsonElement>();
        for (var pages = 0; ; pages++)
        {
            Assert.True(pages < 1000, "paging /api/v1/events does not end");
            var page = await GetJsonAsync($"/api/v1/events?since={cursor}&limit=1000");
            var batch = page.GetProperty("events").EnumerateArray().ToList();
            cursor = page.GetProperty("next_cursor").GetString()!;
            if (batch.Count == 0)
            {
                return events;
            }

            events.AddRange(batch);
        }
    }

    public async Task<TestSocket> ConnectAsync(string pathAndQuery)
    {
        var socket = new ClientWebSocket();
        await socket.ConnectAsync(new Uri(new UriBuilder(Address) { Scheme = "ws" }.Uri, pathAndQuery), TestSocket.Timeout());
        return new TestSocket(socket);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _process.DisposeAsync();
    }

    private async Task<bool> IsReadyAsync()
    {
        try
        {
            using var response = await Http.GetAsync("/readyz");
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
