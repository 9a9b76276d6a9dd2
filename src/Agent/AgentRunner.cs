using Microsoft.Extensions.Logging;
using Presence.Agent.Simulation;

namespace Presence.Agent;

/// <summary>Runs what the options ask for: the simulator, or the agent over HTTP or a device WebSocket.</summary>
internal static class AgentRunner
{
    public static async Task<int> RunAsync(AgentOptions options, CancellationToken stop)
    {
        if (options.Simulate > 0)
        {
            return await FleetSimulator.RunAsync(options, Console.Out, stop);
        }

        AgentSettings settings;
        try
        {
            settings = AgentSettings.FromOptions(options, Environment.MachineName, Environment.GetEnvironmentVariable, File.Exists);
        }
        catch (ArgumentException e)
        {
            await Console.Error.WriteLineAsync($"presence-agent: {e.Message}");
            return 2;
        }

        using var loggers = LoggerFactory.Create(logging => logging
            .SetMinimumLevel(options.Verbose ? LogLevel.Debug : LogLevel.Information)
            .AddSimpleConsole(console =>
            {
                console.SingleLine = true;
                console.UseUtcTimestamp = true;
                console.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            }));
        try
        {
            await new DeviceAgent(settings, loggers).RunAsync(stop);
            return 0;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            AgentLog.Failed(loggers.CreateLogger("Presence.Agent"), e);
            return 1;
        }
    }
}
