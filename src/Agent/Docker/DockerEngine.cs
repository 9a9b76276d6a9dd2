using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Presence.Agent.Docker;

/// <summary>
/// Lists the host's containers from the Docker Engine API over its unix socket (<c>GET /containers/json?all=true</c>).
/// No socket, or a failing engine (permission denied, an error answer, garbage), means no container list (null: the
/// heartbeat leaves <c>containers</c> out); a failing engine is logged once when it starts failing and once when it
/// works again.
/// </summary>
internal sealed partial class DockerEngine : IDisposable
{
    private const int MaxResponseBytes = 8 * 1024 * 1024;
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(5);

    private readonly HttpClient _http;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private State _state;

    public DockerEngine(string socketPath, TimeProvider time, ILogger logger)
    {
        SocketPath = socketPath;
        _time = time;
        _logger = logger;
        _http = new HttpClient(new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath), cancellationToken);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
        })
        {
            // The host name is not resolved (the socket is); the timeout is the driven one below.
            BaseAddress = new Uri("http://docker/"),
            Timeout = Timeout.InfiniteTimeSpan,
            MaxResponseContentBufferSize = MaxResponseBytes,
        };
    }

    private enum State
    {
        Unknown,
        Absent,
        Working,
        Failing,
    }

    public string SocketPath { get; }

    /// <summary>The containers, or null when there is no socket or the engine fails; never throws but for <paramref name="cancellationToken"/>.</summary>
    public async Task<IReadOnlyList<ContainerInfo>?> ListAsync(CancellationToken cancellationToken)
    {
        if (!File.Exists(SocketPath))
        {
            Enter(State.Absent, null, 0);
            return null;
        }

        using var timeout = new CancellationTokenSource(RequestTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            using var response = await _http.GetAsync("containers/json?all=true", linked.Token);
            if (!response.IsSuccessStatusCode)
            {
                Enter(State.Failing, $"the engine answered {(int)response.StatusCode}", 0);
                return null;
            }

            await using var body = await response.Content.ReadAsStreamAsync(linked.Token);
            using var document = await JsonDocument.ParseAsync(body, default, linked.Token);
            var containers = ContainerInfo.FromEngineJson(document.RootElement);
            Enter(State.Working, null, containers.Count);
            return containers;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (OperationCanceledException)
        {
            Enter(State.Failing, $"no answer within {RequestTimeout.TotalSeconds:0} s", 0);
            return null;
        }
        catch (Exception e) when (e is HttpRequestException or SocketException or IOException or JsonException or UnauthorizedAccessException)
        {
            Enter(State.Failing, e.InnerException?.Message ?? e.Message, 0);
            return null;
        }
    }

    public void Dispose() => _http.Dispose();

    private void Enter(State state, string? reason, int containers)
    {
        State previous;
        lock (_lock)
        {
            previous = _state;
            _state = state;
        }

        if (previous == state)
        {
            return;
        }

        switch (state)
        {
            case State.Absent:
                LogAbsent(_logger, SocketPath);
                break;
            case State.Failing:
                LogFailing(_logger, SocketPath, reason!);
                break;
            case State.Working when previous == State.Failing:
                LogRecovered(_logger, SocketPath, containers);
                break;
            case State.Working:
                LogWorking(_logger, SocketPath, containers);
                break;
        }
    }

    [LoggerMessage(EventId = 5101, Level = LogLevel.Information, Message = "Docker: reporting containers from {SocketPath} ({Containers} now)")]
    private static partial void LogWorking(ILogger logger, string socketPath, int containers);

    [LoggerMessage(EventId = 5102, Level = LogLevel.Warning, Message = "Docker: listing containers from {SocketPath} failed ({Reason}); heartbeats carry no containers until it works")]
    private static partial void LogFailing(ILogger logger, string socketPath, string reason);

    [LoggerMessage(EventId = 5103, Level = LogLevel.Information, Message = "Docker: listing containers from {SocketPath} works again ({Containers} now)")]
    private static partial void LogRecovered(ILogger logger, string socketPath, int containers);

    [LoggerMessage(EventId = 5104, Level = LogLevel.Information, Message = "Docker: no socket at {SocketPath}; heartbeats carry no containers")]
    private static partial void LogAbsent(ILogger logger, string socketPath);
}
