namespace Presence.Agent;

/// <summary>Entry point: parses the command line, then runs the agent (or the simulator) until SIGTERM / Ctrl+C.</summary>
public static class AgentProgram
{
    public static async Task<int> Main(string[] args)
    {
        AgentOptions options;
        try
        {
            options = AgentOptions.Parse(args);
        }
        catch (ArgumentException e)
        {
            await Console.Error.WriteLineAsync($"presence-agent: {e.Message}\n\n{AgentOptions.Usage}");
            return 2;
        }

        if (options.Help)
        {
            Console.WriteLine(AgentOptions.Usage);
            return 0;
        }

        // SIGTERM (docker stop) and Ctrl+C both stop the agent cleanly: the token cancels every loop.
        using var stop = new CancellationTokenSource();
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
            System.Runtime.InteropServices.PosixSignal.SIGTERM, context => { context.Cancel = true; stop.Cancel(); });
        using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(
            System.Runtime.InteropServices.PosixSignal.SIGINT, context => { context.Cancel = true; stop.Cancel(); });
        return await AgentRunner.RunAsync(options, stop.Token);
    }
}
