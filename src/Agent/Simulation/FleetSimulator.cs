namespace Presence.Agent.Simulation;

/// <summary>The fleet simulator (<c>--simulate N</c>): N devices from one process over a few pooled connections.</summary>
public static class FleetSimulator
{
    /// <summary>Runs until <see cref="AgentOptions.DurationSeconds"/> or <paramref name="stop"/>; prints progress and a summary to <paramref name="output"/>. Returns the exit code.</summary>
    public static Task<int> RunAsync(AgentOptions options, TextWriter output, CancellationToken stop) =>
        throw new NotImplementedException("the simulator arrives with the rest of this change");
}
