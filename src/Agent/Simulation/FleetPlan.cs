using System.Buffers;
using Presence.Agent.Simulation.Http;

namespace Presence.Agent.Simulation;

/// <summary>
/// What one simulator run does: the command line's <c>--simulate N [--churn PCT] [--duration S] [--rate R]</c> with
/// <c>--server</c>, <c>--device-id</c> (the id prefix) and <c>--shared-secret</c>, plus the settings the command line
/// does not expose (connections, progress period, jitter, random seed), which tests may change.
/// </summary>
internal sealed record FleetPlan
{
    public const string DefaultPrefix = "sim-";

    /// <summary>The most connections a run opens (fewer for fewer devices: one device never shares a socket with itself).</summary>
    public const int DefaultConnections = 64;

    /// <summary>device_id: 1-128 of <c>A-Z a-z 0-9 _ . : @ -</c> (API.md); the simulator appends 7 digits.</summary>
    private static readonly SearchValues<char> IdCharacters =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:@-");

    /// <summary>The heartbeat endpoint: <c>{server}/api/v1/heartbeat</c>.</summary>
    public required Uri Endpoint { get; init; }

    public required int Devices { get; init; }

    /// <summary>Device ids are this prefix and 7 digits, numbered from 0: <c>sim-0000000</c>, <c>sim-0000001</c>...</summary>
    public string IdPrefix { get; init; } = DefaultPrefix;

    /// <summary>Total heartbeats per second over the fleet; null: each device at the gateway's <c>poll_interval_s</c>.</summary>
    public double? Rate { get; init; }

    /// <summary>Percentage of the fleet offline at the gateway at any moment, in steady state (see <see cref="ChurnModel"/>).</summary>
    public double ChurnPercent { get; init; }

    /// <summary>Null: until stopped.</summary>
    public TimeSpan? Duration { get; init; }

    /// <summary><c>X-Connect-Secret</c> on every heartbeat (gateways in <c>shared-secret</c> mode).</summary>
    public string? SharedSecret { get; init; }

    public int MaxConnections { get; init; } = DefaultConnections;

    public TimeSpan ProgressInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Each interval between two heartbeats of a device is the nominal one times 1 ± this.</summary>
    public double Jitter { get; init; } = 0.1;

    /// <summary>Seeds every random choice (jitter, churn, metric values): a run can be repeated.</summary>
    public ulong Seed { get; init; } = (ulong)Random.Shared.NextInt64(1, long.MaxValue);

    public int Connections => Math.Min(MaxConnections, Devices);

    /// <summary>
    /// The plan for <paramref name="options"/>, or why there is none: the simulator speaks plain HTTP with no
    /// credentials or one shared secret (the device-token mode needs a provisioned secret per device, which a
    /// command line cannot carry).
    /// </summary>
    public static (FleetPlan? Plan, string? Error) From(AgentOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Secret is not null)
        {
            return (null, "--simulate does not support --secret: a device secret belongs to one provisioned device, and "
                + "device-token mode needs one per simulated device. Simulate against a gateway in auth mode none or "
                + "shared-secret (--shared-secret S); bench/LoadGen --tokens FILE drives provisioned devices");
        }

        if (options.WebSocket)
        {
            return (null, "--simulate sends HTTP heartbeats; --websocket is for a single agent");
        }

        if (options.Server.Scheme != Uri.UriSchemeHttp)
        {
            return (null, $"--simulate speaks plain HTTP/1.1 to the gateway (got {options.Server}): point it at the gateway's http:// address, not at a TLS endpoint");
        }

        var prefix = options.DeviceId ?? DefaultPrefix;
        if (prefix.Length > 128 - HeartbeatRequests.IdDigits || prefix.AsSpan().IndexOfAnyExcept(IdCharacters) >= 0)
        {
            return (null, $"--device-id with --simulate is the id prefix: at most {128 - HeartbeatRequests.IdDigits} of A-Z a-z 0-9 _ . : @ - (got '{prefix}')");
        }

        if (options.SharedSecret is { } secret && HeartbeatRequests.CheckSecret(secret) is { } problem)
        {
            return (null, $"--shared-secret {problem}");
        }

        return (new FleetPlan
        {
            Endpoint = HeartbeatEndpoint(options.Server),
            Devices = options.Simulate,
            IdPrefix = prefix,
            Rate = options.Rate,
            ChurnPercent = options.ChurnPercent,
            Duration = options.DurationSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : null,
            SharedSecret = options.SharedSecret,
        }, null);
    }

    /// <summary>The heartbeat path under the server's (a gateway behind a path prefix keeps it).</summary>
    public static Uri HeartbeatEndpoint(Uri server)
    {
        var path = server.AbsolutePath.TrimEnd('/');
        return new UriBuilder(server) { Path = path + "/api/v1/heartbeat", Query = "" }.Uri;
    }
}
