using Microsoft.Extensions.Logging;
using Presence.Testing;

namespace Presence.Agent.Tests.Support;

/// <summary>A <see cref="DeviceAgent"/> running in the test process until stopped, with its log recorded.</summary>
internal sealed class RunningAgent : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly ILoggerFactory _loggers;

    private RunningAgent(AgentSettings settings)
    {
        Settings = settings;
        _loggers = LoggerFactory.Create(logging => logging.SetMinimumLevel(LogLevel.Debug).AddProvider(Log));
        // Off the test's synchronization context: the agent's continuations must not queue behind the test.
        Run = Task.Run(() => new DeviceAgent(settings, _loggers).RunAsync(_stop.Token));
        Log.Agent = Run;
    }

    public AgentSettings Settings { get; }

    public LogRecorder Log { get; } = new();

    public Task Run { get; }

    public static RunningAgent Start(AgentSettings settings) => new(settings);

    /// <summary>Settings for a test: no jitter, the host's /proc, no Docker socket, the given clock and handler.</summary>
    public static AgentSettings SettingsFor(Uri server, string deviceId, TimeProvider time, HttpMessageHandler? handler = null) => new()
    {
        Server = server,
        DeviceId = deviceId,
        DeviceName = "test agent " + deviceId,
        AppVersion = "9.9.9-test",
        Time = time,
        Handler = handler,
        Jitter = delay => delay,
        DockerSocket = Path.Combine(Path.GetTempPath(), "presence-agent-tests-no-docker.sock"),
    };

    /// <summary>Stops it the way SIGTERM does and waits for the run to end.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Run.WaitAsync(TimeSpan.FromSeconds(30));
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
        }
        finally
        {
            _loggers.Dispose();
            _stop.Dispose();
        }
    }
}

/// <summary>Moving the clock that the agent (and the gateway, when they share it) wait on.</summary>
internal static class TimeDriving
{
    public static void Advance(this ManualTimeProvider time, double seconds) => time.Advance(TimeSpan.FromSeconds(seconds));
}
