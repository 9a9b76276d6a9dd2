using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace Presence.Runner.Hosting;

/// <summary>
/// Every process the runner starts, so that none outlives it: listed in a pid file (bench/run.sh's trap kills what is
/// listed there if the runner itself is killed) and killed on exit, Ctrl+C or SIGTERM. Temporary directories (a
/// throwaway database's) are listed in <c>{pidfile}.dirs</c> the same way and deleted after the processes are killed.
/// </summary>
internal static class ChildProcesses
{
    private static readonly Lock Gate = new();
    private static readonly Dictionary<int, Process> Running = [];
    private static readonly List<string> Directories = [];
    private static string? _pidFile;
    private static PosixSignalRegistration? _terminate;

    public static void Install(string? pidFile)
    {
        _pidFile = pidFile;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();
        Console.CancelKeyPress += (_, _) => KillAll();

        // A console program without a host dies on SIGTERM (run.sh's time limit, kill) without raising ProcessExit:
        // the children would outlive it. Killing them here lets the default action (termination) follow.
        _terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => KillAll());
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

    /// <summary>A temporary directory to delete at exit (after the children are killed) unless <see cref="DeleteDirectory"/> ran first.</summary>
    public static void AddDirectory(string path)
    {
        lock (Gate)
        {
            Directories.Add(path);
            WritePidFile();
        }
    }

    /// <summary>Deletes a directory given to <see cref="AddDirectory"/> (its processes must have exited) and forgets it.</summary>
    public static void DeleteDirectory(string path)
    {
        lock (Gate)
        {
            TryDelete(path);
            Directories.Remove(path);
            WritePidFile();
        }
    }

    /// <summary>
    /// Stops a child: <paramref name="signal"/> (SIGTERM unless told), then SIGKILL if it has not exited within
    /// <paramref name="grace"/>. Returns its exit code, or null when it had to be killed.
    /// </summary>
    public static async Task<int?> StopAsync(Process process, TimeSpan grace, string signal = "TERM")
    {
        int? exitCode = null;
        try
        {
            if (!process.HasExited)
            {
                Signal(process.Id, signal);
                using var wait = new CancellationTokenSource(grace);
                try
                {
                    await process.WaitForExitAsync(wait.Token);
                }
                catch (OperationCanceledException)
                {
                    process.Kill(entireProcessTree: true);
                    await process.WaitForExitAsync(CancellationToken.None);
                    return null;
                }
            }

            exitCode = process.ExitCode;
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        finally
        {
            Forget(process);
        }

        return exitCode;
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

            // The killed processes' files may still be open: deleting them is fine on Linux.
            foreach (var directory in Directories)
            {
                TryDelete(directory);
            }

            Directories.Clear();
            WritePidFile();
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"could not delete {path}: {e.Message}");
        }
    }

    private static void WritePidFile()
    {
        if (_pidFile is not null)
        {
            File.WriteAllLines(_pidFile, Running.Keys.Select(k => k.ToString(CultureInfo.InvariantCulture)));
            File.WriteAllLines(_pidFile + ".dirs", Directories);
        }
    }
}
