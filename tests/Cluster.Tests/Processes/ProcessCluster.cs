using System.Diagnostics;
using Presence.Testing;
using Xunit.Abstractions;

namespace Presence.Cluster.Tests.Processes;

/// <summary>
/// Silos and cluster-mode gateways as real processes on a fresh database of the shared PostgreSQL server. Settings
/// keep the scenarios fast but honest: 64 partitions, a 6 s heartbeat timeout, and the default membership and lease
/// timings (a crashed silo's partitions are taken over 5-7 s later). Disposing kills what still runs and writes every
/// process's output to a file named in the test's output.
/// </summary>
internal sealed class ProcessCluster : IAsyncDisposable
{
    public const int Partitions = 64;
    // Above the gateways' route timeout (10 s), as the defaults are (90 s): a call held through a partition move must
    // not outlast the device's timeout. On a loaded machine a move can hold calls for the whole route timeout.
    public static readonly TimeSpan HeartbeatTimeout = TimeSpan.FromSeconds(15);

    private readonly string _connectionString;
    private readonly ITestOutputHelper _output;
    private readonly List<SiloProcess> _silos = [];
    private readonly List<ClusterGatewayProcess> _gateways = [];
    private int _siloNames;
    private int _gatewayNames;

    private ProcessCluster(string connectionString, ITestOutputHelper output)
    {
        _connectionString = connectionString;
        _output = output;
    }

    private static string[] Settings =>
    [
        $"--Presence:Cluster:Partitions={Partitions}", $"--Presence:Heartbeat:TimeoutSeconds={HeartbeatTimeout.TotalSeconds}",
        // One line per entry with a UTC timestamp, so the processes' logs line up with each other and with event times.
        "--Logging:Console:FormatterName=simple", "--Logging:Console:FormatterOptions:SingleLine=true",
        "--Logging:Console:FormatterOptions:TimestampFormat=HH:mm:ss.fff ", "--Logging:Console:FormatterOptions:UseUtcTimestamp=true",
    ];

    public static async Task<ProcessCluster> CreateAsync(PostgresServer server, ITestOutputHelper output) =>
        new(await server.CreateDatabaseAsync(), output);

    public async Task<SiloProcess> StartSiloAsync()
    {
        var silo = await SiloProcess.StartAsync($"silo-{Interlocked.Increment(ref _siloNames)}", _connectionString, Settings);
        lock (_silos)
        {
            _silos.Add(silo);
        }

        return silo;
    }

    public async Task<ClusterGatewayProcess> StartGatewayAsync()
    {
        var gateway = await ClusterGatewayProcess.StartAsync($"gateway-{Interlocked.Increment(ref _gatewayNames)}", _connectionString, Settings);
        lock (_gateways)
        {
            _gateways.Add(gateway);
        }

        return gateway;
    }

    /// <summary>
    /// Reads <c>GET /api/v1/cluster</c> on <paramref name="gateway"/> now and again at every membership change one of
    /// <paramref name="silos"/> logs (what moves partitions), until <paramref name="condition"/> holds; fails after
    /// <paramref name="timeout"/> with the last view. Returns how long it took.
    /// </summary>
    public static async Task<TimeSpan> WaitForAsync(
        ClusterGatewayProcess gateway, string what, Func<ClusterView, bool> condition, TimeSpan timeout, params SiloProcess[] silos)
    {
        var clock = Stopwatch.StartNew();
        using var deadline = new CancellationTokenSource(timeout);
        while (true)
        {
            var changed = Task.WhenAny(silos.Select(s => s.MembershipChangedAsync())); // before reading: no change is missed
            var view = await gateway.ClusterAsync();
            if (condition(view))
            {
                return clock.Elapsed;
            }

            try
            {
                await changed.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"not within {timeout.TotalSeconds} s: {what}; last view: {view}");
            }
        }
    }

    /// <summary>Every partition has a live owner, and exactly <paramref name="silos"/> own some.</summary>
    public static bool FullyOwnedBy(ClusterView view, params SiloProcess[] silos) =>
        view.PartitionsUnowned == 0 && silos.Sum(s => view.PartitionsOf(s.SiloId)) == view.PartitionsTotal && silos.All(s => view.PartitionsOf(s.SiloId) > 0);

    public async ValueTask DisposeAsync()
    {
        var directory = Path.Combine(Path.GetTempPath(), "presence-process-tests", DateTime.UtcNow.ToString("yyyyMMdd-HHmmss-fff"));
        Directory.CreateDirectory(directory);
        foreach (var (name, output, dispose) in _silos.Select(s => (s.Name, (Func<string>)(() => s.Output), (Func<ValueTask>)s.DisposeAsync))
            .Concat(_gateways.Select(g => (g.Name, (Func<string>)(() => g.Output), (Func<ValueTask>)g.DisposeAsync))))
        {
            await dispose();
            await File.WriteAllTextAsync(Path.Combine(directory, name + ".log"), output());
        }

        _output.WriteLine($"process logs: {directory}");
    }
}
