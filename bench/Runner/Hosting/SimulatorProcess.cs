using System.Diagnostics;
using Presence.Agent.Simulation;

namespace Presence.Runner.Hosting;

/// <summary>
/// Runs the fleet simulator (<c>src/Agent --simulate</c>) as its own process, as an operator would, shows its
/// progress lines as they come, and reads the summary it prints last (one JSON line).
/// </summary>
internal static class SimulatorProcess
{
    public static async Task<FleetSummary> RunAsync(BenchPaths paths, IReadOnlyList<string> arguments, TimeSpan bound, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(paths.Agent);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        Console.WriteLine($"    presence-agent {string.Join(' ', arguments)}");
        var process = ChildProcesses.Start(start);
        try
        {
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(bound);
            string? last = null;
            while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            {
                if (!line.StartsWith('{'))
                {
                    Console.WriteLine($"    | {line}");
                }

                last = line;
            }

            await process.WaitForExitAsync(timeout.Token);
            var summary = last is not null && last.StartsWith('{') ? FleetSummary.FromJson(last) : null;
            return summary ?? throw new InvalidOperationException($"the simulator printed no summary (exit {process.ExitCode}): {await stderr}");
        }
        finally
        {
            await ChildProcesses.StopAsync(process, TimeSpan.FromSeconds(5));
        }
    }
}
