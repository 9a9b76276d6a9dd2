using System.Globalization;

namespace Presence.Agent;

/// <summary>
/// The agent's command line (a contract: API.md, "Processes and command lines"):
/// <c>--server URL [--device-id ID] [--secret S] [--shared-secret S] [--websocket]</c>, or
/// <c>--simulate N [--churn PCT] [--duration S] [--rate R]</c> for a simulated fleet.
/// </summary>
public sealed record AgentOptions
{
    public const string Usage = """
        Presence device agent
          dotnet run --project src/Agent -- --server http://127.0.0.1:5080 [--device-id ID] [--secret S] [--shared-secret S] [--websocket]
          dotnet run --project src/Agent -- --server http://127.0.0.1:5080 --simulate N [--churn PCT] [--duration S] [--rate R]

          --server URL         the gateway (default http://127.0.0.1:5080)
          --device-id ID       this device's id (default: the host name, made valid)
          --secret S           device-token mode: the device secret from provisioning (PUT /api/v1/devices/{id})
          --shared-secret S    shared-secret mode: the fleet's X-Connect-Secret
                               (without either option: $PRESENCE_DEVICE_SECRET or $PRESENCE_SHARED_SECRET, off the process list)
          --websocket          keep a /ws/device channel open and heartbeat over it; answers ping, collect, report
          --proc-root PATH     where the host's /proc is (default $PRESENCE_PROC_ROOT or /proc; in a container: /host/proc)
          --docker-socket PATH the Docker Engine socket (default /var/run/docker.sock; containers are reported when it exists)
          --verbose            also log every heartbeat and retry (debug level)
          --simulate N         run N simulated devices instead (a load and churn generator)
          --churn PCT          simulation: percentage of devices that go silent and come back (default 0)
          --duration S         simulation: stop after S seconds (default: until SIGTERM / Ctrl+C)
          --rate R             simulation: total heartbeats per second (default: each device at the server's poll_interval_s)
          --help               this text
        """;

    public Uri Server { get; init; } = new("http://127.0.0.1:5080");

    /// <summary>Null: derived from the host name.</summary>
    public string? DeviceId { get; init; }

    public string? Secret { get; init; }

    public string? SharedSecret { get; init; }

    public bool WebSocket { get; init; }

    /// <summary>Null: <c>$PRESENCE_PROC_ROOT</c>, else <c>/proc</c>.</summary>
    public string? ProcRoot { get; init; }

    public string DockerSocket { get; init; } = "/var/run/docker.sock";

    public bool Verbose { get; init; }

    /// <summary>0: run as a real agent; otherwise the number of simulated devices.</summary>
    public int Simulate { get; init; }

    public double ChurnPercent { get; init; }

    /// <summary>Null: until stopped.</summary>
    public double? DurationSeconds { get; init; }

    /// <summary>Null: each simulated device follows <c>poll_interval_s</c>.</summary>
    public double? Rate { get; init; }

    public bool Help { get; init; }

    /// <summary>Parses the command line; a bad argument throws <see cref="ArgumentException"/> with a message naming it.</summary>
    public static AgentOptions Parse(IReadOnlyList<string> args)
    {
        var options = new AgentOptions();
        for (var i = 0; i < args.Count; i++)
        {
            var name = args[i];
            string Value() => i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal)
                ? args[++i]
                : throw new ArgumentException($"{name} needs a value");
            options = name switch
            {
                "--server" => options with { Server = ParseServer(Value()) },
                "--device-id" => options with { DeviceId = ParseDeviceId(Value()) },
                "--secret" => options with { Secret = Value() },
                "--shared-secret" => options with { SharedSecret = Value() },
                "--websocket" => options with { WebSocket = true },
                "--proc-root" => options with { ProcRoot = Value() },
                "--docker-socket" => options with { DockerSocket = Value() },
                "--verbose" => options with { Verbose = true },
                "--simulate" => options with { Simulate = ParseInt(name, Value(), 1, 10_000_000) },
                "--churn" => options with { ChurnPercent = ParseNumber(name, Value(), 0, 100) },
                "--duration" => options with { DurationSeconds = ParseNumber(name, Value(), 0.001, 365 * 86400) },
                "--rate" => options with { Rate = ParseNumber(name, Value(), 0.001, 10_000_000) },
                "--help" or "-h" => options with { Help = true },
                _ => throw new ArgumentException($"unknown option {name}"),
            };
        }

        if (options.Secret is not null && options.SharedSecret is not null)
        {
            throw new ArgumentException("--secret and --shared-secret are for different auth modes: give one");
        }

        if (options.Simulate == 0 && (options.ChurnPercent > 0 || options.DurationSeconds is not null || options.Rate is not null))
        {
            throw new ArgumentException("--churn, --duration and --rate apply to --simulate");
        }

        return options;
    }

    private static Uri ParseServer(string value) =>
        Uri.TryCreate(value, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"
            ? uri
            : throw new ArgumentException($"--server must be an http:// or https:// URL (got '{value}')");

    private static string ParseDeviceId(string value) =>
        Host.HostIdentity.IsValidDeviceId(value)
            ? value
            : throw new ArgumentException($"--device-id must be 1-128 of A-Z a-z 0-9 _ . : @ - (got '{value}')");

    private static int ParseInt(string name, string value, int min, int max) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
            ? n
            : throw new ArgumentException($"{name} must be a whole number from {min} to {max} (got '{value}')");

    private static double ParseNumber(string name, string value, double min, double max) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
            ? n
            : throw new ArgumentException($"{name} must be a number from {min.ToString(CultureInfo.InvariantCulture)} to {max.ToString(CultureInfo.InvariantCulture)} (got '{value}')");
}
