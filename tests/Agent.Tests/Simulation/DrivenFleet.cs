using System.Text.Json;
using Presence.Agent.Simulation;
using Presence.Gateway.Tests;
using Presence.Testing;

namespace Presence.Agent.Tests.Simulation;

/// <summary>The real gateway (embedded, memory storage, driven clock) with the settings a simulator test needs.</summary>
internal sealed class FleetGateway(Dictionary<string, string> settings) : PresenceServer(WithDefaults(settings))
{
    public FleetGateway() : this([])
    {
    }

    /// <summary>Devices are told to heartbeat every second and go offline after 3 s of silence.</summary>
    private static Dictionary<string, string> WithDefaults(Dictionary<string, string> settings)
    {
        var all = new Dictionary<string, string>
        {
            ["Presence:Heartbeat:IntervalSeconds"] = "1",
            ["Presence:Heartbeat:TimeoutSeconds"] = "3",
        };
        foreach (var (key, value) in settings)
        {
            all[key] = value;
        }

        return all;
    }

    public FleetPlan Plan(int devices) => new()
    {
        Endpoint = FleetPlan.HeartbeatEndpoint(BaseAddress),
        Devices = devices,
        Seed = 20261122,
    };

    public async Task<JsonElement> StatsAsync() => await GetJsonAsync("/api/v1/stats");
}

/// <summary>
/// A simulator run on a driven clock (the gateway's, or its own): <see cref="AdvanceAsync"/> moves time in small
/// steps and, after each, awaits the phase where every heartbeat that fell due has been answered and the gateway
/// has applied every timer that fell due. Every wait is bounded.
/// </summary>
internal sealed class DrivenFleet : IAsyncDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    private readonly CancellationTokenSource _stop = new();
    private readonly StringWriter _output = new();
    private readonly PresenceServer? _gateway;

    private DrivenFleet(FleetPlan plan, ManualTimeProvider time, PresenceServer? gateway)
    {
        _gateway = gateway;
        Time = time;
        Run = new FleetRun(plan, _output, time);
        Completion = Run.RunAsync(_stop.Token);
    }

    public ManualTimeProvider Time { get; }

    public FleetRun Run { get; }

    public Task<int> Completion { get; }

    /// <summary>Time driven so far.</summary>
    public TimeSpan Driven { get; private set; }

    /// <summary>Everything printed so far; read it between steps (the run writes while time moves).</summary>
    public string Output => _output.ToString();

    public string[] Lines => Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public FleetSummary Summary => Run.Summary ?? throw new InvalidOperationException($"the run has not ended:\n{Output}");

    /// <summary>Starts a run against <paramref name="gateway"/> on its clock; returns once its first heartbeat is answered and every device waits for its slot.</summary>
    public static async Task<DrivenFleet> StartAsync(FleetGateway gateway, FleetPlan plan)
    {
        var fleet = new DrivenFleet(plan, gateway.Time, gateway);
        await fleet.WhenIdleAsync();
        return fleet;
    }

    /// <summary>Starts a run on its own clock (no gateway to drive).</summary>
    public static async Task<DrivenFleet> StartAsync(FleetPlan plan, ManualTimeProvider time)
    {
        var fleet = new DrivenFleet(plan, time, null);
        await fleet.WhenIdleAsync();
        return fleet;
    }

    /// <summary>Moves the clock by <paramref name="total"/> in steps of <paramref name="step"/> (100 ms unless told).</summary>
    public async Task AdvanceAsync(TimeSpan total, TimeSpan? step = null)
    {
        var by = step ?? TimeSpan.FromMilliseconds(100);
        for (var moved = TimeSpan.Zero; moved < total; moved += by)
        {
            Time.Advance(by);
            Driven += by;
            await WhenIdleAsync();
            if (_gateway is not null)
            {
                await _gateway.Silo.QuiesceAsync().WaitAsync(Bound);
            }
        }
    }

    /// <summary>Drives time until the run ends (at most <paramref name="limit"/> of driven time) and returns its exit code.</summary>
    public async Task<int> RunToEndAsync(TimeSpan limit, TimeSpan? step = null)
    {
        var by = step ?? TimeSpan.FromMilliseconds(100);
        for (var moved = TimeSpan.Zero; !Completion.IsCompleted && moved < limit; moved += by)
        {
            await AdvanceAsync(by, by);
        }

        return await Completion.WaitAsync(Bound);
    }

    /// <summary>Stops the run as SIGTERM does and returns its exit code.</summary>
    public async Task<int> StopAsync()
    {
        await _stop.CancelAsync();
        return await Completion.WaitAsync(Bound);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await Completion.WaitAsync(Bound);
        }
        finally
        {
            _stop.Dispose();
            await _output.DisposeAsync();
        }
    }

    private async Task WhenIdleAsync()
    {
        try
        {
            await Run.WhenIdleAsync().WaitAsync(Bound);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"the simulator did not settle within {Bound.TotalSeconds} s after {Driven} of driven time:\n{Output}", e);
        }
    }
}
