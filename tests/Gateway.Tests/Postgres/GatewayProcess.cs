using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Reflection;
using System.Text;
using System.Text.Json;

namespace Presence.Gateway.Tests.Postgres;

/// <summary>
/// The real gateway as a child process (<c>dotnet Presence.Gateway.dll</c> from <c>src/Gateway/bin</c>, built in the
/// configuration these tests were built in) with its output captured. Disposing kills it if it still runs.
/// </summary>
public sealed class GatewayProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private GatewayProcess(Process process, Uri address)
    {
        _process = process;
        Address = address;
        Http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
    }

    public Uri Address { get; }

    public HttpClient Http { get; }

    /// <summary>The process id (kept: it stays readable after the process is disposed).</summary>
    public int Id { get; private set; }

    public bool HasExited => _process.HasExited;

    /// <summary>What the process wrote to stdout and stderr so far.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>The gateway's build output: <c>src/Gateway/bin/{Configuration}/net10.0/Presence.Gateway.dll</c>.</summary>
    public static string GatewayDll
    {
        get
        {
            var configuration = typeof(GatewayProcess).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
            var directory = new DirectoryInfo(AppContext.BaseDirectory);
            while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Presence.sln")))
            {
                directory = directory.Parent;
            }

            Assert.True(directory is not null, $"no Presence.sln above {AppContext.BaseDirectory}");
            var dll = Path.Combine(directory!.FullName, "src", "Gateway", "bin", configuration, "net10.0", "Presence.Gateway.dll");
            Assert.True(File.Exists(dll), $"{dll} does not exist: build src/Gateway in {configuration}");
            return dll;
        }
    }

    /// <summary>Starts a gateway on PostgreSQL at a free loopback port and returns once <c>/readyz</c> answers 200.</summary>
    public static async Task<GatewayProcess> StartAsync(string connectionString)
    {
        var dll = GatewayDll;
        var port = FreePort();
        var address = new Uri($"http://127.0.0.1:{port}");
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet")
        {
            WorkingDirectory = Path.GetDirectoryName(dll)!,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[]
        {
            dll, "--urls", address.ToString().TrimEnd('/'),
            "--Presence:Storage:Provider=postgres", $"--ConnectionStrings:Presence={connectionString}",
        })
        {
            info.ArgumentList.Add(argument);
        }

        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment.Remove("ASPNETCORE_URLS");
        var process = new Process { StartInfo = info };
        var gateway = new GatewayProcess(process, address);
        process.OutputDataReceived += (_, e) => gateway.Append(e.Data);
        process.ErrorDataReceived += (_, e) => gateway.Append(e.Data);
        process.Start();
        gateway.Id = process.Id;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            // The gateway says when it listens (after its storage and silo have started): await that line.
            var phase = await Task.WhenAny(gateway._listening.Task, process.WaitForExitAsync()).WaitAsync(StartTimeout);
            Assert.True(phase == gateway._listening.Task, $"the gateway exited with {(process.HasExited ? process.ExitCode : 0)} while starting:\n{gateway.Output}");
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
    public async Task KillAsync()
    {
        _process.Kill();
        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>SIGTERM (what an operator's stop does); returns the exit code.</summary>
    public async Task<int> TerminateAsync()
    {
        using (var kill = Process.Start("kill", ["-TERM", Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
            Assert.Equal(0, kill.ExitCode);
        }

        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        return _process.ExitCode;
    }

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
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            }
        }
        finally
        {
            _process.Dispose();
        }
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

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }

        if (line.Contains("Presence is listening on", StringComparison.Ordinal))
        {
            _listening.TrySetResult();
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
