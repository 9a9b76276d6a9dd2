using System.Globalization;

namespace Presence.LoadGen;

/// <summary>How device ids are chosen: uniformly at random from the id space, or each id in turn (registration runs).</summary>
public enum IdMode
{
    Random,
    Sequential,
}

/// <summary>Which HTTP client drives the connections.</summary>
public enum ClientKind
{
    /// <summary>Raw sockets with pre-built requests (the default: least client CPU per request).</summary>
    Raw,

    /// <summary><see cref="System.Net.Http.SocketsHttpHandler"/>, for comparison.</summary>
    Http,
}

/// <summary>The load generator's command line; every option has a default suitable for a short local run.</summary>
public sealed record LoadOptions
{
    public Uri Url { get; init; } = new("http://127.0.0.1:5080/api/v1/heartbeat");
    public int Connections { get; init; } = 64;

    /// <summary>Measured seconds after the warm-up (ignored when <see cref="Requests"/> is set).</summary>
    public double DurationSeconds { get; init; } = 10;

    /// <summary>Total requests to send; 0 runs for <see cref="DurationSeconds"/> instead.</summary>
    public long Requests { get; init; }

    public double WarmupSeconds { get; init; }
    public long Devices { get; init; } = 10_000;
    public IdMode Ids { get; init; } = IdMode.Random;
    public string IdPrefix { get; init; } = "sim-";
    public long IdStart { get; init; }

    /// <summary>Requests per second over all connections; 0 sends as fast as responses come back (closed loop).</summary>
    public double Rate { get; init; }

    /// <summary>Requests written back-to-back per connection before reading their responses; 1 = no pipelining.</summary>
    public int Pipeline { get; init; } = 1;

    public ClientKind Client { get; init; } = ClientKind.Raw;

    /// <summary>A hard bound on the whole run, whatever else is asked.</summary>
    public double MaxSeconds { get; init; } = 900;

    /// <summary>The server's process id on this machine: its CPU over the measured window is reported too.</summary>
    public int? ServerPid { get; init; }

    /// <summary>
    /// A database server's main process on this machine (PostgreSQL's postmaster): the CPU of it and its child
    /// processes (the backends) over the measured window is reported too.
    /// </summary>
    public int? DbPid { get; init; }

    /// <summary>Keep every request's timestamps (for in-process callers that match them with events).</summary>
    public bool KeepSamples { get; init; }

    /// <summary>
    /// Device tokens: element i is the token of device number i. When set, every request carries
    /// <c>Authorization: Bearer &lt;token&gt;</c> for its device (raw client only).
    /// </summary>
    public IReadOnlyList<string>? Tokens { get; init; }

    public bool IsTimed => Requests <= 0;

    public const string Usage = """
        Presence.LoadGen: POST /api/v1/heartbeat over persistent HTTP/1.1 connections.
          --url URL            server or endpoint URL (default http://127.0.0.1:5080/api/v1/heartbeat)
          --connections N      concurrent keep-alive connections (default 64)
          --duration S         measured seconds after warm-up (default 10)
          --requests N         send exactly N requests instead of running for a duration
          --warmup S           seconds sent but not measured (duration mode; default 0)
          --devices N          device id space (default 10000), ids <prefix><7 digits>
          --ids random|sequential   random ids, or each id in turn (default random)
          --id-prefix P        id prefix (default sim-)      --id-start N   first device number (default 0)
          --rate R             total requests/s (default 0 = as fast as possible)
          --pipeline K         requests in flight per connection (default 1 = no pipelining)
          --client raw|http    raw sockets (default) or SocketsHttpHandler
          --max-seconds S      hard bound on the run (default 900)
          --server-pid PID     also report the server's CPU over the measured window (same machine)
          --db-pid PID         also report the CPU of PID and its child processes (a database server) over that window
          --tokens FILE        one device token per line, line i for device number i: each request carries
                               'Authorization: Bearer <token>' of its device (raw client only; --devices is
                               bounded to the tokens after --id-start)
        Prints a human summary line, then one JSON line.
        """;

    public static LoadOptions Parse(IReadOnlyList<string> args)
    {
        var options = new LoadOptions();
        for (var i = 0; i < args.Count; i++)
        {
            var (name, value) = Split(args, ref i);
            options = name switch
            {
                "url" => options with { Url = EndpointUrl(value) },
                "connections" => options with { Connections = (int)Positive(name, value) },
                "duration" => options with { DurationSeconds = Number(name, value) },
                "requests" => options with { Requests = Positive(name, value) },
                "warmup" => options with { WarmupSeconds = Number(name, value) },
                "devices" => options with { Devices = Positive(name, value) },
                "ids" => options with { Ids = Enum.Parse<IdMode>(value, ignoreCase: true) },
                "id-prefix" => options with { IdPrefix = value },
                "id-start" => options with { IdStart = (long)Number(name, value) },
                "rate" => options with { Rate = Number(name, value) },
                "pipeline" => options with { Pipeline = (int)Positive(name, value) },
                "client" => options with { Client = Enum.Parse<ClientKind>(value, ignoreCase: true) },
                "max-seconds" => options with { MaxSeconds = Number(name, value) },
                "server-pid" => options with { ServerPid = (int)Positive(name, value) },
                "db-pid" => options with { DbPid = (int)Positive(name, value) },
                "tokens" => options with { Tokens = ReadTokens(value) },
                _ => throw new ArgumentException($"unknown option --{name}"),
            };
        }

        if (options.Tokens is { } tokens)
        {
            if (options.Client != ClientKind.Raw)
            {
                throw new ArgumentException("--tokens needs --client raw (the http client sends no Authorization header)");
            }

            if (options.IdStart >= tokens.Count)
            {
                throw new ArgumentException($"--id-start {options.IdStart} is beyond the {tokens.Count} tokens of --tokens");
            }

            // Only devices that have a token: the others would all be answered 401.
            options = options with { Devices = Math.Min(options.Devices, tokens.Count - options.IdStart) };
        }

        if (options.IdStart + options.Devices > Presence.Agent.Simulation.Http.HeartbeatRequests.MaxDevices)
        {
            throw new ArgumentException($"--id-start + --devices must not exceed {Presence.Agent.Simulation.Http.HeartbeatRequests.MaxDevices}");
        }

        return options;
    }

    /// <summary>A token file: one token per line (a final newline is optional), each a non-empty run of visible ASCII.</summary>
    public static IReadOnlyList<string> ReadTokens(string path)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"--tokens: cannot read {path}: {e.Message}", e);
        }

        if (lines.Length == 0)
        {
            throw new ArgumentException($"--tokens: {path} holds no token");
        }

        for (var i = 0; i < lines.Length; i++)
        {
            if (Presence.Agent.Simulation.Http.HeartbeatRequests.CheckToken(lines[i]) is { } problem)
            {
                throw new ArgumentException($"--tokens: line {i + 1} of {path} {problem}");
            }
        }

        return lines;
    }

    /// <summary>A bare server URL means the heartbeat endpoint on it.</summary>
    public static Uri EndpointUrl(string value)
    {
        var url = new Uri(value);
        return url.AbsolutePath is "/" or "" ? new Uri(url, "/api/v1/heartbeat") : url;
    }

    private static (string Name, string Value) Split(IReadOnlyList<string> args, ref int i)
    {
        var arg = args[i];
        if (!arg.StartsWith("--", StringComparison.Ordinal))
        {
            throw new ArgumentException($"unexpected argument '{arg}'");
        }

        var eq = arg.IndexOf('=', StringComparison.Ordinal);
        if (eq > 0)
        {
            return (arg[2..eq], arg[(eq + 1)..]);
        }

        if (i + 1 >= args.Count)
        {
            throw new ArgumentException($"{arg} needs a value");
        }

        return (arg[2..], args[++i]);
    }

    private static double Number(string name, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && number >= 0
            ? number
            : throw new ArgumentException($"--{name} must be a non-negative number (got '{value}')");

    private static long Positive(string name, string value) =>
        long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && number > 0
            ? number
            : throw new ArgumentException($"--{name} must be a positive integer (got '{value}')");
}
