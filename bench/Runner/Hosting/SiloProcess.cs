using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Presence.Runner.Hosting;

/// <summary>
/// A cluster silo (src/Silo) run as its own process from its built dll, listening for gateways on a free 127.0.0.1
/// port; output goes to a log file. It serves no HTTP: start-up ends when it logs that it joined the cluster.
/// </summary>
internal sealed partial class SiloProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Task _logging;
    private Task<int?>? _stopped;

    private SiloProcess(string name, Process process, string logPath, Task logging)
    {
        (Name, _process, LogPath, _logging) = (name, process, logPath, logging);
        Pid = process.Id;
    }

    public string Name { get; }

    public int Pid { get; }

    /// <summary>The id it joined with (as <c>GET /api/v1/cluster</c> lists it); set once started.</summary>
    public string SiloId { get; private set; } = "";

    public string LogPath { get; }

    public TimeSpan Cpu => ProcStats.Cpu(Pid);

    public static async Task<SiloProcess> StartAsync(string name, string dll, IEnumerable<string> arguments, string logDir, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(logDir);
        var process = ChildProcesses.Start(ServerProcess.DotnetStart(dll, arguments));
        var log = Path.Combine(logDir, $"{name}-{process.Id.ToString(CultureInfo.InvariantCulture)}.log");
        var silo = new SiloProcess(name, process, log, ServerProcess.CopyOutputAsync(process, log));
        try
        {
            await silo.WaitJoinedAsync(cancellationToken);
            return silo;
        }
        catch
        {
            await silo.DisposeAsync();
            throw;
        }
    }

    /// <summary>SIGKILL: a crash, as gateways and the other silos see it (no hand-off, leases left to expire).</summary>
    public async Task CrashAsync()
    {
        ChildProcesses.Signal(Pid, "KILL");
        await StopAsync();
    }

    /// <summary>Graceful stop (SIGTERM: the silo hands its partitions off, then exits 0; SIGKILL after 15 s). Idempotent.</summary>
    public Task<int?> StopAsync() => _stopped ??= StopOnceAsync();

    public async ValueTask DisposeAsync() => await StopAsync();

    private async Task<int?> StopOnceAsync()
    {
        var exitCode = await ChildProcesses.StopAsync(_process, TimeSpan.FromSeconds(15));
        await _logging;
        return exitCode;
    }

    private async Task WaitJoinedAsync(CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + (60 * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{Name} exited during start-up (code {_process.ExitCode}); see {LogPath}");
            }

            if (File.Exists(LogPath) && JoinedLine().Match(ReadShared(LogPath)) is { Success: true } joined)
            {
                SiloId = joined.Groups[1].Value;
                return;
            }

            await Task.Delay(100, cancellationToken);
        }

        throw new TimeoutException($"{Name} did not join the cluster within 60 s; see {LogPath}");
    }

    /// <summary>The log so far (the copier still has it open for writing).</summary>
    private static string ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    [GeneratedRegex(@"Silo (\S+) joined the cluster at")]
    private static partial Regex JoinedLine();
}
