namespace Presence.Agent;

/// <summary>Runs what the options ask for: the simulator, or the agent over HTTP or a device WebSocket.</summary>
internal static class AgentRunner
{
    public static Task<int> RunAsync(AgentOptions options, CancellationToken stop) =>
        throw new NotImplementedException("the agent loops arrive with the rest of this change");
}
