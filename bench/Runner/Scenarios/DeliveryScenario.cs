using System.Globalization;
using System.Text.Json.Nodes;
using Presence.Agent.Simulation;
using Presence.LoadGen;
using Presence.Runner.Events;
using Presence.Runner.Hosting;

namespace Presence.Runner.Scenarios;

/// <summary>
/// Event delivery latency: new devices register at a steady rate (each first heartbeat emits <c>device.registered</c>
/// and <c>device.status online</c>) while a background load of ordinary heartbeats runs; a <c>/ws/events</c> reader
/// in the same process matches each <c>online</c> event to its heartbeat by <c>deviceid</c>. Latency is from the
/// heartbeat's send to the event's receipt, one clock. Budget: p99 &lt;= 100 ms.
/// </summary>
internal static class DeliveryScenario
{
    public const double GoalP99Ms = 100;

    public static async Task<JsonObject> RunAsync(ScenarioContext context)
    {
        var rate = context.Number("rate", 200, 200);
        var duration = context.Number("duration", 10, 30);
        var background = context.Number("background-rate", 500, 1000);
        string[] serverArgs = ["--Presence:RateLimit:HeartbeatsPerMinute=1000000"];
        var result = context.NewResult("delivery", new JsonObject
        {
            ["new_devices_per_s"] = rate,
            ["duration_s"] = duration,
            ["background_heartbeats_per_s"] = background,
            ["gateway_args"] = string.Join(' ', serverArgs),
        });

        await using var server = await ServerProcess.StartAsync("gateway", context.Paths.Gateway, serverArgs, context.LogDir, context.CancellationToken);
        Console.WriteLine($"  delivery: {rate} new devices/s for {duration} s, background {background} heartbeats/s");
        await MeasureAsync(context, server.Url, server.Url, rate, duration, background, GoalP99Ms, result);
        return result;
    }

    /// <summary>
    /// One measurement: the <c>/ws/events</c> reader on <paramref name="readFrom"/>, new devices and the background load
    /// sent to <paramref name="sendTo"/> (the same gateway, or another one of a cluster). Adds the figures and the
    /// verdict against <paramref name="goalP99Ms"/> to <paramref name="result"/>.
    /// </summary>
    public static async Task MeasureAsync(
        ScenarioContext context, Uri readFrom, Uri sendTo, double rate, double duration, double background, double goalP99Ms, JsonObject result)
    {
        var ct = context.CancellationToken;
        var devices = (int)(rate * duration);
        var online = new DeviceEventTimes("dlv-", devices, "online");
        var reader = new EventStreamClient(readFrom, online.Handle);
        using var stopReading = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var reading = reader.RunAsync(null, stopReading.Token);
        await reader.Connected.WaitAsync(TimeSpan.FromSeconds(10), ct);

        Task<LoadReport>? backgroundLoad = null;
        if (background > 0)
        {
            backgroundLoad = LoadGenProcess.RunAsync(context.Paths,
            [
                "--url", sendTo.ToString(), "--connections", "16", "--rate", Text(background),
                "--duration", Text(duration + 4), "--devices", "1000", "--id-prefix", "bg-",
            ], TimeSpan.FromSeconds(duration + 60), ct);
            await Task.Delay(2000, ct);
        }

        var sender = new LoadEngine(new LoadOptions
        {
            Url = LoadOptions.EndpointUrl(sendTo.ToString()),
            Connections = 8,
            Requests = devices,
            Devices = devices,
            Ids = IdMode.Sequential,
            IdPrefix = "dlv-",
            Rate = rate,
            KeepSamples = true,
            MaxSeconds = duration + 60,
        });
        var sent = await sender.RunAsync(ct);
        for (var i = 0; i < 100 && online.Count < sent.Ok; i++)
        {
            await Task.Delay(50, ct);
        }

        var backgroundReport = backgroundLoad is null ? null : await backgroundLoad;
        await stopReading.CancelAsync();
        await reading;

        var latency = new LatencyHistogram();

        // From the heartbeat's answer instead of its send: the event path alone, without the registration's own time.
        var afterResponse = new LatencyHistogram();
        long missing = 0;
        foreach (var sample in sender.Samples())
        {
            if (sample.Status != 200)
            {
                continue;
            }

            var receivedAt = online.ReceivedAt(sample.Device);
            if (receivedAt == 0)
            {
                missing++;
                continue;
            }

            latency.RecordTicks(receivedAt - sample.StartTimestamp);
            afterResponse.RecordTicks(Math.Max(receivedAt - sample.EndTimestamp, 0));
        }

        var delivery = Figures.Latency(latency);
        var p99 = latency.PercentileMs(99);
        result["delivery"] = delivery;
        result["delivery_after_response"] = Figures.Latency(afterResponse);
        result["events_missing"] = missing;
        result["heartbeats"] = Figures.Load(sent);
        result["background"] = backgroundReport is null ? null : Figures.Load(backgroundReport);
        result["reader"] = new JsonObject
        {
            ["messages"] = reader.Messages,
            ["resumes_after_4008"] = reader.Resumes,
            ["last_close"] = reader.LastClose,
        };
        result["goal_p99_ms"] = goalP99Ms;
        result["pass"] = missing == 0 && latency.Count > 0 && p99 <= goalP99Ms;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  delivery: {latency.Count} events matched, p50 {latency.PercentileMs(50):F2} ms, p99 {p99:F2} ms, max {latency.MaxNanos / 1e6:F1} ms, missing {missing}"));
    }

    private static string Text(double value) => value.ToString(CultureInfo.InvariantCulture);
}
