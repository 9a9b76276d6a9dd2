using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Presence.Agent.Simulation.Http;

namespace Presence.Agent.Simulation;

/// <summary>What every connection of a run shares.</summary>
internal sealed record FleetContext(
    TimeProvider Time,
    HeartbeatRequests Requests,
    EndPoint Server,
    FleetSchedule Schedule,
    int Connections,
    LoopActivity Activity,
    CancellationToken Stopping,
    CancellationToken Abort);

/// <summary>
/// One pooled keep-alive connection and the devices that heartbeat over it (device <c>d</c> uses connection
/// <c>d % connections</c>): a loop that waits for the next due device, sends its heartbeat, reads the answer and
/// schedules the device's next heartbeat or silence; one request at a time, as a device would (no pipelining).
/// Nothing on that path allocates: the request is a copy of one template patched in place, the schedule is a
/// priority queue of value pairs, the wait is a re-armed <see cref="Alarm"/>, and the loop awaits the socket itself.
/// </summary>
internal sealed class FleetConnection
{
    /// <summary>A heartbeat sent this much after its due time counts as late: the simulator (or the gateway) is behind.</summary>
    public static readonly TimeSpan LateAfter = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A connection idle for this long (real time) is replaced before use: gateways and proxies close idle keep-alive
    /// connections (Kestrel after 130 s, common load balancers after 60 s), and a heartbeat must not race that close.
    /// </summary>
    private static readonly long IdleLimit = 50 * Stopwatch.Frequency;

    /// <summary>A heartbeat due this soon is sent now: finer waits cost a timer each and end no sooner (timers tick in milliseconds).</summary>
    private static readonly TimeSpan SendEarly = TimeSpan.FromMilliseconds(1);

    private const byte New = 0;
    private const byte Active = 1;
    private const byte Silent = 2;

    private readonly FleetContext _fleet;
    private readonly int _index;
    private readonly PriorityQueue<int, long> _due;
    private readonly long[] _lastOk;
    private readonly byte[] _phase;
    private readonly byte[] _request;
    private readonly long _lateTicks;
    private readonly long _earlyTicks;
    private readonly Lock _tallyLock = new();
    private readonly HeartbeatTally _tally = new();
    private ulong _random;
    private int _silent;

    public FleetConnection(FleetContext fleet, int index, int devices, ulong seed)
    {
        _fleet = fleet;
        _index = index;
        var count = DevicesOf(index, fleet.Connections, devices);
        _due = new PriorityQueue<int, long>(count);
        _lastOk = new long[count];
        Array.Fill(_lastOk, long.MinValue);
        _phase = new byte[count];
        _request = (byte[])fleet.Requests.Template.Clone();
        _lateTicks = fleet.Schedule.Ticks(LateAfter.TotalSeconds);
        _earlyTicks = fleet.Schedule.Ticks(SendEarly.TotalSeconds);
        _random = Xorshift.Seed(seed, index);
    }

    /// <summary>Devices of this connection in a churn silence (read without a lock by the progress line).</summary>
    public int SilentDevices => Volatile.Read(ref _silent);

    /// <summary>How many of <paramref name="devices"/> use connection <paramref name="index"/> of <paramref name="connections"/>.</summary>
    public static int DevicesOf(int index, int connections, int devices) => (devices / connections) + (index < devices % connections ? 1 : 0);

    /// <summary>
    /// The first heartbeat of every device: in its slot of the first interval from <paramref name="start"/>; device 0,
    /// whose first heartbeat the run already sent and got answered at <paramref name="firstAnsweredAt"/>, an interval after that.
    /// </summary>
    public void ScheduleFirstHeartbeats(long start, long? firstAnsweredAt)
    {
        for (var local = 0; local < _lastOk.Length; local++)
        {
            var device = DeviceOf(local);
            if (device == 0 && firstAnsweredAt is { } answered)
            {
                _phase[local] = Active;
                _lastOk[local] = answered;
                _due.Enqueue(local, _fleet.Schedule.NextDue(answered, answered, ref _random));
            }
            else
            {
                _due.Enqueue(local, _fleet.Schedule.FirstDue(start, device, ref _random));
            }
        }
    }

    /// <summary>Devices whose last answered heartbeat is younger than the gateway's timeout (read without a lock).</summary>
    public int CountOnline(long now)
    {
        var since = now - _fleet.Schedule.Timeout;
        var online = 0;
        foreach (var lastOk in _lastOk)
        {
            if (lastOk > since)
            {
                online++;
            }
        }

        return online;
    }

    /// <summary>Moves this connection's counts since the last call into <paramref name="into"/>.</summary>
    public void TakeTally(HeartbeatTally into)
    {
        lock (_tallyLock)
        {
            into.Add(_tally);
            _tally.Clear();
        }
    }

    public async Task RunAsync()
    {
        var fleet = _fleet;
        using var alarm = new Alarm(fleet.Time, fleet.Activity, fleet.Stopping);
        RawHttpConnection? connection = null;
        long lastUsed = 0;
        var backoff = TimeSpan.Zero;
        try
        {
            while (!fleet.Stopping.IsCancellationRequested && _due.TryPeek(out var local, out var due))
            {
                var now = fleet.Time.GetTimestamp();
                if (due - now > _earlyTicks)
                {
                    await alarm.WaitAsync(fleet.Schedule.Delay(due - now));
                    continue;
                }

                if (connection is not null && Stopwatch.GetTimestamp() - lastUsed > IdleLimit)
                {
                    connection.Dispose();
                    connection = null;
                }

                if (connection is null)
                {
                    try
                    {
                        connection = await RawHttpConnection.ConnectAsync(fleet.Server, fleet.Abort);
                        lastUsed = Stopwatch.GetTimestamp();
                        backoff = TimeSpan.Zero;
                    }
                    catch (SocketException)
                    {
                        // Like devices that cannot reach the gateway: every heartbeat due now fails, and the next
                        // attempt waits a little longer each time (0.1 s, doubling up to 5 s).
                        FailDue(now);
                        backoff = TimeSpan.FromTicks(Math.Clamp(backoff.Ticks * 2, TimeSpan.TicksPerMillisecond * 100, TimeSpan.TicksPerSecond * 5));
                        await alarm.WaitAsync(backoff);
                        continue;
                    }
                }

                _due.Dequeue();
                var cameBack = Prepare(local);
                var status = HeartbeatTally.NoAnswer;
                var sentAt = Stopwatch.GetTimestamp();
                try
                {
                    await connection.SendAsync(_request, fleet.Abort);
                    HttpResponseHead response;
                    while (!connection.TryReadResponse(out response))
                    {
                        connection.Received(await connection.ReceiveAsync(fleet.Abort));
                    }

                    status = response.Status;
                    lastUsed = Stopwatch.GetTimestamp();
                    if (response.Close)
                    {
                        connection.Dispose();
                        connection = null;
                    }
                }
                catch (Exception e) when (e is SocketException or IOException or InvalidDataException)
                {
                    connection?.Dispose();
                    connection = null;
                }

                Complete(local, due, now, cameBack, status, Stopwatch.GetTimestamp() - sentAt);
            }
        }
        catch (OperationCanceledException) when (fleet.Abort.IsCancellationRequested)
        {
            // Stopped while a heartbeat was in flight, and its answer did not come within the stop's grace.
        }
        finally
        {
            connection?.Dispose();
            fleet.Activity.End();
        }
    }

    private long DeviceOf(int local) => _index + ((long)local * _fleet.Connections);

    /// <summary>Patches device <paramref name="local"/>'s heartbeat into the request; true when it ends a silence.</summary>
    private bool Prepare(int local)
    {
        _fleet.Requests.Patch(_request, DeviceOf(local), ref _random);
        if (_phase[local] != Silent)
        {
            return false;
        }

        _phase[local] = Active;
        Interlocked.Decrement(ref _silent);
        return true;
    }

    /// <summary>Counts one heartbeat and schedules what its device does next.</summary>
    private void Complete(int local, long due, long sentAt, bool cameBack, int status, long latencyTicks)
    {
        var schedule = _fleet.Schedule;
        var now = _fleet.Time.GetTimestamp();
        var phase = _phase[local];
        if (status == 200)
        {
            Volatile.Write(ref _lastOk[local], now);
        }

        // A device never answered 200 is not registered yet: it keeps trying on its schedule before it churns.
        var first = phase == New;
        var silent = (phase == Active || status == 200) && schedule.GoesSilent(first, ref _random);
        if (silent)
        {
            _phase[local] = Silent;
            Interlocked.Increment(ref _silent);
            _due.Enqueue(local, schedule.SilenceEnd(due, now, first, ref _random));
        }
        else
        {
            _phase[local] = status == 200 ? Active : phase;
            _due.Enqueue(local, schedule.NextDue(due, now, ref _random));
        }

        lock (_tallyLock)
        {
            _tally.Record(status, latencyTicks);
            if (sentAt - due > _lateTicks)
            {
                _tally.Late++;
            }

            if (cameBack)
            {
                _tally.CameBack++;
            }

            if (silent)
            {
                _tally.WentSilent++;
            }
        }
    }

    /// <summary>Every heartbeat due by <paramref name="now"/> fails without a connection: counted, and its device keeps its schedule.</summary>
    private void FailDue(long now)
    {
        // Each device once: one far behind its schedule is due again at once.
        for (var left = _due.Count; left > 0 && _due.TryPeek(out var local, out var due) && due - now <= _earlyTicks; left--)
        {
            _due.Dequeue();
            Complete(local, due, now, Prepare(local), HeartbeatTally.NoAnswer, 0);
        }
    }
}
