using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Presence.Agent.Simulation.Http;

namespace Presence.Agent.Simulation;

/// <summary>
/// One simulator run: device 0's first heartbeat (the gateway's interval and timeout), then the fleet's connections
/// until the duration ends or the run is stopped, a progress line every <see cref="FleetPlan.ProgressInterval"/>, and
/// a summary. Everything scheduled runs on <paramref name="time"/>, so a test can drive it; latencies are real.
/// </summary>
internal sealed class FleetRun(FleetPlan plan, TextWriter output, TimeProvider time)
{
    /// <summary>How long in-flight heartbeats may take to be answered once the run stops (real time).</summary>
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(2);

    private readonly TextWriter _output = TextWriter.Synchronized(output);
    private readonly LoopActivity _activity = new(busy: 1);
    private readonly Lock _progressLock = new();
    private readonly HeartbeatTally _total = new();
    private readonly HeartbeatTally _interval = new();
    private FleetConnection[] _connections = [];
    private FleetSchedule? _schedule;
    private long _startedAt;
    private long _lastProgressAt;
    private long? _steadyFrom;
    private long _steadyHeartbeats;
    private long _steadyAllocated;
    private double _pollInterval;

    /// <summary>The summary, once the run has ended (null before, or when it never started).</summary>
    public FleetSummary? Summary { get; private set; }

    /// <summary>Completes once every loop of the run waits for a later time (or the run has ended): see <see cref="LoopActivity"/>.</summary>
    public Task WhenIdleAsync() => _activity.WhenIdleAsync();

    public async Task<int> RunAsync(CancellationToken stop)
    {
        try
        {
            return await RunFleetAsync(stop);
        }
        finally
        {
            _activity.End();
        }
    }

    private async Task<int> RunFleetAsync(CancellationToken stop)
    {
        using var stopping = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        using var abort = new CancellationTokenSource();
        using var stopped = stop.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), stopping);
        using var grace = stopping.Token.UnsafeRegister(static s => ((CancellationTokenSource)s!).CancelAfter(StopGrace), abort);
        if (plan.Duration is { } duration)
        {
            stopping.CancelAfter(duration);
        }

        var requests = new HeartbeatRequests(plan.Endpoint, plan.IdPrefix, sharedSecret: plan.SharedSecret);
        _output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"simulating {plan.Devices:N0} devices {requests.DeviceId(0)}..{requests.DeviceId(plan.Devices - 1)} against {plan.Endpoint} (churn {plan.ChurnPercent:0.##}%, {(plan.Rate is { } r ? $"--rate {r:N0}/s" : "each at the gateway's poll_interval_s")}, {(plan.Duration is { } d ? $"for {d.TotalSeconds:0.###} s" : "until stopped")})"));

        EndPoint server;
        try
        {
            server = await ResolveAsync(plan.Endpoint, stopping.Token);
        }
        catch (SocketException e)
        {
            _output.WriteLine($"presence-agent: cannot resolve {plan.Endpoint.Host}: {e.Message}");
            return 1;
        }

        FirstHeartbeatOutcome first;
        using (var alarm = new Alarm(time, _activity, stopping.Token))
        {
            first = await FirstHeartbeat.SendAsync(plan, requests, time, alarm, _output, _total, stopping.Token);
        }

        if (first.Refusal is { } refusal)
        {
            _output.WriteLine($"presence-agent: {refusal}");
            return 1;
        }

        if (first.AnsweredAt is not { } answeredAt)
        {
            _output.WriteLine($"presence-agent: stopped before the gateway answered a heartbeat ({_total.ErrorsText()})");
            return 1;
        }

        _pollInterval = first.PollIntervalSeconds;
        var churn = Churn(first);
        var schedule = new FleetSchedule(time.TimestampFrequency, churn.Interval, plan.Jitter, churn, plan.Devices);
        var connections = plan.Connections;
        var fleet = new FleetContext(time, requests, server, schedule, connections, _activity, stopping.Token, abort.Token);
        DescribeSchedule(schedule, connections, first);

        _connections = new FleetConnection[connections];
        var start = time.GetTimestamp();
        for (var i = 0; i < connections; i++)
        {
            _connections[i] = new FleetConnection(fleet, i, plan.Devices, plan.Seed);
            _connections[i].ScheduleFirstHeartbeats(start, answeredAt);
        }

        using var self = Process.GetCurrentProcess();
        var cpuAt = self.TotalProcessorTime;
        var wallAt = Stopwatch.GetTimestamp();
        _schedule = schedule;
        _startedAt = _lastProgressAt = start;
        var loops = new Task[connections];
        using (var progress = time.CreateTimer(static s => ((FleetRun)s!).Progress(), this, plan.ProgressInterval, plan.ProgressInterval))
        {
            foreach (var (i, connection) in _connections.Index())
            {
                _activity.Begin();
                loops[i] = Task.Run(connection.RunAsync, CancellationToken.None);
            }

            // The run itself only waits from here: idle, as far as a test driving the clock is concerned, until the
            // stop (it then has the summary to write: busy before its loops end, so the run is never idle in between).
            _activity.End();
            var waiting = 1;
            void Wake()
            {
                if (Interlocked.Exchange(ref waiting, 0) == 1)
                {
                    _activity.Begin();
                }
            }

            using (stopping.Token.UnsafeRegister(_ => Wake(), null))
            {
                try
                {
                    await Task.WhenAll(loops);
                }
                finally
                {
                    Wake();
                }
            }
        }

        self.Refresh();
        var cpu = self.TotalProcessorTime - cpuAt;
        var wall = Stopwatch.GetElapsedTime(wallAt);
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        lock (_progressLock)
        {
            Collect();
            Summary = Summarize(time.GetTimestamp(), cpu / wall * 100, allocated);
        }

        _output.WriteLine(Summary.ToText());
        _output.WriteLine(Summary.ToJson());
        return Summary.Ok > 0 ? 0 : 1;
    }

    /// <summary>
    /// The churn of this run, with the interval of an active device: the gateway's <c>poll_interval_s</c>, or with
    /// <c>--rate</c> the one at which the whole fleet, silences included, sends that many heartbeats per second.
    /// </summary>
    private ChurnModel Churn(FirstHeartbeatOutcome first)
    {
        var churn = ChurnModel.For(plan.ChurnPercent, first.PollIntervalSeconds, first.TimeoutSeconds);
        if (plan.Rate is not { } rate)
        {
            return churn;
        }

        if (churn.IntervalFor(rate, plan.Devices) is { } interval)
        {
            return ChurnModel.For(plan.ChurnPercent, interval, first.TimeoutSeconds);
        }

        churn = ChurnModel.For(plan.ChurnPercent, plan.Devices / rate, first.TimeoutSeconds);
        _output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"warning: --rate {rate:N0} cannot be met with --churn {plan.ChurnPercent:0.##}: a device heartbeats at least once per churn cycle of {churn.Cycle:0.#} s; the fleet sends about {churn.RateOf(plan.Devices):N1} heartbeats/s"));
        return churn;
    }

    private void DescribeSchedule(FleetSchedule schedule, int connections, FirstHeartbeatOutcome first)
    {
        var churn = schedule.Churn;
        _output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"schedule: each device every {schedule.IntervalSeconds:0.###} s ±{plan.Jitter * 100:0}%{(churn.Churns ? " while active" : "")} (about {churn.RateOf(plan.Devices):N1} heartbeats/s in all), first heartbeats spread over {schedule.IntervalSeconds:0.###} s, {connections} connections"));
        if (churn.Churns)
        {
            _output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"churn: about {churn.Share * 100:0.##}% of devices offline at any moment; a silence lasts {churn.Silence(0):0.#}-{churn.Silence(1):0.#} s (timeout_s {churn.Timeout:0.###} + {churn.MeanOffline * 0.5:0.#}-{churn.MeanOffline * 1.5:0.#} s offline), then the device comes back"));
        }

        if (schedule.IntervalSeconds >= first.TimeoutSeconds)
        {
            _output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"warning: a device heartbeats every {schedule.IntervalSeconds:0.###} s, not within the gateway's timeout_s {first.TimeoutSeconds:0.###}: devices go offline between heartbeats{(plan.Rate is null ? "" : " (raise --rate)")}"));
        }
    }

    /// <summary>The timer's callback: one progress line for the interval since the last one.</summary>
    private void Progress()
    {
        string line;
        lock (_progressLock)
        {
            var now = time.GetTimestamp();
            Collect();
            var seconds = _schedule!.Seconds(now - _lastProgressAt);
            _lastProgressAt = now;
            if (_steadyFrom is null)
            {
                _steadyFrom = now;
                _steadyHeartbeats = _total.Heartbeats;
                _steadyAllocated = GC.GetTotalAllocatedBytes(precise: true);
            }

            var (online, silent) = Devices(now);
            var heartbeatsPerSecond = _interval.Heartbeats / Math.Max(seconds, 1e-9);
            line = string.Create(CultureInfo.InvariantCulture,
                $"[{_schedule.Seconds(now - _startedAt),6:F0}s] online {online:N0}/{plan.Devices:N0} (silent {silent:N0}) | {heartbeatsPerSecond:N1} hb/s | p50 {_interval.Latency.PercentileMs(50):F2} ms p99 {_interval.Latency.PercentileMs(99):F2} ms | errors {_interval.ErrorsText()}{(_interval.Late > 0 ? $" | late {_interval.Late:N0}" : "")}");
        }

        _output.WriteLine(line);
    }

    /// <summary>Moves every connection's counts into the interval's and the run's tallies.</summary>
    private void Collect()
    {
        _interval.Clear();
        foreach (var connection in _connections)
        {
            connection.TakeTally(_interval);
        }

        _total.Add(_interval);
    }

    private (int Online, int Silent) Devices(long now)
    {
        int online = 0, silent = 0;
        foreach (var connection in _connections)
        {
            online += connection.CountOnline(now);
            silent += connection.SilentDevices;
        }

        return (online, silent);
    }

    private FleetSummary Summarize(long now, double cpuPercent, long allocated)
    {
        var schedule = _schedule!;
        var seconds = schedule.Seconds(now - _startedAt);
        var (online, silent) = Devices(now);
        var errors = new Dictionary<string, long>();
        for (var status = 1; status < _total.Status.Length; status++)
        {
            if (status != 200 && _total.Status[status] > 0)
            {
                errors[status.ToString(CultureInfo.InvariantCulture)] = _total.Status[status];
            }
        }

        errors["conn"] = _total.Status[HeartbeatTally.NoAnswer];
        var latency = _total.Latency;
        double? steady = null, allocatedPerHeartbeat = null;
        if (_steadyFrom is { } from && now > from)
        {
            var heartbeats = _total.Heartbeats - _steadyHeartbeats;
            steady = Math.Round(heartbeats / schedule.Seconds(now - from), 1);
            allocatedPerHeartbeat = Math.Round((allocated - _steadyAllocated) / (double)Math.Max(1, heartbeats), 2);
        }

        return new FleetSummary
        {
            Devices = plan.Devices,
            Connections = _connections.Length,
            TargetRate = plan.Rate,
            IntervalS = Math.Round(schedule.IntervalSeconds, 6),
            PollIntervalS = _pollInterval,
            TimeoutS = schedule.Churn.Timeout,
            ChurnPercent = plan.ChurnPercent,
            Seconds = Math.Round(seconds, 3),
            Heartbeats = _total.Heartbeats,
            HeartbeatsPerS = Math.Round(_total.Heartbeats / Math.Max(seconds, 1e-9), 1),
            SteadyHeartbeatsPerS = steady,
            Ok = _total.Ok,
            Errors = errors,
            LatencyMs = new FleetLatency(
                Math.Round(latency.PercentileMs(50), 3),
                Math.Round(latency.PercentileMs(90), 3),
                Math.Round(latency.PercentileMs(99), 3),
                Math.Round(latency.PercentileMs(99.9), 3),
                Math.Round(latency.MaxNanos / 1e6, 3)),
            Late = _total.Late,
            OnlineAtEnd = online,
            SilentAtEnd = silent,
            WentSilent = _total.WentSilent,
            CameBack = _total.CameBack,
            CpuPercent = Math.Round(cpuPercent, 1),
            AllocatedBytesPerHeartbeat = allocatedPerHeartbeat,
        };
    }

    /// <summary>The gateway's address; an IPv4 one first (<c>localhost</c> may resolve to ::1 where the gateway listens on 127.0.0.1 only).</summary>
    private static async Task<EndPoint> ResolveAsync(Uri endpoint, CancellationToken cancellationToken)
    {
        if (IPAddress.TryParse(endpoint.DnsSafeHost, out var literal))
        {
            return new IPEndPoint(literal, endpoint.Port);
        }

        var addresses = await Dns.GetHostAddressesAsync(endpoint.IdnHost, cancellationToken);
        var address = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses.FirstOrDefault()
            ?? throw new SocketException((int)SocketError.HostNotFound);
        return new IPEndPoint(address, endpoint.Port);
    }
}
