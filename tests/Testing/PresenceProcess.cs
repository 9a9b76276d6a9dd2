using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;

namespace Presence.Testing;

/// <summary>
/// One Presence program (<c>dotnet Presence.X.dll</c> from <c>src/X/bin</c>, built in the configuration these tests
/// were built in) as a child process, with its stdout and stderr captured line by line so a test can await a log
/// line. Disposing kills it if it still runs.
/// </summary>
public sealed class PresenceProcess : IAsyncDisposable
{
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly List<(Regex Pattern, TaskCompletionSource<Match> Seen)> _waiters = [];

    private PresenceProcess(Process process, string name)
    {
        _process = process;
        Name = name;
    }

    /// <summary>A short name for messages (<c>silo-1</c>, <c>gateway-2</c>).</summary>
    public string Name { get; }

    /// <summary>The process id (kept: it stays readable after the process is disposed).</summary>
    public int Id { get; private set; }

    public bool HasExited => _process.HasExited;

    /// <summary>What the process wrote to stdout and stderr so far.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary><c>src/{project}/bin/{Configuration}/net10.0/{dll}</c> of the repository these tests were built from.</summary>
    public static string BuildOutput(string project, string dll)
    {
        var configuration = typeof(PresenceProcess).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Presence.sln")))
        {
            directory = directory.Parent;
        }

        Assert.True(directory is not null, $"no Presence.sln above {AppContext.BaseDirectory}");
        var path = Path.Combine(directory!.FullName, "src", project, "bin", configuration, "net10.0", dll);
        Assert.True(File.Exists(path), $"{path} does not exist: build Presence.sln in {configuration}");
        return path;
    }

    public static PresenceProcess Start(string name, string dll, IEnumerable<string> arguments)
    {
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet")
        {
            WorkingDirectory = Path.GetDirectoryName(dll)!,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(dll);
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment.Remove("ASPNETCORE_URLS");
        var process = new Process { StartInfo = info };
        var child = new PresenceProcess(process, name);
        process.OutputDataReceived += (_, e) => child.Append(e.Data);
        process.ErrorDataReceived += (_, e) => child.Append(e.Data);
        process.Start();
        child.Id = process.Id;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>
    /// The first output line (already written or still to come) that matches <paramref name="pattern"/>; fails when
    /// the process exits first or the line does not come within <paramref name="timeout"/>.
    /// </summary>
    public async Task<Match> WaitForLineAsync(Regex pattern, TimeSpan timeout)
    {
        var seen = new TaskCompletionSource<Match>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_output)
        {
            var match = pattern.Match(_output.ToString());
            if (match.Success)
            {
                return match;
            }

            _waiters.Add((pattern, seen));
        }

        var exited = _process.WaitForExitAsync();
        try
        {
            var first = await Task.WhenAny(seen.Task, exited).WaitAsync(timeout);
            if (first != seen.Task)
            {
                Assert.Fail($"{Name} exited with {_process.ExitCode} before logging /{pattern}/:\n{Output}");
            }

            return await seen.Task;
        }
        catch (TimeoutException)
        {
            Assert.Fail($"{Name} did not log /{pattern}/ within {timeout.TotalSeconds} s:\n{Output}");
            throw;
        }
    }

    /// <summary>The next output line, written from now on, that matches <paramref name="pattern"/> (never completes once the process is gone).</summary>
    public Task<Match> NextLineAsync(Regex pattern)
    {
        var seen = new TaskCompletionSource<Match>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_output)
        {
            _waiters.Add((pattern, seen));
        }

        return seen.Task;
    }

    /// <summary><c>kill -9</c> of the process and its children: no shutdown, no flush.</summary>
    public async Task KillAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync().WaitAsync(ExitTimeout);
    }

    /// <summary>SIGTERM (what an operator's stop does), then the exit within <paramref name="timeout"/>; returns the exit code.</summary>
    public async Task<int> TerminateAsync(TimeSpan timeout)
    {
        using (var kill = Process.Start("kill", ["-TERM", Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
            Assert.Equal(0, kill.ExitCode);
        }

        try
        {
            await _process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"{Name} did not exit within {timeout.TotalSeconds} s of SIGTERM:\n{Output}");
        }

        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync().WaitAsync(ExitTimeout);
            }
        }
        finally
        {
            _process.Dispose();
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
            // Each pattern is matched against the line alone (the console formatter may put the message on the
            // line after its category).
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                var match = _waiters[i].Pattern.Match(line);
                if (match.Success)
                {
                    _waiters[i].Seen.TrySetResult(match);
                    _waiters.RemoveAt(i);
                }
            }
        }
    }
}
