using System.Diagnostics;
using System.Globalization;

namespace Presence.Runner.Hosting;

/// <summary>
/// Every process the runner starts, so that none outlives it: listed in a pid file (bench/run.sh's trap kills what is
/// listed there if the runner itself is killed) and killed on exit, Ctrl+C or SIGTERM.
/// </summary>
internal static class ChildProcesses
{
    private static readonly Lock Gate = new();
    private static readonly Dictionary<int, Process> Running = [];
    private static string? _pidFile;

    public static void Install(string? pidFile)
    {
        _pidFile = pidFile;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();
        Console.CancelKeyPress += (_, _) => KillAll();
    }

    public static Process Start(ProcessStartInfo start)
    {
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {start.FileName}");
        lock (Gate)
        {
            Running[process.Id] = process;
            WritePidFile();
        }

        return process;
    }

    /// <summary>Stops a child: SIGTERM, then SIGKILL if it has not exited within <paramref name="grace"/>.</summary>
    public static async Task StopAsync(Process process, TimeSpan grace)
    {
        try
        {
            if (!process.HasExited)
            {
                Signal(process.Id, "TERM");
                using var wait = new CancellationTokenSource(grace);
                try
                {
                    await process.WaitForExitAsync(wait.Token);
                }
                catch (OperationCanceledException)
                {
                    process.Kill(entireProcessTree: true);
                    await process.WaitForExitAsync(CancellationToken.None);
                }
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        finally
        {
            Forget(process);
        }
    }

    /// <summary>Sends a signal (TERM, STOP, CONT) with kill(1): no native interop in the runner.</summary>
    public static void Signal(int pid, string signal)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", [$"-{signal}", pid.ToString(CultureInfo.InvariantCulture)]) { UseShellExecute = false });
        kill?.WaitForExit(5_000);
    }

    private static void Forget(Process process)
    {
        lock (Gate)
        {
            Running.Remove(process.Id);
            WritePidFile();
        }

        process.Dispose();
    }

    private static void KillAll()
    {
        lock (Gate)
        {
            foreach (var process in Running.Values)
            {
                try
                {
                    // A frozen (SIGSTOP) process still dies on SIGKILL.
                    process.Kill(entireProcessTree: true);
                }
                catch (InvalidOperationException)
                {
                }
            }

            Running.Clear();
            WritePidFile();
        }
    }

    private static void WritePidFile()
    {
        if (_pidFile is not null)
        {
            File.WriteAllLines(_pidFile, Running.Keys.Select(k => k.ToString(CultureInfo.InvariantCulture)));
        }
    }
}
