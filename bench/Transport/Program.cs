using System.Diagnostics;
using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Presence.Bench.Transport;
using Presence.Grains.Abstractions;
using Presence.Runtime.Remoting;

// One heartbeat-sized call, 64 concurrent callers, on loopback in this process: calls/s and process CPU per call.
const int Callers = 64;
var duration = TimeSpan.FromSeconds(args.Length > 0 ? double.Parse(args[0], CultureInfo.InvariantCulture) : 5);
var warmup = TimeSpan.FromSeconds(1);

var key = new DeviceKey("default", "bench-device-0001");
var input = new HeartbeatInput(
    key.DeviceId, "bench device", "linux", "1.4.2",
    new MetricSet(["cpu_pct", "mem_pct", "disk_pct", "load_1m", "uptime_s"], [12.5, 40.25, 71.0, 0.42, 123456]));
var body = """{"device_id":"bench-device-0001","device_name":"bench device","platform":"linux","app_version":"1.4.2","metrics":{"cpu_pct":12.5,"mem_pct":40.25,"disk_pct":71.0,"load_1m":0.42,"uptime_s":123456}}"""u8.ToArray();
var reply = """{"status":"ok","device_status":"online","session_id":"00000000000000aa"}"""u8.ToArray();

var results = new List<(string Name, Measurement Result)>();

await using (var server = new SiloServer(new TrivialSilo(key), "bench-silo", "bench-secret", NullLogger<SiloServer>.Instance))
{
    var bound = server.Start(new IPEndPoint(IPAddress.Loopback, 0));
    await using var connection = await SiloConnection.ConnectAsync($"127.0.0.1:{bound.Port}", "bench-secret", TimeSpan.FromSeconds(5), CancellationToken.None);
    results.Add(("own protocol (SiloConnection -> SiloServer)", await Measure.RunAsync(Callers, warmup, duration, async () =>
    {
        var result = await connection.HeartbeatAsync(key, input);
        return result.Outcome == HeartbeatOutcome.Accepted;
    })));
}

var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http2));
await using (var app = builder.Build())
{
    app.MapPost("/heartbeat", async (HttpContext context) =>
    {
        var request = await context.Request.BodyReader.ReadAsync();
        while (!request.IsCompleted)
        {
            context.Request.BodyReader.AdvanceTo(request.Buffer.Start, request.Buffer.End);
            request = await context.Request.BodyReader.ReadAsync();
        }

        context.Request.BodyReader.AdvanceTo(request.Buffer.End);
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = reply.Length;
        await context.Response.Body.WriteAsync(reply);
    });
    await app.StartAsync();
    var address = new Uri(app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    using var client = new HttpClient(new SocketsHttpHandler { EnableMultipleHttp2Connections = false });
    var target = new Uri(address, "/heartbeat");
    results.Add(("HTTP/2 cleartext (HttpClient -> Kestrel)", await Measure.RunAsync(Callers, warmup, duration, async () =>
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, target)
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(body),
        };
        using var response = await client.SendAsync(message);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        return response.IsSuccessStatusCode && bytes.Length == reply.Length;
    })));
    await app.StopAsync();
}

Console.WriteLine($"{Callers} concurrent callers, {duration.TotalSeconds:0} s each, {Environment.ProcessorCount} cores, .NET {Environment.Version}");
Console.WriteLine();
Console.WriteLine("| Transport | Calls/s | CPU per call (client + server) | Allocated per call |");
Console.WriteLine("| --- | ---: | ---: | ---: |");
foreach (var (name, result) in results)
{
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"| {name} | {result.CallsPerSecond:N0} | {result.CpuMicrosecondsPerCall:0.0} us | {result.BytesPerCall:N0} B |"));
}

Console.WriteLine();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"own / HTTP/2: {results[0].Result.CallsPerSecond / results[1].Result.CallsPerSecond:0.00}x calls/s, {results[1].Result.CpuMicrosecondsPerCall / results[0].Result.CpuMicrosecondsPerCall:0.00}x less CPU per call"));
