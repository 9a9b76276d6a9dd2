using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Presence.Gateway.Cluster;
using Presence.Gateway.Tests;
using Presence.Runtime.Cluster;
using Presence.Runtime.Silo;
using Presence.Silo.Hosting;
using Presence.Testing;

namespace Presence.Cluster.Tests.Support;

/// <summary>
/// An in-process cluster, like Orleans' TestingHost: several real silos (each its own host with its own storage
/// connections, listener and membership) and a real gateway in client mode on Kestrel, all on one PostgreSQL database
/// and one driven clock. Membership rounds run when the test steps the clock (<see cref="RoundAsync"/>); silos can be
/// started, stopped (drained) and killed (abandoned without a word, as by <c>kill -9</c>).
/// </summary>
public sealed class TestCluster : IAsyncDisposable
{
    /// <summary>Few partitions keep rounds cheap; placement works the same with 1024.</summary>
    public const int Partitions = 32;

    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    /// <summary>The heartbeat timeout these tests configure (and so the take-over grace).</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(3);

    private readonly Dictionary<string, string> _settings;

    private TestCluster(string connectionString, Dictionary<string, string>? settings)
    {
        _settings = new Dictionary<string, string>
        {
            ["ConnectionStrings:Presence"] = connectionString,
            ["Presence:Cluster:Partitions"] = Partitions.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Presence:Heartbeat:TimeoutSeconds"] = "3",
            ["Presence:Heartbeat:DisconnectGraceSeconds"] = "2",
            ["Presence:Storage:FlushIntervalSeconds"] = "1",
        };
        foreach (var (key, value) in settings ?? [])
        {
            _settings[key] = value;
        }

        ConnectionString = connectionString;
    }

    public string ConnectionString { get; }

    public ManualTimeProvider Time { get; } = new();

    /// <summary>Silos started and not stopped or killed.</summary>
    public List<TestSilo> Silos { get; } = [];

    public ClusterGateway Gateway { get; private set; } = null!;

    /// <summary>A fresh database, <paramref name="silos"/> silos settled on their partitions, and a gateway routing to them.</summary>
    public static async Task<TestCluster> StartAsync(PostgresServer server, int silos, Dictionary<string, string>? settings = null)
    {
        var cluster = new TestCluster(await server.CreateDatabaseAsync(), settings);
        for (var i = 0; i < silos; i++)
        {
            await cluster.StartSiloAsync(settle: false);
        }

        await cluster.SettleAsync();
        cluster.Gateway = new ClusterGateway(cluster._settings, cluster.Time);
        await cluster.Gateway.Client.RefreshAsync(CancellationToken.None);
        return cluster;
    }

    /// <summary>Another gateway on the same cluster (as behind one load balancer), its map read; the test disposes it.</summary>
    public async Task<ClusterGateway> StartGatewayAsync()
    {
        var gateway = new ClusterGateway(_settings, Time);
        await gateway.Client.RefreshAsync(CancellationToken.None);
        return gateway;
    }

    public async Task<TestSilo> StartSiloAsync(bool settle = true)
    {
        var silo = await TestSilo.StartAsync(_settings, Time);
        Silos.Add(silo);
        if (settle)
        {
            await SettleAsync();
        }

        return silo;
    }

    /// <summary>SIGTERM: the silo drains (hands every partition off) and leaves; the others then take its partitions.</summary>
    public async Task StopSiloAsync(TestSilo silo)
    {
        Silos.Remove(silo);
        await silo.StopAsync();
        await SettleAsync();
    }

    /// <summary>kill -9: connections drop, nothing is flushed or released; leases run out and are taken over.</summary>
    public async Task KillSiloAsync(TestSilo silo)
    {
        Silos.Remove(silo);
        await silo.KillAsync();
    }

    /// <summary>Moves the clock one membership interval and runs a round on every silo, then re-reads the gateway's map.</summary>
    public async Task RoundAsync()
    {
        Time.Advance(Interval);
        foreach (var silo in Silos)
        {
            await silo.Member.RunRoundAsync();
        }

        foreach (var silo in Silos)
        {
            await silo.Runtime.Recovery;
        }

        if (Gateway is not null)
        {
            await Gateway.Client.RefreshAsync(CancellationToken.None);
        }
    }

    /// <summary>Rounds until every partition is owned by its rendezvous target among the running silos (bounded).</summary>
    public async Task SettleAsync(int maxRounds = 30)
    {
        for (var round = 0; round < maxRounds; round++)
        {
            await RoundAsync();
            if (IsSettled())
            {
                return;
            }
        }

        throw new TimeoutException($"the cluster did not settle in {maxRounds} rounds: {Describe()}");
    }

    /// <summary>Every partition is owned by exactly one running silo, the one rendezvous hashing targets.</summary>
    public bool IsSettled()
    {
        var placement = new Rendezvous(Silos.Select(s => s.Id));
        var owners = Enumerable.Range(0, Partitions).Select(p => Silos.Where(s => s.Runtime.OwnedPartitions().ContainsKey(p)).ToList()).ToList();
        return owners.Select((silos, p) => silos.Count == 1 && silos[0].Id == placement.Target(p)).All(ok => ok);
    }

    public string Describe() => string.Join("; ", Silos.Select(s => $"{s.Id}: {s.Runtime.OwnedPartitions().Count} partitions"));

    /// <summary>The running silo that owns the device's partition now.</summary>
    public TestSilo OwnerOf(string deviceId, string tenant = "default")
    {
        var partition = Runtime.Partitioning.PartitionHash.Of(new Grains.Abstractions.DeviceKey(tenant, deviceId), Partitions);
        return Silos.Single(s => s.Runtime.OwnedPartitions().ContainsKey(partition));
    }

    /// <summary>Moves the clock, then waits until every silo applied the timers that fell due.</summary>
    public async Task AdvanceAsync(TimeSpan by)
    {
        Time.Advance(by);
        foreach (var silo in Silos)
        {
            await silo.Runtime.QuiesceAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Gateway is not null)
        {
            await Gateway.DisposeAsync();
        }

        foreach (var silo in Silos.ToList())
        {
            await silo.KillAsync();
        }
    }
}

/// <summary>One silo host, built exactly as the silo process builds it, on the test's clock.</summary>
public sealed class TestSilo
{
    private readonly IHost _host;

    private TestSilo(IHost host)
    {
        _host = host;
        Runtime = host.Services.GetRequiredService<SiloRuntime>();
        Member = host.Services.GetRequiredService<ClusterMember>();
        Listener = host.Services.GetRequiredService<SiloListener>();
    }

    public SiloRuntime Runtime { get; }

    public ClusterMember Member { get; }

    public SiloListener Listener { get; }

    public string Id => Runtime.SiloId;

    public IServiceProvider Services => _host.Services;

    public static async Task<TestSilo> StartAsync(IReadOnlyDictionary<string, string> settings, ManualTimeProvider time)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value)));
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddSingleton<TimeProvider>(time);
        builder.AddPresenceSilo();
        var host = builder.Build();
        await host.StartAsync();
        return new TestSilo(host);
    }

    /// <summary>A graceful stop: the silo drains, then its host stops.</summary>
    public async Task StopAsync()
    {
        await _host.StopAsync();
        await ((IAsyncDisposable)_host).DisposeAsync();
    }

    public async Task KillAsync()
    {
        Listener.Abort();
        await Member.AbandonAsync();
        await ((IAsyncDisposable)_host).DisposeAsync();
    }
}

/// <summary>The real gateway in cluster client mode, on the cluster's database and clock.</summary>
public sealed class ClusterGateway(Dictionary<string, string> settings, ManualTimeProvider time)
    : PresenceServer(new Dictionary<string, string>(settings) { ["Presence:Cluster:Mode"] = "client" }, time)
{
    internal ClusterClient Client => Services.GetRequiredService<ClusterClient>();
}
