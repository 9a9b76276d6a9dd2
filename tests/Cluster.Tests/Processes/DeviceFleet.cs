using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Presence.Cluster.Tests.Processes;

/// <summary>One heartbeat as the device saw it: accepted (200) or not within the retry bound, after how many attempts.</summary>
internal sealed record HeartbeatOutcome(string DeviceId, DateTimeOffset StartedAt, bool Accepted, int Attempts, TimeSpan Elapsed, string? LastFailure);

/// <summary>
/// Devices heartbeating through the cluster's gateways over HTTP, as real agents would behind a load balancer: each
/// attempt goes to the next gateway (round robin), and a heartbeat answered 503 or lost with its connection is sent
/// again until it is accepted or <see cref="RetryBound"/> has passed. Every heartbeat's outcome is recorded.
/// </summary>
internal sealed class DeviceFleet : IAsyncDisposable
{
    public static readonly TimeSpan RetryBound = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(200);

    private readonly List<HttpClient> _clients = [];
    private readonly List<(long Count, TaskCompletionSource Reached)> _thresholds = [];
    private long _accepted;
    private HttpClient[] _gateways;
    private int _next;

    public DeviceFleet(IEnumerable<Uri> gateways) => _gateways = gateways.Select(Client).ToArray();

    /// <summary>Sends later attempts to <paramref name="gateway"/> instead of the gateway at <paramref name="index"/> (one replaced after a crash).</summary>
    public void ReplaceGateway(int index, Uri gateway)
    {
        var gateways = (HttpClient[])_gateways.Clone();
        gateways[index] = Client(gateway);
        Volatile.Write(ref _gateways, gateways);
    }

    /// <summary>One heartbeat, retried on 503 and connection errors until accepted or <see cref="RetryBound"/> has passed.</summary>
    public async Task<HeartbeatOutcome> HeartbeatAsync(string deviceId)
    {
        var startedAt = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        string? failure = null;
        for (var attempt = 1; ; attempt++)
        {
            var gateways = Volatile.Read(ref _gateways);
            var gateway = gateways[(int)((uint)Interlocked.Increment(ref _next) % gateways.Length)];
            try
            {
                using var content = new StringContent($$"""{"device_id":"{{deviceId}}"}""", Encoding.UTF8, "application/json");
                using var response = await gateway.PostAsync("/api/v1/heartbeat", content);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    Accept();
                    return new HeartbeatOutcome(deviceId, startedAt, true, attempt, clock.Elapsed, failure);
                }

                failure = $"{gateway.BaseAddress}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
                if (response.StatusCode != HttpStatusCode.ServiceUnavailable)
                {
                    // Anything but "try again later" is an answer: the heartbeat was refused.
                    return new HeartbeatOutcome(deviceId, startedAt, false, attempt, clock.Elapsed, failure);
                }
            }
            catch (Exception e) when (e is HttpRequestException or SocketException or TaskCanceledException)
            {
                failure = $"{gateway.BaseAddress}: {e.GetType().Name} {e.Message}";
            }

            if (clock.Elapsed + RetryDelay > RetryBound)
            {
                return new HeartbeatOutcome(deviceId, startedAt, false, attempt, clock.Elapsed, failure);
            }

            await Task.Delay(RetryDelay); // allowed: a device's backoff before it retries (its behaviour under test load, not a wait for a phase)
        }
    }

    /// <summary>Heartbeats accepted so far.</summary>
    public long Accepted => Interlocked.Read(ref _accepted);

    /// <summary>Completes once <paramref name="count"/> heartbeats in all have been accepted; fails after <paramref name="timeout"/>.</summary>
    public async Task AcceptedAsync(long count, TimeSpan timeout)
    {
        var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_thresholds)
        {
            if (Accepted >= count)
            {
                return;
            }

            _thresholds.Add((count, reached));
        }

        try
        {
            await reached.Task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"the fleet had {Accepted} heartbeats accepted, not {count}, within {timeout.TotalSeconds} s");
        }
    }

    private void Accept()
    {
        var accepted = Interlocked.Increment(ref _accepted);
        lock (_thresholds)
        {
            foreach (var threshold in _thresholds.Where(t => t.Count <= accepted).ToList())
            {
                threshold.Reached.TrySetResult();
                _thresholds.Remove(threshold);
            }
        }
    }

    /// <summary>
    /// Starts <paramref name="devices"/> heartbeating every <paramref name="interval"/> (their first heartbeats spread
    /// over one interval) until the run is stopped or <paramref name="maxDuration"/> has passed.
    /// </summary>
    public FleetRun Start(IReadOnlyList<string> devices, TimeSpan interval, TimeSpan maxDuration)
    {
        var stop = new CancellationTokenSource(maxDuration);
        var loops = devices.Select((device, i) => RunDeviceAsync(device, interval * i / devices.Count, interval, stop.Token)).ToArray();
        return new FleetRun(stop, loops);
    }

    public ValueTask DisposeAsync()
    {
        foreach (var client in _clients)
        {
            client.Dispose();
        }

        return ValueTask.CompletedTask;
    }

    private async Task<List<HeartbeatOutcome>> RunDeviceAsync(string device, TimeSpan offset, TimeSpan interval, CancellationToken stop)
    {
        var outcomes = new List<HeartbeatOutcome>();
        var clock = Stopwatch.StartNew();
        var next = offset;
        while (true)
        {
            // Pacing, not a timing assertion: the device waits for its next tick (or the stop).
            var wait = next - clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                try
                {
                    await Task.Delay(wait, stop); // allowed: the fleet's heartbeat pacing (the load), not a wait for a phase
                }
                catch (OperationCanceledException)
                {
                    return outcomes;
                }
            }

            if (stop.IsCancellationRequested)
            {
                return outcomes;
            }

            outcomes.Add(await HeartbeatAsync(device));
            next += interval;
        }
    }

    private HttpClient Client(Uri gateway)
    {
        // A short request timeout above the gateway's route timeout (10 s): a request stuck on a dead gateway is retried.
        var client = new HttpClient(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(2) })
        {
            BaseAddress = gateway,
            Timeout = TimeSpan.FromSeconds(15),
        };
        lock (_clients)
        {
            _clients.Add(client);
        }

        return client;
    }
}

/// <summary>A running fleet; <see cref="StopAsync"/> ends it after the heartbeats in flight and returns every outcome.</summary>
internal sealed class FleetRun(CancellationTokenSource stop, Task<List<HeartbeatOutcome>>[] loops)
{
    public async Task<IReadOnlyList<HeartbeatOutcome>> StopAsync()
    {
        // Devices that stopped on their own would go offline for real: the scenario must end the run itself.
        Assert.False(stop.IsCancellationRequested, "the fleet ran out of its maximum duration before the scenario stopped it");
        await stop.CancelAsync();
        // Bounded: a heartbeat in flight ends within the retry bound.
        var outcomes = await Task.WhenAll(loops).WaitAsync(DeviceFleet.RetryBound + TimeSpan.FromSeconds(30));
        stop.Dispose();
        return outcomes.SelectMany(o => o).ToList();
    }
}
