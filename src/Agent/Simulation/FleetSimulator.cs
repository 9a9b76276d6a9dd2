namespace Presence.Agent.Simulation;

/// <summary>The fleet simulator (<c>--simulate N</c>): N devices from one process over a few pooled connections.</summary>
public static class FleetSimulator
{
    /// <summary>
    /// Runs until <see cref="AgentOptions.DurationSeconds"/> or <paramref name="stop"/>; prints progress and a summary
    /// to <paramref name="output"/>. Returns the exit code: 0 when the gateway accepted heartbeats, 1 when it accepted
    /// none, 2 when the options cannot be simulated (the message says why).
    /// </summary>
    public static async Task<int> RunAsync(AgentOptions options, TextWriter output, CancellationToken stop)
    {
        ArgumentNullException.ThrowIfNull(output);
        var (plan, error) = FleetPlan.From(options);
        if (plan is null)
        {
            await output.WriteLineAsync($"presence-agent: {error}");
            return 2;
        }

        return await new FleetRun(plan, output, TimeProvider.System).RunAsync(stop);
    }
}
