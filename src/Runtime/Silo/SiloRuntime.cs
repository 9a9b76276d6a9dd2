using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Presence.Grains;
using Presence.Grains.Abstractions;
using Presence.Runtime.Cluster;
using Presence.Runtime.Options;
using Presence.Runtime.Partitioning;
using Presence.Runtime.Storage;

namespace Presence.Runtime.Silo;

/// <summary>
/// A silo: routes grain calls to the partitions it owns by <see cref="PartitionHash"/>, and drives all timeouts with
/// one ticker on the <see cref="TimeProvider"/>, which wakes the partitions' timing wheels. Embedded, it owns every
/// partition from start to stop. In a cluster (a <see cref="IMembershipStore"/> is registered) it starts with none:
/// <see cref="ClusterMember"/> acquires, hands off and loses partitions as leases move, and a call for a partition it
/// does not own fails with <see cref="NotOwnerException"/>.
/// </summary>
public sealed class SiloRuntime : Remoting.ISiloCalls, IHostedService, IDisposable
{
    // A slot is null while this silo does not own the partition; a partition that is handed off or lost is replaced
    // by a new instance if it comes back, so nothing of an earlier ownership survives it.
    private readonly Partition?[] _partitions;
    private readonly bool _ownsAll;
    private readonly Lock _recoveriesLock = new();
    private readonly List<Task> _recoveries = [];
    private readonly SiloContext _context;
    private readonly TimeProvider _time;
    private readonly ILogger<SiloRuntime> _log;
    private readonly SiloMetrics _metrics;
    private ITimer? _ticker;
    private readonly CancellationTokenSource _stopping = new();

    public SiloRuntime(
        IPresenceStore store,
        TimeProvider time,
        IOptions<HeartbeatOptions> heartbeat,
        IOptions<RateLimitOptions> rateLimit,
        IOptions<StorageOptions> storage,
        IOptions<ClusterOptions> cluster,
        IOptions<SiloOptions> silo,
        System.Diagnostics.Metrics.IMeterFactory meters,
        ILogger<SiloRuntime> log,
        IMembershipStore? membership = null)
    {
        _ownsAll = membership is null;
        _time = time;
        _log = log;
        Store = store;
        Policy = new DevicePolicy
        {
            DefaultTimeout = TimeSpan.FromSeconds(heartbeat.Value.TimeoutSeconds),
            DisconnectGrace = TimeSpan.FromSeconds(heartbeat.Value.DisconnectGraceSeconds),
            HeartbeatsPerMinute = rateLimit.Value.HeartbeatsPerMinute,
        };
        _metrics = new SiloMetrics(meters, () => Activations);
        _context = new SiloContext(
            Policy,
            store,
            time,
            TimeSpan.FromMilliseconds(silo.Value.TimerTickMilliseconds),
            TimeSpan.FromSeconds(storage.Value.FlushIntervalSeconds),
            TimeSpan.FromSeconds(silo.Value.CollectionAgeSeconds),
            log,
            _metrics);
        _partitions = new Partition?[cluster.Value.Partitions];

        StorageName = storage.Value.Provider;
        SiloId = $"silo-{Guid.NewGuid():N}"[..13];
        StartedAt = time.GetUtcNow().UtcDateTime;
    }

    public string SiloId { get; }

    public DateTime StartedAt { get; }

    public string StorageName { get; }

    public int PartitionCount => _partitions.Length;

    public DevicePolicy Policy { get; }

    public IPresenceStore Store { get; }

    /// <summary>True while the silo runs and its storage answers, and (embedded) no other process took a partition over.</summary>
    public bool IsReady => _ticker is not null && Store.IsAvailable && (!_ownsAll || !Owned().Any(p => p.IsFenced));

    /// <summary>Completes when the devices storage held as online in the partitions acquired so far are loaded and timed.</summary>
    public Task Recovery
    {
        get
        {
            lock (_recoveriesLock)
            {
                _recoveries.RemoveAll(task => task.IsCompleted);
                return Task.WhenAll(_recoveries);
            }
        }
    }

    /// <summary>Activated device grains across the partitions this silo owns.</summary>
    public long Activations => Owned().Sum(partition => (long)partition.ActivationCount);

    /// <summary>The partitions this silo owns now, and the epoch each one's writes carry.</summary>
    public IReadOnlyDictionary<int, long> OwnedPartitions() => Owned().ToDictionary(p => p.Id, p => p.Epoch);

    /// <summary>This silo now owns <paramref name="acquired"/>: devices storage holds as online are loaded (with the recovery grace) in the background.</summary>
    public void Acquired(IReadOnlyCollection<AcquiredPartition> acquired)
    {
        var now = _context.Now();
        var claimed = new Dictionary<int, Partition>(acquired.Count);
        foreach (var (id, epoch) in acquired)
        {
            var partition = new Partition(id, _context);
            partition.Claimed(epoch, now);
            Volatile.Write(ref _partitions[id], partition);
            claimed[id] = partition;
        }

        Track(RecoverAsync(claimed, now, _stopping.Token));
    }

    /// <summary>
    /// Graceful hand-off: stops serving <paramref name="partitions"/> (later calls fail with <see cref="NotOwnerException"/>),
    /// lets the calls already queued finish, writes every dirty device, and completes once storage has it all.
    /// </summary>
    public async Task HandOffAsync(IReadOnlyCollection<int> partitions, CancellationToken cancellationToken)
    {
        var retiring = new List<Task>(partitions.Count);
        foreach (var id in partitions)
        {
            if (Interlocked.Exchange(ref _partitions[id], null) is { } partition)
            {
                retiring.Add(partition.RetireAsync(flush: true));
            }
        }

        await Task.WhenAll(retiring).WaitAsync(cancellationToken).ConfigureAwait(false);
        await Store.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Another silo owns <paramref name="partitions"/> now (this one's lease was lost): stop serving them, writing nothing more.</summary>
    public void Lost(IEnumerable<int> partitions)
    {
        foreach (var id in partitions)
        {
            if (Interlocked.Exchange(ref _partitions[id], null) is { } partition)
            {
                _ = partition.RetireAsync(flush: false);
                _log.PartitionLost(id, partition.Epoch);
            }
        }
    }

    private IEnumerable<Partition> Owned()
    {
        foreach (var partition in _partitions)
        {
            if (partition is { } owned)
            {
                yield return owned;
            }
        }
    }

    public long HeartbeatsLastMinute(string tenantId) => _context.Activity.LastMinute(tenantId, _context.Now());

    public ValueTask<HeartbeatResult> HeartbeatAsync(DeviceKey key, HeartbeatInput input, CancellationToken cancellationToken = default) =>
        Call(new HeartbeatCall(key, input));

    public ValueTask<ProvisionResult> ProvisionAsync(DeviceKey key, ProvisionInput input, CancellationToken cancellationToken = default) =>
        Call(new ProvisionCall(key, input));

    public ValueTask<DeviceRecord?> GetAsync(DeviceKey key, CancellationToken cancellationToken = default) =>
        Call(new GetCall(key));

    public ValueTask<bool> RemoveAsync(DeviceKey key, CancellationToken cancellationToken = default) =>
        Call(new RemoveCall(key));

    /// <summary>Removes the device only if it is offline and was last seen before <paramref name="before"/> (housekeeping).</summary>
    public ValueTask<bool> RemoveIfSilentAsync(DeviceKey key, DateTime before) => Call(new RemoveCall(key, before));

    public ValueTask<IReadOnlyList<SessionRecord>?> GetSessionsAsync(DeviceKey key, int limit, CancellationToken cancellationToken = default) =>
        Call(new SessionsCall(key, limit));

    public async ValueTask ChannelOpenedAsync(DeviceKey key, CancellationToken cancellationToken = default) =>
        await Call(new ChannelCall(key, opened: true)).ConfigureAwait(false);

    public async ValueTask ChannelClosedAsync(DeviceKey key, CancellationToken cancellationToken = default) =>
        await Call(new ChannelCall(key, opened: false)).ConfigureAwait(false);

    public ValueTask<bool> CommandResultAsync(DeviceKey key, CommandResult result, CancellationToken cancellationToken = default) =>
        Call(new CommandResultCall(key, result));

    /// <summary>Completes when every call and timer tick requested before it has been applied and committed.</summary>
    public Task QuiesceAsync() => Task.WhenAll(Owned().Select(p => p.BarrierAsync()));

    /// <summary>
    /// Starts the timers. Embedded, first claims every partition (fencing off any earlier owner) and recovers online
    /// devices in the background; in a cluster, partitions come from <see cref="ClusterMember"/>.
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_ownsAll)
        {
            var epochs = await Store.ClaimPartitionsAsync(SiloId, _partitions.Length, cancellationToken).ConfigureAwait(false);
            Acquired(epochs.Select((epoch, id) => new AcquiredPartition(id, epoch)).ToList());
        }

        _ticker = _time.CreateTimer(static state => ((SiloRuntime)state!).Tick(), this, _context.TimerTick, _context.TimerTick);
        _log.SiloStarted(SiloId, _ownsAll ? _partitions.Length : 0, StorageName, _context.TimerTick.TotalMilliseconds);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        var owned = Owned().ToList();
        _log.SiloStopping(SiloId, owned.Count);
        await _stopping.CancelAsync().ConfigureAwait(false);
        _ticker?.Dispose();
        _ticker = null;
        await Task.WhenAll(owned.Select(p => p.FlushAsync())).WaitAsync(cancellationToken).ConfigureAwait(false);
        await Store.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    public void Dispose()
    {
        _ticker?.Dispose();
        _stopping.Cancel(); // not disposed: a host may still call StopAsync after disposing its services
        _metrics.Dispose();
    }

    private void Track(Task recovery)
    {
        lock (_recoveriesLock)
        {
            _recoveries.RemoveAll(task => task.IsCompleted);
            _recoveries.Add(recovery);
        }
    }

    /// <summary>Loads every device storage holds as online in <paramref name="claimed"/> into its partition, in batches, so its timeout runs.</summary>
    private async Task RecoverAsync(Dictionary<int, Partition> claimed, DateTime claimedAt, CancellationToken cancellationToken)
    {
        await Task.Yield();
        const int Batch = 256;
        var started = _time.GetTimestamp();
        var pending = new List<DeviceRecord>?[_partitions.Length];
        var calls = new List<Task>();
        long count = 0;
        try
        {
            var ids = claimed.Keys.ToHashSet();
            await foreach (var device in Store.ReadOnlineDevicesAsync(_partitions.Length, ids, cancellationToken).ConfigureAwait(false))
            {
                count++;
                var id = PartitionHash.Of(device.Key, _partitions.Length);
                var batch = pending[id] ??= new List<DeviceRecord>(Batch);
                batch.Add(device);
                if (batch.Count == Batch)
                {
                    calls.Add(Recover(claimed[id], batch));
                    pending[id] = null;
                }
            }

            for (var id = 0; id < pending.Length; id++)
            {
                if (pending[id] is { } batch)
                {
                    calls.Add(Recover(claimed[id], batch));
                }
            }

            await Task.WhenAll(calls).ConfigureAwait(false);
            _log.Recovered(count, claimed.Count, claimedAt, _time.GetElapsedTime(started).TotalSeconds);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping.
        }
        catch (Exception error)
        {
            _log.RecoveryFailed(error);
        }
    }

    /// <summary>Posts to the instance that was claimed: if the partition was handed off meanwhile, the call is refused there.</summary>
    private static Task Recover(Partition partition, List<DeviceRecord> devices)
    {
        var call = new RecoverCall(devices);
        partition.Post(call);
        return call.Completion.ContinueWith(static _ => { }, TaskScheduler.Default); // a refusal is not a failure
    }

    private void Tick()
    {
        foreach (var partition in Owned())
        {
            if (partition.NeedsTicks)
            {
                partition.RequestTick();
            }
        }
    }

    private ValueTask<T> Call<T>(GrainCall<T> call)
    {
        var id = PartitionHash.Of(call.Key, _partitions.Length);
        if (Volatile.Read(ref _partitions[id]) is not { } partition)
        {
            return ValueTask.FromException<T>(new NotOwnerException(id));
        }

        partition.Post(call);
        return new ValueTask<T>(call.Completion);
    }
}
