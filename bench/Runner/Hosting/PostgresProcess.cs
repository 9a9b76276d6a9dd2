using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;

namespace Presence.Runner.Hosting;

/// <summary>
/// A throwaway PostgreSQL server for a benchmark: initdb'd into a fresh temporary directory, listening only on
/// 127.0.0.1 at a free port (its Unix socket inside that directory), run as a child of the runner, so it is listed in
/// the pid file like every other child and its directory is deleted however the run ends. PostgreSQL refuses to run
/// as root: when the runner is root, initdb and psql run as the <c>postgres</c> user through <c>runuser</c>, and the
/// server through <c>setpriv</c>, which execs it (so the pid the runner tracks is the postmaster's own).
/// </summary>
/// <remarks>
/// Settings (<see cref="Settings"/>): durability as in production (<c>fsync</c>, <c>synchronous_commit</c> and
/// <c>full_page_writes</c> on), 256 MB of shared buffers, and checkpoints spaced out (<c>max_wal_size</c> 4 GB,
/// <c>checkpoint_timeout</c> 30 min) so that none falls inside a run of a few minutes; the rest are defaults.
/// </remarks>
internal sealed class PostgresProcess : IAsyncDisposable
{
    public const string DefaultBinDirectory = "/usr/lib/postgresql/15/bin";
    private const string OsUser = "postgres";
    private const string Superuser = "postgres";
    private static readonly TimeSpan ToolBound = TimeSpan.FromSeconds(120);

    private readonly Process _process;
    private readonly Task _logging;
    private readonly string _directory;
    private Task? _stopped;

    private PostgresProcess(string binDirectory, string directory, int port, Process process, Task logging, string logPath, IReadOnlyList<string> settings)
    {
        BinDirectory = binDirectory;
        _directory = directory;
        Port = port;
        _process = process;
        _logging = logging;
        LogPath = logPath;
        Settings = settings;
        Pid = process.Id;
    }

    public string BinDirectory { get; }

    public int Port { get; }

    /// <summary>The postmaster's pid: the backends are its children.</summary>
    public int Pid { get; }

    public string LogPath { get; }

    /// <summary>The lines appended to postgresql.conf.</summary>
    public IReadOnlyList<string> Settings { get; }

    /// <summary>Whether pg_stat_statements is loaded (see <see cref="StatementsAsync"/>).</summary>
    public bool HasStatements { get; private set; }

    private static bool AsOsUser => Environment.IsPrivilegedProcess;

    /// <summary>
    /// The directory holding initdb, postgres and psql (<paramref name="configured"/>, <c>$PRESENCE_PG_BIN</c>,
    /// <see cref="DefaultBinDirectory"/>, or the newest <c>/usr/lib/postgresql/*/bin</c>), or null and why not.
    /// </summary>
    public static (string? Directory, string? Missing) FindBinaries(string? configured)
    {
        var candidates = new List<string>();
        if (!string.IsNullOrWhiteSpace(configured))
        {
            candidates.Add(configured);
        }
        else
        {
            if (Environment.GetEnvironmentVariable("PRESENCE_PG_BIN") is { Length: > 0 } variable)
            {
                candidates.Add(variable);
            }

            candidates.Add(DefaultBinDirectory);
            if (Directory.Exists("/usr/lib/postgresql"))
            {
                candidates.AddRange(Directory.GetDirectories("/usr/lib/postgresql")
                    .OrderByDescending(d => int.TryParse(Path.GetFileName(d), out var version) ? version : 0)
                    .Select(d => Path.Combine(d, "bin")));
            }
        }

        foreach (var candidate in candidates)
        {
            if (new[] { "initdb", "postgres", "psql" }.All(tool => File.Exists(Path.Combine(candidate, tool))))
            {
                if (AsOsUser && !File.ReadLines("/etc/passwd").Any(l => l.StartsWith(OsUser + ":", StringComparison.Ordinal)))
                {
                    return (null, $"running as root, and there is no '{OsUser}' user to run PostgreSQL as");
                }

                return (candidate, null);
            }
        }

        return (null, $"PostgreSQL server binaries (initdb, postgres, psql) not found in {string.Join(", ", candidates.Distinct())}; " +
            "install the Debian package 'postgresql' (scripts/ensure-postgres.sh) or pass --pg-bin DIR");
    }

    /// <summary>initdb, then the server on a free port; returns once it accepts connections.</summary>
    public static async Task<PostgresProcess> StartAsync(string binDirectory, string logDir, bool statements, CancellationToken cancellationToken)
    {
        // Under /tmp when root: the postgres user must be able to reach the directory.
        var parent = AsOsUser ? "/tmp" : Path.GetTempPath();
        var directory = Path.Combine(parent, "presence-bench-pg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(directory);
        ChildProcesses.AddDirectory(directory);
        try
        {
            if (AsOsUser)
            {
                await RunAsync(new ProcessStartInfo("chown", [$"{OsUser}:{OsUser}", directory]), directory, cancellationToken);
            }

            var data = Path.Combine(directory, "data");
            await RunAsync(Tool(binDirectory, "initdb",
                ["-D", data, "-U", Superuser, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"]), directory, cancellationToken);
            var withStatements = statements && File.Exists(Path.Combine(LibDirectory(binDirectory), "pg_stat_statements.so"));
            List<string> settings =
            [
                "listen_addresses = '127.0.0.1'",
                $"unix_socket_directories = '{directory}'",
                "shared_buffers = 256MB",
                "fsync = on",
                "synchronous_commit = on",
                "full_page_writes = on",
                "max_wal_size = 4GB",
                "checkpoint_timeout = 30min",
                "log_checkpoints = on",
                "logging_collector = off",
            ];
            if (withStatements)
            {
                settings.Add("shared_preload_libraries = 'pg_stat_statements'");
                settings.Add("pg_stat_statements.max = 1000");
            }

            await File.AppendAllLinesAsync(Path.Combine(data, "postgresql.conf"), ["# Presence benchmark (bench/Runner/Hosting/PostgresProcess.cs)", .. settings], cancellationToken);

            Directory.CreateDirectory(logDir);
            for (var attempt = 1; ; attempt++)
            {
                var port = ServerProcess.FreePort();
                var logPath = Path.Combine(logDir, $"postgres-{port.ToString(CultureInfo.InvariantCulture)}.log");
                var start = AsOsUser && File.Exists("/usr/bin/setpriv")
                    ? new ProcessStartInfo("/usr/bin/setpriv", ["--reuid=" + OsUser, "--regid=" + OsUser, "--init-groups", "--",
                        Path.Combine(binDirectory, "postgres"), "-D", data, "-p", port.ToString(CultureInfo.InvariantCulture)])
                    : Tool(binDirectory, "postgres", ["-D", data, "-p", port.ToString(CultureInfo.InvariantCulture)]);
                start.WorkingDirectory = directory;
                start.RedirectStandardOutput = true;
                start.RedirectStandardError = true;
                start.UseShellExecute = false;
                var process = ChildProcesses.Start(start);
                var server = new PostgresProcess(binDirectory, directory, port, process, ServerProcess.CopyOutputAsync(process, logPath), logPath, settings);
                try
                {
                    await server.WaitReadyAsync(cancellationToken);
                }
                catch (InvalidOperationException) when (attempt < 5 && process.HasExited && File.ReadAllText(logPath).Contains("Address already in use", StringComparison.Ordinal))
                {
                    await server.StopAsync(keepDirectory: true);
                    continue; // the free port was taken before the server bound it
                }
                catch
                {
                    await server.DisposeAsync();
                    throw;
                }

                if (withStatements)
                {
                    try
                    {
                        await server.QueryAsync("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", cancellationToken: cancellationToken);
                        server.HasStatements = true;
                    }
                    catch
                    {
                        await server.DisposeAsync();
                        throw;
                    }
                }

                return server;
            }
        }
        catch
        {
            ChildProcesses.DeleteDirectory(directory);
            throw;
        }
    }

    public string ConnectionString(string database) =>
        $"Host=127.0.0.1;Port={Port.ToString(CultureInfo.InvariantCulture)};Username={Superuser};Database={database}";

    public Task CreateDatabaseAsync(string name, CancellationToken cancellationToken) =>
        QueryAsync($"CREATE DATABASE {name}", cancellationToken: cancellationToken);

    /// <summary>Runs SQL with psql (unaligned, tab-separated, no headers); returns the rows' fields.</summary>
    public async Task<List<string[]>> QueryAsync(string sql, string database = "postgres", CancellationToken cancellationToken = default)
    {
        var start = new ProcessStartInfo(Path.Combine(BinDirectory, "psql"),
            ["-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", Port.ToString(CultureInfo.InvariantCulture),
             "-U", Superuser, "-d", database, "-c", sql]);
        start.Environment["PGCONNECT_TIMEOUT"] = "5";
        var output = await RunAsync(start, _directory, cancellationToken);
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => line.Split('\t')).ToList();
    }

    public async Task<JsonObject> DescribeAsync(CancellationToken cancellationToken)
    {
        var version = (await QueryAsync("SHOW server_version", cancellationToken: cancellationToken))[0][0];
        return new JsonObject
        {
            ["version"] = version,
            ["bin"] = BinDirectory,
            ["port"] = Port,
            ["run_as"] = AsOsUser ? OsUser : Environment.UserName,
            ["settings"] = new JsonArray([.. Settings.Select(s => (JsonNode)s)]),
            ["pg_stat_statements"] = HasStatements,
        };
    }

    /// <summary>Bytes of WAL written so far (the current WAL position).</summary>
    public async Task<long> WalBytesAsync(CancellationToken cancellationToken) =>
        long.Parse((await QueryAsync("SELECT pg_current_wal_lsn() - '0/0'", cancellationToken: cancellationToken))[0][0], NumberStyles.Float, CultureInfo.InvariantCulture);

    /// <summary>pg_stat_statements of one database now (empty when it is not loaded): calls, rows, time and WAL per statement.</summary>
    public async Task<Dictionary<string, Statement>> StatementsAsync(string database, CancellationToken cancellationToken)
    {
        var statements = new Dictionary<string, Statement>(StringComparer.Ordinal);
        if (!HasStatements)
        {
            return statements;
        }

        var rows = await QueryAsync(
            "SELECT s.queryid, s.calls, s.rows, s.total_exec_time, s.wal_bytes, regexp_replace(left(s.query, 90), '\\s+', ' ', 'g') " +
            $"FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '{database}'", cancellationToken: cancellationToken);
        foreach (var row in rows.Where(r => r.Length >= 6))
        {
            statements[row[0]] = new Statement(
                long.Parse(row[1], CultureInfo.InvariantCulture), long.Parse(row[2], CultureInfo.InvariantCulture),
                double.Parse(row[3], CultureInfo.InvariantCulture), double.Parse(row[4], CultureInfo.InvariantCulture), row[5]);
        }

        return statements;
    }

    /// <summary>
    /// What each statement did between two <see cref="StatementsAsync"/> samples, by execution time (the top
    /// <paramref name="top"/>), and the totals.
    /// </summary>
    public static JsonObject StatementsDelta(Dictionary<string, Statement> before, Dictionary<string, Statement> after, int top = 8)
    {
        var deltas = after
            .Select(a => (a.Value.Query, Delta: before.TryGetValue(a.Key, out var b) ? a.Value - b : a.Value))
            .Where(d => d.Delta.Calls > 0)
            .OrderByDescending(d => d.Delta.ExecMs)
            .ToList();
        var list = new JsonArray();
        foreach (var (query, delta) in deltas.Take(top))
        {
            list.Add(new JsonObject
            {
                ["query"] = query,
                ["calls"] = delta.Calls,
                ["rows"] = delta.Rows,
                ["exec_ms"] = Math.Round(delta.ExecMs, 1),
                ["wal_mb"] = Math.Round(delta.WalBytes / 1048576.0, 2),
            });
        }

        return new JsonObject
        {
            ["calls"] = deltas.Sum(d => d.Delta.Calls),
            ["exec_ms"] = Math.Round(deltas.Sum(d => d.Delta.ExecMs), 1),
            ["top_by_exec_time"] = list,
        };
    }

    /// <summary>Calls in a delta of statements whose text starts with <paramref name="prefix"/>.</summary>
    public static (long Calls, long Rows) Count(Dictionary<string, Statement> before, Dictionary<string, Statement> after, string prefix)
    {
        long calls = 0, rows = 0;
        foreach (var (id, statement) in after)
        {
            if (statement.Query.StartsWith(prefix, StringComparison.Ordinal))
            {
                var delta = before.TryGetValue(id, out var b) ? statement - b : statement;
                calls += delta.Calls;
                rows += delta.Rows;
            }
        }

        return (calls, rows);
    }

    /// <summary>CPU seconds of the postmaster and its children, live or exited (see LoadGen's <c>--db-pid</c>).</summary>
    public double CpuSeconds()
    {
        static string[] Fields(string stat) => stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var main = Fields(File.ReadAllText($"/proc/{Pid}/stat"));
        var ticks = long.Parse(main[11], CultureInfo.InvariantCulture) + long.Parse(main[12], CultureInfo.InvariantCulture)
            + long.Parse(main[13], CultureInfo.InvariantCulture) + long.Parse(main[14], CultureInfo.InvariantCulture);
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                var name = Path.GetFileName(dir);
                if (char.IsAsciiDigit(name[0]) && name != Pid.ToString(CultureInfo.InvariantCulture))
                {
                    var fields = Fields(File.ReadAllText(Path.Combine(dir, "stat")));
                    if (fields[1] == Pid.ToString(CultureInfo.InvariantCulture))
                    {
                        ticks += long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
                    }
                }
            }
            catch (IOException)
            {
                // Ended meanwhile.
            }
        }

        return ticks / 100.0;
    }

    /// <summary>Fast shutdown (SIGINT: sessions are ended, a checkpoint is written), then the directory is deleted.</summary>
    public async ValueTask DisposeAsync() => await StopAsync(keepDirectory: false);

    private Task StopAsync(bool keepDirectory) => _stopped ??= StopOnceAsync(keepDirectory);

    private async Task StopOnceAsync(bool keepDirectory)
    {
        await ChildProcesses.StopAsync(_process, TimeSpan.FromSeconds(30), "INT");
        await _logging;
        if (!keepDirectory)
        {
            ChildProcesses.DeleteDirectory(_directory);
        }
    }

    private async Task WaitReadyAsync(CancellationToken cancellationToken)
    {
        // The server says it is ready in its log; a client connecting is the proof. Bounded polling.
        var deadline = Stopwatch.GetTimestamp() + (30 * Stopwatch.Frequency);
        while (true)
        {
            if (_process.HasExited)
            {
                await _logging;
                throw new InvalidOperationException($"PostgreSQL exited during start-up; see {LogPath}");
            }

            try
            {
                await QueryAsync("SELECT 1", cancellationToken: cancellationToken);
                return;
            }
            catch (InvalidOperationException) when (Stopwatch.GetTimestamp() < deadline)
            {
                await Task.Delay(100, cancellationToken);
            }
        }
    }

    private static string LibDirectory(string binDirectory)
    {
        var pgConfig = Path.Combine(binDirectory, "pg_config");
        if (File.Exists(pgConfig))
        {
            using var process = Process.Start(new ProcessStartInfo(pgConfig, ["--pkglibdir"]) { RedirectStandardOutput = true, UseShellExecute = false });
            if (process is not null)
            {
                var output = process.StandardOutput.ReadToEnd().Trim();
                process.WaitForExit(10_000);
                if (output.Length > 0)
                {
                    return output;
                }
            }
        }

        return Path.Combine(Path.GetDirectoryName(binDirectory)!, "lib");
    }

    private static ProcessStartInfo Tool(string binDirectory, string tool, IEnumerable<string> arguments)
    {
        var program = Path.Combine(binDirectory, tool);
        return AsOsUser ? new ProcessStartInfo("runuser", ["-u", OsUser, "--", program, .. arguments]) : new ProcessStartInfo(program, arguments);
    }

    /// <summary>Runs a tool to its end (bounded), in the server's directory; its output, or an error with it.</summary>
    private static async Task<string> RunAsync(ProcessStartInfo start, string workingDirectory, CancellationToken cancellationToken)
    {
        start.WorkingDirectory = workingDirectory; // the postgres user cannot enter root's home
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        var process = ChildProcesses.Start(start);
        try
        {
            var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var errors = process.StandardError.ReadToEndAsync(cancellationToken);
            using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            bound.CancelAfter(ToolBound);
            await process.WaitForExitAsync(bound.Token);
            var text = await output;
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"{start.FileName} {string.Join(' ', start.ArgumentList)} exited with {process.ExitCode}: {(text + await errors).Trim()}");
            }

            return text;
        }
        finally
        {
            await ChildProcesses.StopAsync(process, TimeSpan.FromSeconds(5));
        }
    }

    /// <summary>One statement's cumulative pg_stat_statements counters.</summary>
    internal readonly record struct Statement(long Calls, long Rows, double ExecMs, double WalBytes, string Query)
    {
        public static Statement operator -(Statement a, Statement b) =>
            new(a.Calls - b.Calls, a.Rows - b.Rows, a.ExecMs - b.ExecMs, a.WalBytes - b.WalBytes, a.Query);
    }
}
