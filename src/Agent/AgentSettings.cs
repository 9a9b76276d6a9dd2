using Presence.Agent.Connection;
using Presence.Agent.Host;

namespace Presence.Agent;

/// <summary>
/// Everything the device agent runs with: the command line resolved against the host, and the seams tests drive
/// (the clock every wait goes through, the HTTP handler, the jitter).
/// </summary>
internal sealed record AgentSettings
{
    public const string ProcRootVariable = "PRESENCE_PROC_ROOT";
    public const string SecretVariable = "PRESENCE_DEVICE_SECRET";
    public const string SharedSecretVariable = "PRESENCE_SHARED_SECRET";

    public required Uri Server { get; init; }

    public required string DeviceId { get; init; }

    public string? DeviceName { get; init; }

    public string Platform { get; init; } = "linux";

    public string AppVersion { get; init; } = HostIdentity.AgentVersion();

    public string? Secret { get; init; }

    public string? SharedSecret { get; init; }

    public bool WebSocket { get; init; }

    public string ProcRoot { get; init; } = "/proc";

    public string DockerSocket { get; init; } = "/var/run/docker.sock";

    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>The handler for the gateway's HTTP API and the device channel's upgrade; null: a <see cref="SocketsHttpHandler"/>.</summary>
    public HttpMessageHandler? Handler { get; init; }

    /// <summary>Applied to every interval and backoff step; +-10 % by default.</summary>
    public Func<TimeSpan, TimeSpan> Jitter { get; init; } = Pacing.TenPercentJitter;

    /// <summary>
    /// The options as given, defaults taken from the host: its name (device id and name), the environment (the proc
    /// root; the secrets when no option gives one, so they stay off the process list), the container it may run in.
    /// Throws <see cref="ArgumentException"/> when the environment names both secrets.
    /// </summary>
    public static AgentSettings FromOptions(AgentOptions options, string hostName, Func<string, string?> environment, Func<string, bool> fileExists)
    {
        var (secret, sharedSecret) = options.Secret is not null || options.SharedSecret is not null
            ? (options.Secret, options.SharedSecret)
            : (NonEmpty(environment(SecretVariable)), NonEmpty(environment(SharedSecretVariable)));
        if (secret is not null && sharedSecret is not null)
        {
            throw new ArgumentException($"{SecretVariable} and {SharedSecretVariable} are for different auth modes: set one");
        }

        return new AgentSettings
        {
            // A base path (https://host/presence/) keeps its last segment only with the slash.
            Server = options.Server.AbsolutePath.EndsWith('/') ? options.Server : new Uri(options.Server + "/"),
            DeviceId = options.DeviceId ?? HostIdentity.DeviceIdFrom(hostName),
            DeviceName = HostIdentity.DeviceNameFrom(hostName),
            Platform = HostIdentity.Platform(environment, fileExists),
            Secret = secret,
            SharedSecret = sharedSecret,
            WebSocket = options.WebSocket,
            ProcRoot = options.ProcRoot ?? NonEmpty(environment(ProcRootVariable)) ?? "/proc",
            DockerSocket = options.DockerSocket,
        };
    }

    private static string? NonEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
