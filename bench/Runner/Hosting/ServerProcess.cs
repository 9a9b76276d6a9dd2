using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Presence.Runner.Hosting;

/// <summary>
/// A server under test (the gateway or the bare Kestrel baseline) run as its own process on 127.0.0.1 and a free port,
/// from its built dll (no rebuild): output goes to a log file, start-up ends when <c>/healthz</c> answers.
/// </summary>
internal sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Task _logging;
    private Task<int?>? _stopped;

    private ServerProcess(string name, Process process, Uri url, string logPath, Task logging)
    {
        Name = name;
        _process = process;
        Url = url;
        LogPath = logPath;
        _logging = logging;
    }

    public string Name { get; }

    public Uri Url { get; }

    public int Pid { get; private init; }

    /// <summary>The server's standard output and error (complete once <see cref="StopAsync"/> has returned).</summary>
    public string LogPath { get; }

    public long RssBytes => ProcStats.RssBytes(Pid);

    public TimeSpan Cpu => ProcStats.Cpu(Pid);

    public static async Task<ServerProcess> StartAsync(string name, string dll, IEnumerable<string> arguments, string logDir, CancellationToken cancellationToken)
    {
        var port = FreePort();
        var url = new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}");
        Directory.CreateDirectory(logDir);
        var log = Path.Combine(logDir, $"{name}-{port.ToString(CultureInfo.InvariantCulture)}.log");
        var process = ChildProcesses.Start(DotnetStart(dll, ["--urls", url.ToString().TrimEnd('/'), .. arguments]));
        var logging = CopyOutputAsync(process, log);
        var server = new ServerProcess(name, process, url, log, logging) { Pid = process.Id };
        try
        {
            await server.WaitHealthyAsync(log, cancellationToken);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>SIGSTOP: the process keeps its sockets but runs nothing until <see cref="Thaw"/>; its clock keeps going.</summary>
    public void Freeze() => ChildProcesses.Signal(Pid, "STOP");

    public void Thaw() => ChildProcesses.Signal(Pid, "CONT");

    /// <summary>
    /// Graceful stop (SIGTERM, as a service manager would; SIGKILL after 15 s): the server flushes and logs its
    /// shutdown lines. Returns its exit code, or null when it had to be killed. Idempotent.
    /// </summary>
    public Task<int?> StopAsync() => _stopped ??= StopOnceAsync();

    public async ValueTask DisposeAsync() => await StopAsync();

    private async Task<int?> StopOnceAsync()
    {
        ChildProcesses.Signal(Pid, "CONT");
        var exitCode = await ChildProcesses.StopAsync(_process, TimeSpan.FromSeconds(15));
        await _logging;
        return exitCode;
    }

    private async Task WaitHealthyAsync(string log, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.GetTimestamp() + (60 * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{Name} exited during start-up (code {_process.ExitCode}); see {log}");
            }

            try
            {
                using var response = await http.GetAsync(new Uri(Url, "/healthz"), cancellationToken);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                // Not listening yet.
            }

            await Task.Delay(100, cancellationToken);
        }

        throw new TimeoutException($"{Name} did not answer /healthz within 60 s; see {log}");
    }

    /// <summary>How a built program (a dll) is started: by <c>dotnet</c>, output redirected, in the Production environment.</summary>
    internal static ProcessStartInfo DotnetStart(string dll, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            // The content root is the working directory: run where the build put appsettings.json, as a deployment
            // would, or the gateway runs with default Information logging of every request.
            WorkingDirectory = Path.GetDirectoryName(dll),
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(dll);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        return start;
    }

    /// <summary>Copies a child's standard output and error, line by line, to a file.</summary>
    internal static async Task CopyOutputAsync(Process process, string path)
    {
        await using var file = new StreamWriter(path) { AutoFlush = true };
        var gate = new SemaphoreSlim(1, 1);
        async Task CopyAsync(StreamReader reader)
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                await gate.WaitAsync();
                try
                {
                    await file.WriteLineAsync(line);
                }
                finally
                {
                    gate.Release();
                }
            }
        }

        await Task.WhenAll(CopyAsync(process.StandardOutput), CopyAsync(process.StandardError));
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
