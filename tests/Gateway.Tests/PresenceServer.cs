using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Presence.Runtime.Silo;
using Presence.Testing;

namespace Presence.Gateway.Tests;

/// <summary>
/// The real gateway (embedded silo, memory storage unless the settings say otherwise) on Kestrel at a free loopback port, with driven time.
/// Settings are configuration keys exactly as an operator would write them.
/// </summary>
public class PresenceServer : WebApplicationFactory<Program>
{
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(60);

    private readonly Dictionary<string, string> _settings;
    private int _disposed;

    public PresenceServer() : this(new Dictionary<string, string>())
    {
    }

    /// <param name="settings">Configuration keys over the defaults below.</param>
    /// <param name="start">Where the driven clock starts (a restarted gateway continues from the time it stopped).</param>
    protected PresenceServer(Dictionary<string, string> settings, DateTimeOffset? start = null)
        : this(settings, start is { } at ? new ManualTimeProvider(at) : new ManualTimeProvider())
    {
    }

    /// <param name="settings">Configuration keys over the defaults below.</param>
    /// <param name="time">The driven clock, shared with whatever else the test runs (a test cluster's silos).</param>
    protected PresenceServer(Dictionary<string, string> settings, ManualTimeProvider time)
    {
        Time = time;
        _settings = new Dictionary<string, string>
        {
            ["Presence:Heartbeat:TimeoutSeconds"] = "3",
            ["Presence:Heartbeat:DisconnectGraceSeconds"] = "2",
            ["Presence:Storage:FlushIntervalSeconds"] = "1",
        };
        foreach (var (key, value) in settings)
        {
            _settings[key] = value;
        }

        UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, ConfigureListener));
        StartServer();
        Http = CreateClient();
        Http.BaseAddress = BaseAddress;
    }

    public ManualTimeProvider Time { get; }

    public HttpClient Http { get; }

    public Uri BaseAddress => new(Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());

    public SiloRuntime Silo => Services.GetRequiredService<SiloRuntime>();

    /// <summary>Transport settings for a test (e.g. small socket buffers); none by default.</summary>
    protected virtual void ConfigureListener(ListenOptions listener)
    {
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        foreach (var (key, value) in _settings)
        {
            builder.UseSetting(key, value);
        }

        builder.ConfigureTestServices(services => services.AddSingleton<TimeProvider>(Time));
    }

    /// <summary>
    /// Stops the gateway the way its own <c>app.Run()</c> does, and only that way: the base class would call the host's
    /// <c>StopAsync</c> while <c>app.Run()</c>, woken by the same stop, calls it too and then disposes the host, so
    /// hosted services were stopped twice at once and sometimes after their disposal (ObjectDisposedException;
    /// dotnet/aspnetcore#40271). Returns once the host has stopped; <c>app.Run()</c> disposes it.
    /// </summary>
    public override async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        var lifetime = Services.GetRequiredService<IHostApplicationLifetime>();
        var stopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (lifetime.ApplicationStopped.Register(stopped.SetResult))
        {
            lifetime.StopApplication();
            await stopped.Task.WaitAsync(StopTimeout);
        }

        Http.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>Moves the clock, then waits until the silo has applied every timer that fell due.</summary>
    public async Task AdvanceAsync(TimeSpan by)
    {
        Time.Advance(by);
        await Silo.QuiesceAsync();
    }

    public Task<HttpResponseMessage> HeartbeatAsync(string deviceId, object? extra = null) =>
        PostJsonAsync("/api/v1/heartbeat", extra is null ? new { device_id = deviceId } : Merge(deviceId, extra));

    public Task<HttpResponseMessage> PostJsonAsync(string path, object body) =>
        Http.PostAsync(path, new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"));

    public Task<HttpResponseMessage> PostRawAsync(string path, string body, string contentType = "application/json") =>
        Http.PostAsync(path, new StringContent(body, Encoding.UTF8, contentType));

    public async Task<JsonElement> GetJsonAsync(string path)
    {
        using var response = await Http.GetAsync(path);
        Assert.True(response.IsSuccessStatusCode, $"GET {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    /// <summary>Opens a WebSocket; with <paramref name="receiveBuffer"/> the client's TCP receive buffer is that small.</summary>
    public async Task<TestSocket> ConnectAsync(string pathAndQuery, int? receiveBuffer = null)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        var uri = new Uri(new UriBuilder(BaseAddress) { Scheme = "ws" }.Uri, pathAndQuery);
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancellationToken) =>
            {
                var tcp = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
                if (receiveBuffer is { } size)
                {
                    tcp.ReceiveBufferSize = size;
                }

                await tcp.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new System.Net.Sockets.NetworkStream(tcp, ownsSocket: true);
            },
        };
        await socket.ConnectAsync(uri, new HttpMessageInvoker(handler), TestSocket.Timeout());
        return new TestSocket(socket);
    }

    private static Dictionary<string, object?> Merge(string deviceId, object extra)
    {
        var merged = JsonSerializer.Deserialize<Dictionary<string, object?>>(JsonSerializer.Serialize(extra))!;
        merged["device_id"] = deviceId;
        return merged;
    }
}

/// <summary>A real WebSocket client that reads whole JSON messages; every receive is bounded so a broken server fails the test.</summary>
public sealed class TestSocket(ClientWebSocket socket) : IAsyncDisposable
{
    public ClientWebSocket Socket { get; } = socket;

    public static CancellationToken Timeout() => new CancellationTokenSource(TimeSpan.FromSeconds(20)).Token;

    public async Task SendAsync(object message) => await SendTextAsync(JsonSerializer.Serialize(message));

    public async Task SendTextAsync(string text) =>
        await Socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, Timeout());

    /// <summary>The next message, or null when the server closed the socket (see <see cref="CloseStatus"/>).</summary>
    public async Task<JsonElement?> ReceiveAsync()
    {
        var buffer = new byte[64 * 1024];
        using var message = new MemoryStream();
        while (true)
        {
            var result = await Socket.ReceiveAsync(buffer, Timeout());
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return null;
            }

            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage)
            {
                return JsonDocument.Parse(message.ToArray()).RootElement.Clone();
            }
        }
    }

    /// <summary>The next message, which must be of <paramref name="type"/>.</summary>
    public async Task<JsonElement> ExpectAsync(string type)
    {
        var message = await ReceiveAsync();
        Assert.True(message.HasValue, $"expected '{type}' but the socket closed ({CloseStatus})");
        Assert.Equal(type, message.Value.GetProperty("type").GetString());
        return message.Value;
    }

    public WebSocketCloseStatus? CloseStatus => Socket.CloseStatus;

    public async ValueTask DisposeAsync()
    {
        if (Socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
        {
            await Socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "done", Timeout());
        }

        Socket.Dispose();
    }
}
