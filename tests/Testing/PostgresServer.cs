using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Presence.Testing;

/// <summary>
/// A throwaway PostgreSQL server for tests: its own data directory in a fresh temporary directory, listening only on
/// 127.0.0.1 at a free port, with its Unix socket inside that directory, so it collides with neither a system server
/// nor another test run. It can be stopped, crashed and started again on the same port to simulate outages; disposing
/// it stops it and deletes the directory.
/// </summary>
/// <remarks>
/// The binaries come from <c>/usr/lib/postgresql/15/bin</c> or <c>$PRESENCE_PG_BIN</c>. PostgreSQL refuses to run
/// as root, so when the tests do, initdb and pg_ctl run as the <c>postgres</c> user through <c>runuser</c> and the
/// directory belongs to that user. Linux only (the server's state is read from <c>/proc</c>).
/// </remarks>
public sealed class PostgresServer : IAsyncDisposable
{
    private const string DefaultBinDirectory = "/usr/lib/postgresql/15/bin";
    private const string BinDirectoryVariable = "PRESENCE_PG_BIN";
    private const string OsUser = "postgres";
    private const string Superuser = "postgres";
    private const int PortAttempts = 5;
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Servers not disposed yet; stopped and deleted at process exit should a test run leave them.</summary>
    private static readonly ConcurrentDictionary<PostgresServer, byte> Undisposed = new();

    private readonly string _binDirectory;
    private readonly string _directory;
    private readonly string _logFile;
    private int _databases;

    static PostgresServer() => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        foreach (var server in Undisposed.Keys)
        {
            server.CleanUpAtExit();
        }
    };

    private PostgresServer(string binDirectory)
    {
        _binDirectory = binDirectory;
        // Under /tmp when root: the postgres user must be able to reach the directory, which it cannot under
        // root's own temporary directory, should TMPDIR point there.
        var parent = RunsAsOsUser ? "/tmp" : Path.GetTempPath();
        _directory = Path.Combine(parent, "presence-pg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(_directory);
        DataDirectory = Path.Combine(_directory, "data");
        _logFile = Path.Combine(_directory, "server.log");
        Undisposed.TryAdd(this, 0);
    }

    /// <summary>The TCP port on 127.0.0.1; the same for the server's whole life, restarts included.</summary>
    public int Port { get; private set; }

    /// <summary>The server's data directory (inside the temporary directory that disposing deletes).</summary>
    public string DataDirectory { get; }

    /// <summary>A superuser connection string to the database <c>postgres</c> (trust authentication, pooling on).</summary>
    public string ConnectionString => ConnectionStringFor("postgres").ConnectionString;

    /// <summary>Whether the server process (the postmaster) is running.</summary>
    public bool IsRunning
    {
        get
        {
            // postmaster.pid outlives a killed server, and a postmaster that has exited may linger as a zombie when
            // nothing reaps it (pg_ctl detaches it), so the process's own state decides.
            string stat;
            try
            {
                var pid = File.ReadLines(Path.Combine(DataDirectory, "postmaster.pid")).FirstOrDefault();
                if (!int.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
                {
                    return false;
                }

                stat = File.ReadAllText($"/proc/{id}/stat");
            }
            catch (IOException)
            {
                return false;
            }

            return stat[stat.LastIndexOf(')') + 2] is not ('Z' or 'X');
        }
    }

    private static bool RunsAsOsUser => Environment.IsPrivilegedProcess;

    /// <summary>
    /// Creates a data directory with initdb and starts a server on it at a free port; returns once it accepts
    /// connections.
    /// </summary>
    /// <exception cref="InvalidOperationException">The binaries are missing, or initdb or the server failed.</exception>
    public static async Task<PostgresServer> StartAsync(CancellationToken cancellationToken = default)
    {
        var server = new PostgresServer(FindBinDirectory());
        try
        {
            await server.InitializeAsync(cancellationToken).ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Creates a fresh, empty database with a unique name; returns a connection string for it.</summary>
    public async Task<string> CreateDatabaseAsync(CancellationToken cancellationToken = default)
    {
        var name = "test_" + Interlocked.Increment(ref _databases).ToString(CultureInfo.InvariantCulture);
        var connection = new NpgsqlConnection(AdminConnectionString());
        await using (connection.ConfigureAwait(false))
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await using (command.ConfigureAwait(false))
            {
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        return ConnectionStringFor(name).ConnectionString;
    }

    /// <summary>
    /// Fast shutdown (<c>pg_ctl stop -m fast</c>), as in an outage: clients' connections break and new ones are
    /// refused. Connections left in a client's pool are broken after <see cref="StartAgainAsync"/>, as they would be
    /// in production.
    /// </summary>
    public Task StopAsync(CancellationToken cancellationToken = default) =>
        ShutDownAsync("fast", cancellationToken);

    /// <summary>
    /// Immediate shutdown (<c>pg_ctl stop -m immediate</c>), as in a crash: no checkpoint; the next start recovers
    /// committed transactions from the WAL.
    /// </summary>
    public Task CrashAsync(CancellationToken cancellationToken = default) =>
        ShutDownAsync("immediate", cancellationToken);

    /// <summary>
    /// Starts the same data directory again on the same port, ending an outage; returns once it accepts connections.
    /// </summary>
    public async Task StartAgainAsync(CancellationToken cancellationToken = default)
    {
        await StartServerAsync(cancellationToken).ConfigureAwait(false);
        await WaitUntilReadyAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops the server if it runs (immediate shutdown) and deletes its directory.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!Undisposed.TryRemove(this, out _))
        {
            return;
        }

        try
        {
            if (IsRunning)
            {
                await ShutDownAsync("immediate", CancellationToken.None).ConfigureAwait(false);
            }
        }
        finally
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private static string FindBinDirectory()
    {
        var bin = Environment.GetEnvironmentVariable(BinDirectoryVariable) is { Length: > 0 } configured
            ? configured
            : DefaultBinDirectory;
        if (!File.Exists(Path.Combine(bin, "initdb")) || !File.Exists(Path.Combine(bin, "pg_ctl")))
        {
            throw new InvalidOperationException(
                $"PostgreSQL server binaries (initdb, pg_ctl) not found in {bin}. Run ./test.sh, which installs the " +
                $"Debian package 'postgresql' (scripts/ensure-postgres.sh), or set {BinDirectoryVariable} to the " +
                "directory that holds them.");
        }

        return bin;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private async Task InitializeAsync(CancellationToken cancellationToken)
    {
        if (RunsAsOsUser)
        {
            await RunAsync(StartInfo("chown", [$"{OsUser}:{OsUser}", _directory]), cancellationToken)
                .ConfigureAwait(false);
        }

        string[] initdb =
        [
            "-D", DataDirectory, "-U", Superuser, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync",
            "--no-instructions",
        ];
        await RunAsync(ToolStartInfo("initdb", initdb), cancellationToken).ConfigureAwait(false);
        // fsync=off only loses data when the operating system crashes; a crashed server or client loses nothing.
        await File.AppendAllLinesAsync(
            Path.Combine(DataDirectory, "postgresql.conf"),
            [
                "# Presence tests (tests/Testing/PostgresServer.cs)",
                "listen_addresses = '127.0.0.1'",
                $"unix_socket_directories = '{_directory}'",
                "max_connections = 200",
                "shared_buffers = 64MB",
                "fsync = off",
                "synchronous_commit = on",
                "full_page_writes = off",
                "logging_collector = off",
            ],
            cancellationToken).ConfigureAwait(false);

        // The port is free when picked but may be taken before the server binds it; then another one is tried.
        for (var attempt = 1; ; attempt++)
        {
            Port = FreePort();
            var logLength = File.Exists(_logFile) ? new FileInfo(_logFile).Length : 0;
            try
            {
                await StartServerAsync(cancellationToken).ConfigureAwait(false);
                break;
            }
            catch (InvalidOperationException) when (attempt < PortAttempts && PortWasTaken(logLength))
            {
            }
        }

        await WaitUntilReadyAsync(cancellationToken).ConfigureAwait(false);
    }

    private bool PortWasTaken(long logLength)
    {
        if (!File.Exists(_logFile))
        {
            return false;
        }

        using var log = File.OpenRead(_logFile);
        log.Seek(logLength, SeekOrigin.Begin);
        using var reader = new StreamReader(log);
        return reader.ReadToEnd().Contains("Address already in use", StringComparison.Ordinal);
    }

    private Task StartServerAsync(CancellationToken cancellationToken) =>
        RunAsync(
            ToolStartInfo(
                "pg_ctl",
                ["start", "-w", "-t", "30", "-D", DataDirectory, "-l", _logFile, "-o", $"-p {Port}"]),
            cancellationToken);

    private Task ShutDownAsync(string mode, CancellationToken cancellationToken) =>
        RunAsync(ToolStartInfo("pg_ctl", ["stop", "-w", "-t", "30", "-D", DataDirectory, "-m", mode]), cancellationToken);

    private async Task WaitUntilReadyAsync(CancellationToken cancellationToken)
    {
        // pg_ctl -w has waited for the server to report itself ready; this confirms it from a client's side. Waiting
        // for another process to accept connections can only be done by trying, so this polls, bounded by
        // ReadyTimeout.
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            try
            {
                var connection = new NpgsqlConnection(AdminConnectionString());
                await using (connection.ConfigureAwait(false))
                {
                    await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
                    return;
                }
            }
            catch (NpgsqlException e)
            {
                if (Stopwatch.GetElapsedTime(started) > ReadyTimeout)
                {
                    throw new InvalidOperationException(
                        $"PostgreSQL on port {Port} did not accept connections within {ReadyTimeout.TotalSeconds} s." +
                        LogTail(),
                        e);
                }
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), cancellationToken).ConfigureAwait(false);
        }
    }

    private NpgsqlConnectionStringBuilder ConnectionStringFor(string database) => new()
    {
        Host = "127.0.0.1",
        Port = Port,
        Username = Superuser,
        Database = database,
    };

    /// <summary>For the fixture's own work: unpooled, so no connection broken by an outage is ever reused.</summary>
    private string AdminConnectionString()
    {
        var builder = ConnectionStringFor("postgres");
        builder.Pooling = false;
        builder.Timeout = 5;
        return builder.ConnectionString;
    }

    private ProcessStartInfo ToolStartInfo(string tool, IEnumerable<string> arguments)
    {
        var program = Path.Combine(_binDirectory, tool);
        return RunsAsOsUser
            ? StartInfo("runuser", ["-u", OsUser, "--", program, .. arguments])
            : StartInfo(program, arguments);
    }

    /// <summary>
    /// Runs in the server's directory: the tools complain about a working directory the postgres user cannot enter
    /// (such as root's home).
    /// </summary>
    private ProcessStartInfo StartInfo(string program, IEnumerable<string> arguments) => new(program, arguments)
    {
        WorkingDirectory = _directory,
        RedirectStandardOutput = true,
        RedirectStandardError = true,
        UseShellExecute = false,
    };

    private async Task RunAsync(ProcessStartInfo info, CancellationToken cancellationToken)
    {
        using var process = Process.Start(info)
            ?? throw new InvalidOperationException($"Could not start {info.FileName}.");
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        var text = (await output.ConfigureAwait(false) + await errors.ConfigureAwait(false)).Trim();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"{info.FileName} {string.Join(' ', info.ArgumentList)} exited with {process.ExitCode}:\n{text}" +
                LogTail());
        }
    }

    private string LogTail()
    {
        if (!File.Exists(_logFile))
        {
            return string.Empty;
        }

        var lines = File.ReadAllLines(_logFile);
        return $"\nServer log ({_logFile}), last lines:\n" + string.Join('\n', lines.TakeLast(30));
    }

    /// <summary>Best effort at process exit, when nothing can be awaited: immediate shutdown, then deletion.</summary>
    private void CleanUpAtExit()
    {
        try
        {
            if (IsRunning)
            {
                using var process = Process.Start(
                    ToolStartInfo("pg_ctl", ["stop", "-w", "-t", "10", "-D", DataDirectory, "-m", "immediate"]));
                process?.WaitForExit(TimeSpan.FromSeconds(15));
            }

            Directory.Delete(_directory, recursive: true);
        }
        catch (Exception)
        {
            // Nothing is left to report to at process exit.
        }
    }
}
