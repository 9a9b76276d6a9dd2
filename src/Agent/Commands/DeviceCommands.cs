using Presence.Agent.Reporting;

namespace Presence.Agent.Commands;

/// <summary>A command's answer: the <c>ok</c> and <c>output</c> of its <c>command_result</c>.</summary>
internal readonly record struct CommandOutcome(bool Ok, string Output);

/// <summary>
/// The commands an agent answers over its device channel: a fixed, safe set. <c>ping</c> answers <c>pong</c>,
/// <c>collect</c> sends a heartbeat now, <c>report</c> returns the host's full metrics and containers as JSON text.
/// Anything else is refused; nothing is ever run in a shell.
/// </summary>
internal sealed class DeviceCommands(HostReporter reporter)
{
    public const string Known = "ping, collect, report";

    /// <param name="heartbeatNow">Sends a heartbeat over the channel at once (for <c>collect</c>).</param>
    public async Task<CommandOutcome> ExecuteAsync(string name, Func<CancellationToken, Task> heartbeatNow, CancellationToken cancellationToken)
    {
        switch (name)
        {
            case "ping":
                return new CommandOutcome(true, "pong");
            case "collect":
                await heartbeatNow(cancellationToken);
                return new CommandOutcome(true, "heartbeat sent");
            case "report":
                return new CommandOutcome(true, HeartbeatJson.Report(await reporter.CollectAsync(cancellationToken)));
            default:
                var shown = name.Length > 64 ? name[..64] : name;
                return new CommandOutcome(false, $"unknown command '{shown}': this agent answers only {Known}");
        }
    }
}
