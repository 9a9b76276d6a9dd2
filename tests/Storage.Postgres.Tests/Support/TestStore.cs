using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Presence.Grains.Abstractions;
using Presence.Runtime.Options;
using Presence.Runtime.Storage;
using Presence.Testing;

namespace Presence.Storage.Postgres.Tests.Support;

/// <summary>
/// A <see cref="PostgresPresenceStore"/> on one database with the data source it owns, built as
/// <c>AddPostgresStorage</c> builds it (auto-prepare on), on driven time: the write-behind timer never fires by itself,
/// so write-behind happens exactly when a test calls <see cref="PostgresPresenceStore.FlushAsync"/>.
/// </summary>
internal sealed class TestStore : IAsyncDisposable
{
    public const int DefaultPartitions = 8;

    private bool _disposed;

    private TestStore(NpgsqlDataSource data, PostgresPresenceStore store, TestLog log, int partitions)
    {
        Data = data;
        Store = store;
        Log = log;
        Partitions = partitions;
    }

    public NpgsqlDataSource Data { get; }

    public PostgresPresenceStore Store { get; }

    public TestLog Log { get; }

    public int Partitions { get; }

    public IEventLog Events => Store.Events;

    /// <summary>The partition epochs this store claimed last (empty before <see cref="ClaimAsync"/>).</summary>
    public long[] Epochs { get; private set; } = [];

    /// <summary>Creates the store without starting it.</summary>
    /// <param name="includeErrorDetail">
    /// Npgsql's <c>Include Error Detail</c>: off by default and in production (<c>AddPostgresStorage</c> leaves it),
    /// which replaces every <see cref="PostgresException.Detail"/> with a placeholder.
    /// </param>
    /// <param name="maxPoolSize">Npgsql's <c>Max Pool Size</c>; 2 leaves one connection besides the listener's, so every write uses the same one.</param>
    public static TestStore Create(string connectionString, ITestOutputHelper? output = null, int partitions = DefaultPartitions, int retention = 10_000,
        string name = "store", bool includeErrorDetail = false, int maxPoolSize = 100)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        builder.ConnectionStringBuilder.IncludeErrorDetail = includeErrorDetail;
        builder.ConnectionStringBuilder.MaxPoolSize = maxPoolSize;
        builder.ConnectionStringBuilder.ApplicationName = "presence-" + name;
        builder.ConnectionStringBuilder.MaxAutoPrepare = 32;
        builder.ConnectionStringBuilder.AutoPrepareMinUsages = 2;
        var data = builder.Build();
        var log = new TestLog(output, name);
        var store = new PostgresPresenceStore(
            data,
            new ManualTimeProvider(),
            Options.Create(new EventsOptions { Retention = retention }),
            Options.Create(new StorageOptions { Provider = StorageOptions.Postgres }),
            Options.Create(new ClusterOptions { Partitions = partitions }),
            log);
        return new TestStore(data, store, log, partitions);
    }

    /// <summary>Creates and starts a store (migrations applied, event log open).</summary>
    public static async Task<TestStore> StartAsync(string connectionString, ITestOutputHelper? output = null, int partitions = DefaultPartitions, int retention = 10_000,
        string name = "store", bool includeErrorDetail = false, int maxPoolSize = 100)
    {
        var store = Create(connectionString, output, partitions, retention, name, includeErrorDetail, maxPoolSize);
        try
        {
            await store.Store.StartAsync(CancellationToken.None);
            return store;
        }
        catch
        {
            await store.DisposeAsync();
            throw;
        }
    }

    /// <summary>Creates, starts and claims every partition (a silo's start).</summary>
    public static async Task<TestStore> OwnAsync(string connectionString, ITestOutputHelper? output = null, int partitions = DefaultPartitions, int retention = 10_000,
        string name = "owner", bool includeErrorDetail = false, int maxPoolSize = 100)
    {
        var store = await StartAsync(connectionString, output, partitions, retention, name, includeErrorDetail, maxPoolSize);
        await store.ClaimAsync();
        return store;
    }

    public async Task<long[]> ClaimAsync(string? siloId = null)
    {
        Epochs = await Store.ClaimPartitionsAsync(siloId ?? Log.Name, Partitions);
        return Epochs;
    }

    public int PartitionOf(DeviceKey key) => DeviceRows.PartitionOf(key, Partitions);

    /// <summary>A commit of the partition of <paramref name="key"/>, at this store's epoch for it.</summary>
    public PartitionCommit CommitFor(DeviceKey key)
    {
        var partition = PartitionOf(key);
        return new PartitionCommit { Partition = partition, Epoch = Epochs[partition] };
    }

    /// <summary>Registers (durably) <paramref name="device"/> with the given events.</summary>
    public async Task RegisterAsync(DeviceRecord device, params DeviceEvent[] events)
    {
        var commit = CommitFor(device.Key);
        commit.Upserts.Add(device);
        commit.Events.AddRange(events);
        await Store.CommitAsync(commit).Bound();
    }

    public async Task RemoveAsync(DeviceKey key, params DeviceEvent[] events)
    {
        var commit = CommitFor(key);
        commit.Removals.Add(key);
        commit.Events.AddRange(events);
        await Store.CommitAsync(commit).Bound();
    }

    /// <summary>Hands <paramref name="devices"/> to write-behind under this store's epoch for their partition.</summary>
    public void WriteBehind(params DeviceRecord[] devices)
    {
        foreach (var device in devices)
        {
            var partition = PartitionOf(device.Key);
            Store.WriteBehind(partition, Epochs[partition], [device]);
        }
    }

    /// <summary>
    /// Completes when this store's event log has reached <paramref name="position"/> (its own commits are in it once
    /// they are done), waiting on the log's doorbell; fails after <see cref="Bounded.Timeout"/>.
    /// </summary>
    public async Task WaitForHeadAsync(long position)
    {
        using var timeout = new CancellationTokenSource(Bounded.Timeout);
        while (Events.Head.Position < position)
        {
            // The doorbell may ring for an earlier event, and the head moves just after the ring: look again.
            await Events.WaitAsync(Events.Head, timeout.Token);
            await Task.Yield();
        }
    }

    /// <summary>Every event of <paramref name="tenantId"/> after <paramref name="after"/>, page by page.</summary>
    public async Task<(List<DeviceEvent> Events, EventCursor Next)> ReadAllAsync(string tenantId, EventCursor after, int pageSize = 100)
    {
        var events = new List<DeviceEvent>();
        while (true)
        {
            var page = await Events.ReadAsync(tenantId, after, pageSize);
            Assert.Equal(CursorState.Valid, page.State);
            events.AddRange(page.Events);
            if (page.Next == after)
            {
                return (events, after);
            }

            after = page.Next;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        try
        {
            await Store.DisposeAsync();
        }
        catch (Exception error)
        {
            // Reported, not thrown: the test's own failure (if any) is the one to see, not this one masking it.
            Log.LogError(error, "Disposing the store failed");
        }
        finally
        {
            await Data.DisposeAsync();
        }
    }
}
