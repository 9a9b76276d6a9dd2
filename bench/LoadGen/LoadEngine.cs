using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using Presence.Agent.Simulation;
using Presence.Agent.Simulation.Http;

namespace Presence.LoadGen;

/// <summary>One request as seen by the client (kept only when <see cref="LoadOptions.KeepSamples"/> is set).</summary>
public readonly record struct RequestSample(long Device, long StartTimestamp, long EndTimestamp, int Status);

/// <summary>
/// Drives heartbeat load: one loop per connection, each sending a patched copy of a pre-built request and reading the
/// response (closed loop), or pacing to a target rate (open schedule). Latency of a paced request is measured from its
/// scheduled send time once the loop has fallen behind schedule by more than timer slop, so a server stall is not
/// hidden by the requests it delayed (coordinated omission). Usable in-process: <see cref="PauseAsync"/>,
/// <see cref="Resume"/> and <see cref="Stop"/> steer a running load.
/// </summary>
public sealed class LoadEngine
{
    private static readonly long TimerSlop = Stopwatch.Frequency / 500;
    private static readonly MediaTypeHeaderValue JsonType = new("application/json");

    private readonly LoadOptions _options;
    private readonly HeartbeatRequests _requests;
    private readonly IPEndPoint _endPoint;
    private readonly Worker[] _workers;
    private long _issued = -1;
    private long _started;
    private long _measureFrom;
    private long _measureTo = long.MaxValue;
    private volatile bool _stopping;
    private TaskCompletionSource? _paused;
    private int _inFlight;

    public LoadEngine(LoadOptions options)
    {
        if (options.Tokens is not null && options.Client != ClientKind.Raw)
        {
            throw new ArgumentException("device tokens need the raw client (the http client sends no Authorization header)", nameof(options));
        }

        _options = options;
        _requests = new HeartbeatRequests(options.Url, options.IdPrefix, options.Tokens);
        _endPoint = new IPEndPoint(Dns.GetHostAddresses(options.Url.Host)[0], options.Url.Port);
        _workers = new Worker[options.Connections];
        for (var i = 0; i < _workers.Length; i++)
        {
            _workers[i] = new Worker(i, options.KeepSamples);
        }
    }

    public HeartbeatRequests Requests => _requests;

    /// <summary>Responses received so far (all phases); a progress gauge, read without locks.</summary>
    public long Completed => _workers.Sum(w => Volatile.Read(ref w.AllCompleted));

    /// <summary>Finishes in-flight requests and sends no more.</summary>
    public void Stop() => _stopping = true;

    /// <summary>Holds every loop before its next request and completes once no request is in flight (bounded).</summary>
    public async Task PauseAsync(TimeSpan bound)
    {
        Interlocked.Exchange(ref _paused, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        var deadline = Stopwatch.GetTimestamp() + (long)(bound.TotalSeconds * Stopwatch.Frequency);
        while (Volatile.Read(ref _inFlight) > 0 && Stopwatch.GetTimestamp() < deadline)
        {
            await Task.Delay(5);
        }
    }

    public void Resume() => Interlocked.Exchange(ref _paused, null)?.TrySetResult();

    /// <summary>Every measured request, ordered by start (after <see cref="RunAsync"/> has finished).</summary>
    public List<RequestSample> Samples()
    {
        var all = new List<RequestSample>(_workers.Sum(w => w.Samples?.Count ?? 0));
        foreach (var worker in _workers)
        {
            all.AddRange(worker.Samples ?? []);
        }

        all.Sort(static (a, b) => a.StartTimestamp.CompareTo(b.StartTimestamp));
        return all;
    }

    public async Task<LoadReport> RunAsync(CancellationToken cancellationToken)
    {
        using var process = Process.GetCurrentProcess();
        _started = Stopwatch.GetTimestamp();
        if (_options.IsTimed)
        {
            _measureFrom = _started + Ticks(_options.WarmupSeconds);
            _measureTo = _measureFrom + Ticks(_options.DurationSeconds);
        }
        else
        {
            _measureFrom = _started;
        }

        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(TimeSpan.FromSeconds(_options.MaxSeconds));
        using var http = _options.Client == ClientKind.Http ? CreateHttpClient() : null;
        var loops = new Task[_workers.Length];
        for (var i = 0; i < loops.Length; i++)
        {
            var worker = _workers[i];
            loops[i] = http is null
                ? Task.Run(() => RunRawAsync(worker, bound.Token), CancellationToken.None)
                : Task.Run(() => RunHttpClientAsync(worker, http, bound.Token), CancellationToken.None);
        }

        // CPU (client, and server when its pid is known) is counted over the measured window: after the warm-up
        // (JIT, connection set-up) and, for a timed run, up to its end.
        var all = Task.WhenAll(loops);
        var from = Snapshot(process);
        if (_options.IsTimed && _options.WarmupSeconds > 0 && !await EndsBeforeAsync(all, _measureFrom))
        {
            from = Snapshot(process);
        }

        CpuSnapshot? to = null;
        if (_options.IsTimed && !await EndsBeforeAsync(all, _measureTo))
        {
            to = Snapshot(process);
        }

        await all;
        var finished = Stopwatch.GetTimestamp();
        return Report(finished, from, to ?? Snapshot(process));
    }

    private readonly record struct CpuSnapshot(TimeSpan Client, TimeSpan? Server, TimeSpan? Db, long Completed, long At);

    private CpuSnapshot Snapshot(Process self)
    {
        self.Refresh();
        return new CpuSnapshot(self.TotalProcessorTime, ServerCpu(), DbCpu(), Completed, Stopwatch.GetTimestamp());
    }

    /// <summary>
    /// CPU of the database's main process, of its live children, and of its children that have exited and been
    /// waited for (<c>cutime</c>, <c>cstime</c>): a PostgreSQL server's backends are its children. From <c>/proc</c>,
    /// assuming 100 clock ticks a second.
    /// </summary>
    private TimeSpan? DbCpu()
    {
        if (_options.DbPid is not { } pid)
        {
            return null;
        }

        try
        {
            var main = StatFields(File.ReadAllText($"/proc/{pid}/stat"));
            long ticks = Field(main, 13) + Field(main, 14) + Field(main, 15) + Field(main, 16);
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                var name = Path.GetFileName(dir);
                if (name.Length == 0 || !char.IsAsciiDigit(name[0]) || name == pid.ToString(CultureInfo.InvariantCulture))
                {
                    continue;
                }

                try
                {
                    var fields = StatFields(File.ReadAllText(Path.Combine(dir, "stat")));
                    if (Field(fields, 3) == pid)
                    {
                        ticks += Field(fields, 13) + Field(fields, 14);
                    }
                }
                catch (IOException)
                {
                    // The process ended meanwhile.
                }
            }

            return TimeSpan.FromSeconds(ticks / 100.0);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>The fields of a <c>/proc/PID/stat</c> line: index i is proc(5)'s field i + 1 (the command, field 2, may hold spaces).</summary>
    private static string[] StatFields(string stat)
    {
        var close = stat.LastIndexOf(')');
        return ["", "", .. stat[(close + 2)..].Split(' ')];
    }

    private static long Field(string[] fields, int index) => long.Parse(fields[index], CultureInfo.InvariantCulture);

    private TimeSpan? ServerCpu()
    {
        if (_options.ServerPid is not { } pid)
        {
            return null;
        }

        try
        {
            using var server = Process.GetProcessById(pid);
            return server.TotalProcessorTime;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>True when <paramref name="run"/> ends before the Stopwatch time <paramref name="at"/>; else waits until then.</summary>
    private static async Task<bool> EndsBeforeAsync(Task run, long at)
    {
        var wait = at - Stopwatch.GetTimestamp();
        if (wait <= 0)
        {
            return run.IsCompleted;
        }

        return await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(wait / (double)Stopwatch.Frequency), CancellationToken.None)) == run;
    }

    private LoadReport Report(long finished, CpuSnapshot from, CpuSnapshot to)
    {
        var histogram = new LatencyHistogram();
        var status = new long[600];
        long errors = 0, completed = 0, firstStart = long.MaxValue, lastEnd = 0;
        foreach (var worker in _workers)
        {
            histogram.Add(worker.Histogram);
            for (var s = 0; s < status.Length; s++)
            {
                status[s] += worker.Status[s];
            }

            errors += worker.Errors;
            completed += worker.Completed;
            firstStart = Math.Min(firstStart, worker.FirstStart);
            lastEnd = Math.Max(lastEnd, worker.LastEnd);
        }

        var window = _options.IsTimed
            ? Math.Min(finished, _measureTo) - _measureFrom
            : lastEnd - Math.Min(firstStart, lastEnd);
        var seconds = Math.Max(window, 1) / (double)Stopwatch.Frequency;
        var cpuWall = Math.Max(to.At - from.At, 1) / (double)Stopwatch.Frequency;
        var cpuRequests = Math.Max(to.Completed - from.Completed, 1);
        var clientCpu = (to.Client - from.Client).TotalSeconds;
        var serverCpu = to.Server is { } end && from.Server is { } begin ? (end - begin).TotalSeconds : (double?)null;
        var dbCpu = to.Db is { } dbEnd && from.Db is { } dbBegin ? (dbEnd - dbBegin).TotalSeconds : (double?)null;
        var counts = new Dictionary<string, long>();
        for (var s = 0; s < status.Length; s++)
        {
            if (status[s] > 0)
            {
                counts[s == 0 ? "other" : s.ToString(CultureInfo.InvariantCulture)] = status[s];
            }
        }

        return new LoadReport
        {
            Client = _options.Client.ToString().ToLowerInvariant(),
            Url = _options.Url.ToString(),
            Connections = _options.Connections,
            Pipeline = _options.Pipeline,
            Ids = _options.Ids.ToString().ToLowerInvariant(),
            Devices = _options.Devices,
            Auth = _requests.HasTokens ? "bearer" : "none",
            TargetRate = _options.Rate,
            Seconds = Math.Round(seconds, 3),
            Requests = completed,
            Rps = Math.Round(completed / seconds, 1),
            TotalRequests = Completed,
            LatencyMs = new LatencySummary(
                Math.Round(histogram.PercentileMs(50), 3),
                Math.Round(histogram.PercentileMs(90), 3),
                Math.Round(histogram.PercentileMs(99), 3),
                Math.Round(histogram.PercentileMs(99.9), 3),
                Math.Round(histogram.MaxNanos / 1e6, 3)),
            Status = counts,
            Errors = errors,
            ClientCpuSeconds = Math.Round(clientCpu, 3),
            ClientCpuPercent = Math.Round(clientCpu / cpuWall * 100, 1),
            ClientCpuMicrosPerRequest = Math.Round(clientCpu * 1e6 / cpuRequests, 2),
            ServerCpuPercent = serverCpu is { } server ? Math.Round(server / cpuWall * 100, 1) : null,
            ServerCpuMicrosPerRequest = serverCpu is { } cost ? Math.Round(cost * 1e6 / cpuRequests, 2) : null,
            DbCpuPercent = dbCpu is { } db ? Math.Round(db / cpuWall * 100, 1) : null,
            DbCpuMicrosPerRequest = dbCpu is { } dbCost ? Math.Round(dbCost * 1e6 / cpuRequests, 2) : null,
        };
    }

    private async Task RunRawAsync(Worker worker, CancellationToken cancellationToken)
    {
        var length = _requests.Length;
        var batch = new byte[length * _options.Pipeline];
        for (var k = 0; k < _options.Pipeline; k++)
        {
            _requests.Template.CopyTo(batch, k * length);
        }

        var devices = new long[_options.Pipeline];
        var schedule = new Schedule(this, worker.Index);
        RawHttpConnection? connection = null;
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                if (connection is null)
                {
                    connection = await ConnectAsync(worker, cancellationToken);
                    if (connection is null)
                    {
                        break;
                    }
                }

                Interlocked.Increment(ref _inFlight);
                try
                {
                    if (await WaitIfPausedAsync(schedule, cancellationToken))
                    {
                        // A long pause outlasts the server's keep-alive timeout: start again on a fresh connection,
                        // as a device would, rather than count the closed one as an error.
                        connection.Dispose();
                        connection = null;
                        continue;
                    }

                    if (!await schedule.WaitTurnAsync(cancellationToken))
                    {
                        break;
                    }

                    var count = 0;
                    while (count < devices.Length && TryNextDevice(worker, out devices[count]))
                    {
                        _requests.Patch(batch.AsSpan(count * length, length), devices[count], ref worker.Random);
                        count++;
                    }

                    if (count == 0)
                    {
                        break;
                    }

                    var start = schedule.StartOf(Stopwatch.GetTimestamp());
                    var answered = 0;
                    try
                    {
                        await connection.SendAsync(batch.AsMemory(0, count * length), cancellationToken);
                        for (; answered < count; answered++)
                        {
                            var response = await connection.ReadResponseAsync(cancellationToken);
                            Record(worker, devices[answered], start, Stopwatch.GetTimestamp(), response.Status);
                            if (response.Close)
                            {
                                answered++;
                                worker.Errors += count - answered;
                                connection.Dispose();
                                connection = null;
                                break;
                            }
                        }
                    }
                    catch (Exception e) when (e is SocketException or IOException or InvalidDataException)
                    {
                        worker.Errors += count - answered;
                        connection?.Dispose();
                        connection = null;
                    }
                }
                finally
                {
                    Interlocked.Decrement(ref _inFlight);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The run's hard bound or the caller ended it.
        }
        finally
        {
            connection?.Dispose();
        }
    }

    /// <summary>Connects, retrying every 100 ms while the run lasts (each failure counts as an error).</summary>
    private async Task<RawHttpConnection?> ConnectAsync(Worker worker, CancellationToken cancellationToken)
    {
        while (!ShouldStop() && !cancellationToken.IsCancellationRequested)
        {
            try
            {
                return await RawHttpConnection.ConnectAsync(_endPoint, cancellationToken);
            }
            catch (SocketException)
            {
                worker.Errors++;
                await Task.Delay(100, cancellationToken);
            }
        }

        return null;
    }

    private async Task RunHttpClientAsync(Worker worker, HttpClient http, CancellationToken cancellationToken)
    {
        var buffer = (byte[])_requests.Template.Clone();
        var drain = new byte[4096];
        var schedule = new Schedule(this, worker.Index);
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                Interlocked.Increment(ref _inFlight);
                try
                {
                    if (await WaitIfPausedAsync(schedule, cancellationToken))
                    {
                        continue;
                    }

                    if (!await schedule.WaitTurnAsync(cancellationToken) || !TryNextDevice(worker, out var device))
                    {
                        break;
                    }

                    _requests.Patch(buffer, device, ref worker.Random);
                    var start = schedule.StartOf(Stopwatch.GetTimestamp());
                    try
                    {
                        using var content = new ByteArrayContent(buffer, _requests.BodyOffset, _requests.BodyLength);
                        content.Headers.ContentType = JsonType;
                        using var request = new HttpRequestMessage(HttpMethod.Post, _options.Url)
                        {
                            Content = content,
                            Version = HttpVersion.Version11,
                            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
                        };
                        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
                        await using (var body = await response.Content.ReadAsStreamAsync(cancellationToken))
                        {
                            while (await body.ReadAsync(drain, cancellationToken) > 0)
                            {
                            }
                        }

                        Record(worker, device, start, Stopwatch.GetTimestamp(), (int)response.StatusCode);
                    }
                    catch (HttpRequestException)
                    {
                        worker.Errors++;
                        await Task.Delay(10, cancellationToken);
                    }
                }
                finally
                {
                    Interlocked.Decrement(ref _inFlight);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The run's hard bound or the caller ended it.
        }
    }

    private HttpClient CreateHttpClient() => new(new SocketsHttpHandler
    {
        MaxConnectionsPerServer = _options.Connections,
        UseProxy = false,
        UseCookies = false,
        AutomaticDecompression = DecompressionMethods.None,
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10),
        ConnectCallback = async (context, cancellationToken) =>
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    /// <summary>True when the loop was held by a pause (the caller skips to its next iteration).</summary>
    private async ValueTask<bool> WaitIfPausedAsync(Schedule schedule, CancellationToken cancellationToken)
    {
        var paused = Volatile.Read(ref _paused);
        if (paused is null)
        {
            return false;
        }

        Interlocked.Decrement(ref _inFlight);
        try
        {
            await paused.Task.WaitAsync(cancellationToken);
        }
        finally
        {
            Interlocked.Increment(ref _inFlight);
        }

        schedule.Resumed(Stopwatch.GetTimestamp());
        return true;
    }

    private bool ShouldStop() => _stopping || (_options.IsTimed && Stopwatch.GetTimestamp() >= _measureTo);

    private bool TryNextDevice(Worker worker, out long device)
    {
        device = 0;
        if (ShouldStop())
        {
            return false;
        }

        long index;
        if (_options.IsTimed && _options.Ids == IdMode.Random)
        {
            index = 0;
        }
        else
        {
            index = Interlocked.Increment(ref _issued);
            if (!_options.IsTimed && index >= _options.Requests)
            {
                return false;
            }
        }

        device = _options.IdStart + (_options.Ids == IdMode.Sequential
            ? index % _options.Devices
            : (long)(HeartbeatRequests.Next(ref worker.Random) % (ulong)_options.Devices));
        return true;
    }

    private void Record(Worker worker, long device, long start, long end, int status)
    {
        Volatile.Write(ref worker.AllCompleted, worker.AllCompleted + 1);
        if (start < _measureFrom || start >= _measureTo)
        {
            return;
        }

        worker.Histogram.RecordTicks(end - start);
        worker.Status[status is > 0 and < 600 ? status : 0]++;
        worker.Completed++;
        worker.FirstStart = Math.Min(worker.FirstStart, start);
        worker.LastEnd = Math.Max(worker.LastEnd, end);
        worker.Samples?.Add(new RequestSample(device, start, end, status));
    }

    private static long Ticks(double seconds) => (long)(seconds * Stopwatch.Frequency);

    /// <summary>A connection loop's own counters: merged only after the run, so no sharing while it runs.</summary>
    private sealed class Worker(int index, bool keepSamples)
    {
        public readonly int Index = index;
        public readonly LatencyHistogram Histogram = new();
        public readonly long[] Status = new long[600];
        public readonly List<RequestSample>? Samples = keepSamples ? [] : null;
        public ulong Random = (ulong)(index + 1) * 0x9E3779B97F4A7C15UL;
        public long Errors;
        public long Completed;
        public long AllCompleted;
        public long FirstStart = long.MaxValue;
        public long LastEnd;
    }

    /// <summary>The send schedule of one paced loop (a no-op when the load is closed-loop).</summary>
    private sealed class Schedule
    {
        private readonly double _interval;
        private double _next;

        public Schedule(LoadEngine engine, int index)
        {
            var options = engine._options;
            if (options.Rate > 0)
            {
                _interval = Stopwatch.Frequency * options.Connections * options.Pipeline / options.Rate;
                _next = engine._started + (_interval * index / options.Connections);
            }
        }

        private bool Paced => _interval > 0;

        /// <summary>Waits until this loop's next slot; false when the run ends meanwhile.</summary>
        public async ValueTask<bool> WaitTurnAsync(CancellationToken cancellationToken)
        {
            if (!Paced)
            {
                return true;
            }

            var wait = (long)_next - Stopwatch.GetTimestamp();
            if (wait > 0)
            {
                await Task.Delay(TimeSpan.FromSeconds(wait / (double)Stopwatch.Frequency), cancellationToken);
            }

            return true;
        }

        /// <summary>The time a request's latency is measured from; advances the schedule.</summary>
        public long StartOf(long now)
        {
            if (!Paced)
            {
                return now;
            }

            var scheduled = (long)_next;
            _next += _interval;
            return now - scheduled > TimerSlop ? scheduled : now;
        }

        /// <summary>After a pause the schedule restarts from now instead of catching up on the slots it missed.</summary>
        public void Resumed(long now)
        {
            if (Paced && _next < now)
            {
                _next = now;
            }
        }
    }
}
