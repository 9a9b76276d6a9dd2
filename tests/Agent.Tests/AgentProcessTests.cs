using System.Diagnostics;

namespace Presence.Agent.Tests;

/// <summary>The agent as operators run it: a process that SIGTERM stops with exit code 0.</summary>
public sealed class AgentProcessTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Sigterm_stops_the_agent_with_exit_code_0()
    {
        var port = Connection.HttpAgentTests.ClosedPort();
        using var agent = Start("--server", $"http://127.0.0.1:{port}", "--device-id", "proc-test");
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        agent.OutputDataReceived += (_, line) =>
        {
            if (line.Data is { } text)
            {
                output.Enqueue(text);
                // Logged after the signal handlers are in place, once the first attempt failed.
                if (text.Contains("[5004]", StringComparison.Ordinal))
                {
                    started.TrySetResult();
                }
            }
        };
        agent.BeginOutputReadLine();
        await started.Task.WaitAsync(Bound);

        using (var kill = Process.Start("kill", ["-TERM", agent.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync().WaitAsync(Bound);
            Assert.Equal(0, kill.ExitCode);
        }

        await agent.WaitForExitAsync().WaitAsync(Bound);

        Assert.Equal(0, agent.ExitCode);
        agent.WaitForExit();
        Assert.Contains(output, line => line.Contains("[5017] Presence agent stopped", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_bad_command_line_exits_with_code_2_and_the_usage()
    {
        using var agent = Start("--device-id", "no spaces allowed");
        var error = await agent.StandardError.ReadToEndAsync();
        await agent.WaitForExitAsync().WaitAsync(Bound);

        Assert.Equal(2, agent.ExitCode);
        Assert.Contains("--device-id must be", error, StringComparison.Ordinal);
        Assert.Contains("--proc-root", error, StringComparison.Ordinal);
    }

    private static Process Start(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(typeof(AgentOptions).Assembly.Location);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        return Process.Start(start)!;
    }
}
