using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Presence.LoadGen;
using Presence.Runner.Events;
using Presence.Runner.Hosting;

namespace Presence.Runner.Scenarios;

/// <summary>
/// An offline storm: N devices time out at the same moment while a few hundred heartbeats per second of other, live
/// devices keep coming. Registering N devices takes tens of seconds on this machine, so their deadlines would be
/// spread over as long; to make them coincide the gateway is frozen (SIGSTOP) after registration and thawed
/// (SIGCONT) once every deadline has passed - as if every device's network failed at once. The process' clock runs on
/// while frozen, so on the next timer tick every device is overdue. Measured: from the first to the last
/// <c>device.status offline</c> event received by a <c>/ws/events</c> reader (and from the thaw to the last), and the
/// probe devices' heartbeat latency from the thaw to the last event. <c>--no-freeze</c> lets the deadlines fall as
/// registered instead. Budgets: all events within 10 s, heartbeat p99 &lt; 50 ms.
/// </summary>
internal static class StormScenario
{
    public const double GoalSeconds = 10;
    public const double GoalP99Ms = 50;

    public static async Task<JsonObject> RunAsync(ScenarioContext context)
    {
        var devices = context.Int("devices", 100_000, 1_000_000);
        var timeout = context.Number("timeout", 45, 180);
        var connections = context.Int("connections", 64, 64);
        var probeDevices = context.Int("probe-devices", 200, 200);
        var probeRate = context.Number("probe-rate", 400, 400);
        var freeze = !context.Flag("no-freeze");
        var defaultEventLimits = context.Flag("default-event-limits");
        var serverArgs = new List<string>
        {
            $"--Presence:Heartbeat:TimeoutSeconds={Text(timeout)}",
            "--Presence:RateLimit:HeartbeatsPerMinute=1000000",
        };
        if (!defaultEventLimits)
        {
            // One reader must be allowed to lag behind a whole storm, and the log must still hold it.
            var room = Text(devices + 500_000);
            serverArgs.Add($"--Presence:Events:Retention={room}");
            serverArgs.Add($"--Presence:Events:MaxSubscriberLag={room}");
        }

        var result = context.NewResult("storm", new JsonObject
        {
            ["devices"] = devices,
            ["timeout_s"] = timeout,
            ["connections"] = connections,
            ["probe_devices"] = probeDevices,
            ["probe_rate"] = probeRate,
            ["freeze"] = freeze,
            ["gateway_args"] = string.Join(' ', serverArgs),
        });

        var ct = context.CancellationToken;
        await using var server = await ServerProcess.StartAsync("gateway", context.Paths.Gateway, serverArgs, context.LogDir, ct);
        using var api = new ServerApi(server.Url);

        Console.WriteLine($"  storm: registering {devices:N0} devices (timeout {timeout} s)");
        var registration = await LoadGenProcess.RunAsync(context.Paths,
        [
            "--url", server.Url.ToString(), "--connections", Text(connections), "--requests", Text(devices), "--devices", Text(devices),
            "--ids", "sequential", "--id-prefix", "sim-", "--max-seconds", "1800", "--server-pid", Text(server.Pid),
        ], TimeSpan.FromMinutes(31), ct);
        var registeredAt = DateTime.UtcNow;
        result["registration"] = Figures.Load(registration);
        if (registration.Seconds > timeout - 8)
        {
            Console.WriteLine($"  storm: WARNING registration took {registration.Seconds} s, close to the {timeout} s timeout: early devices may expire before the storm");
        }

        var offline = new DeviceEventTimes("sim-", devices, "offline");
        var reader = new EventStreamClient(server.Url, offline.Handle);
        using var stopReading = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var reading = reader.RunAsync(await api.EventLogEndAsync(ct), stopReading.Token);
        await reader.Connected.WaitAsync(TimeSpan.FromSeconds(10), ct);

        var probe = new LoadEngine(new LoadOptions
        {
            Url = LoadOptions.EndpointUrl(server.Url.ToString()),
            Connections = 16,
            DurationSeconds = 3600,
            MaxSeconds = 3600,
            Devices = probeDevices,
            IdPrefix = "probe-",
            Rate = probeRate,
            KeepSamples = true,
        });
        using var stopProbe = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var probing = probe.RunAsync(stopProbe.Token);
        var probeStarted = Stopwatch.GetTimestamp();
        await Task.Delay(3000, ct);
        var before = await api.StatsAsync(ct);
        result["stats_before_storm"] = before;

        long calmUntil, stormFrom;
        if (freeze)
        {
            await probe.PauseAsync(TimeSpan.FromSeconds(5));
            calmUntil = Stopwatch.GetTimestamp();
            server.Freeze();
            // Every deadline is registration end + timeout at the latest; one timer tick and a margin later all are due.
            var wake = registeredAt + TimeSpan.FromSeconds(timeout + 1.5);
            Console.WriteLine($"  storm: gateway frozen for {(wake - DateTime.UtcNow).TotalSeconds:F0} s, until every deadline has passed");
            var wait = wake - DateTime.UtcNow;
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, ct);
            }

            stormFrom = Stopwatch.GetTimestamp();
            server.Thaw();
            probe.Resume();
        }
        else
        {
            calmUntil = stormFrom = Stopwatch.GetTimestamp();
        }

        // Bounded wait for every offline event: stop when all arrived, or nothing new for 30 s after the deadlines.
        var bound = Stopwatch.GetTimestamp() + (long)((timeout + registration.Seconds + 300) * Stopwatch.Frequency);
        var lastCount = -1L;
        var lastProgress = Stopwatch.GetTimestamp();
        var cpuBefore = server.Cpu;
        var readerCpuBefore = ProcStats.Cpu(Environment.ProcessId);
        var threadsBefore = ProcStats.CpuByThreadName(server.Pid);
        while (offline.Count < devices && Stopwatch.GetTimestamp() < bound)
        {
            if (offline.Count != lastCount)
            {
                lastCount = offline.Count;
                lastProgress = Stopwatch.GetTimestamp();
            }
            else if (Figures.Seconds(lastProgress, Stopwatch.GetTimestamp()) > (freeze ? 30 : timeout + 30))
            {
                break;
            }

            await Task.Delay(50, ct);
        }

        var stormCpu = (server.Cpu - cpuBefore).TotalSeconds;
        var readerCpu = (ProcStats.Cpu(Environment.ProcessId) - readerCpuBefore).TotalSeconds;
        var serverThreads = ProcStats.CpuDelta(threadsBefore, ProcStats.CpuByThreadName(server.Pid));
        await Task.Delay(1000, ct);
        probe.Stop();
        var probeReport = await probing;
        await stopReading.CancelAsync();
        await reading;
        var after = await api.StatsAsync(ct);

        var times = offline.SortedTimes();
        var stormTo = offline.LastAt == 0 ? Stopwatch.GetTimestamp() : offline.LastAt;
        var samples = probe.Samples();
        var window = Figures.Seconds(offline.FirstAt, offline.LastAt);
        var fromThaw = Figures.Seconds(stormFrom, offline.LastAt);
        var during = Figures.Requests(samples, stormFrom, stormTo + 1);
        var p99 = (double)during["p99_ms"]!;
        result["offline_events"] = offline.Count;
        result["offline_missing"] = devices - offline.Count;
        result["offline_duplicates"] = offline.Duplicates;
        result["first_to_last_s"] = window;
        result["thaw_to_first_s"] = freeze ? Figures.Seconds(stormFrom, offline.FirstAt) : null;
        result["thaw_to_last_s"] = freeze ? fromThaw : null;
        result["progress_s_from_first"] = Milestones(times, offline.FirstAt);
        result["events_per_s"] = Figures.Round(offline.Count / Math.Max(window, 0.001), 0);
        result["reader"] = new JsonObject
        {
            ["messages"] = reader.Messages,
            ["resumes_after_4008"] = reader.Resumes,
            ["resets"] = reader.Resets,
            ["last_close"] = reader.LastClose,
        };
        result["probe_before_storm"] = Figures.Requests(samples, probeStarted + Stopwatch.Frequency, calmUntil);
        result["probe_during_storm"] = during;
        result["probe_errors"] = probeReport.Errors;
        result["server_cpu_percent_during_storm"] = Figures.Round(stormCpu / Math.Max(Figures.Seconds(stormFrom, stormTo), 0.001) * 100, 1);
        result["server_cpu_s_by_thread_during_storm"] = serverThreads;
        result["probe_timeline"] = Timeline(samples, stormFrom, stormTo);
        result["runner_cpu_percent_during_storm"] = Figures.Round(readerCpu / Math.Max(Figures.Seconds(stormFrom, stormTo), 0.001) * 100, 1);
        result["server_rss_mb"] = Figures.Round(server.RssBytes / 1048576.0, 1);
        result["stats_after_storm"] = after;
        var stormSeconds = freeze ? fromThaw : window;
        result["goal_seconds"] = GoalSeconds;
        result["goal_p99_ms"] = GoalP99Ms;
        result["pass"] = offline.Count == devices && stormSeconds <= GoalSeconds && p99 < GoalP99Ms;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  storm: {offline.Count:N0}/{devices:N0} offline events, first->last {window:F2} s, thaw->last {fromThaw:F2} s, probe p99 {p99:F1} ms ({during["count"]} requests)"));
        return result;
    }

    /// <summary>Probe requests per quarter second from the thaw to a second after the last event: how many, and the slowest.</summary>
    private static JsonArray Timeline(List<RequestSample> samples, long from, long to)
    {
        var quarter = Stopwatch.Frequency / 4;
        var buckets = (int)Math.Min(400, ((to - from) / quarter) + 5);
        var counts = new long[buckets];
        var slowest = new long[buckets];
        foreach (var sample in samples)
        {
            var bucket = (sample.StartTimestamp - from) / quarter;
            if (bucket >= 0 && bucket < buckets)
            {
                counts[bucket]++;
                slowest[bucket] = Math.Max(slowest[bucket], sample.EndTimestamp - sample.StartTimestamp);
            }
        }

        var timeline = new JsonArray();
        for (var i = 0; i < buckets; i++)
        {
            timeline.Add(new JsonObject { ["t_s"] = i / 4.0, ["requests"] = counts[i], ["max_ms"] = Figures.Ms(slowest[i]) });
        }

        return timeline;
    }

    /// <summary>Seconds from <paramref name="from"/> until 50/90/99/100% of the events had been received.</summary>
    private static JsonObject Milestones(long[] times, long from)
    {
        var milestones = new JsonObject();
        if (times.Length == 0)
        {
            return milestones;
        }

        foreach (var percent in new[] { 50, 90, 99, 100 })
        {
            var index = Math.Clamp((int)Math.Ceiling(times.Length * percent / 100.0) - 1, 0, times.Length - 1);
            milestones[$"p{percent}"] = Figures.Seconds(from, times[index]);
        }

        return milestones;
    }

    private static string Text(double value) => value.ToString(CultureInfo.InvariantCulture);
}
