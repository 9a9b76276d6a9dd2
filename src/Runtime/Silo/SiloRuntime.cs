using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Presence.Grains;
using Presence.Grains.Abstractions;
using Presence.Runtime.Options;
using Presence.Runtime.Partitioning;
using Presence.Runtime.Storage;

namespace Presence.Runtime.Silo;

/// <summary>
/// A silo hosting every partition of the key space in this process (embedded mode): routes grain calls to
/// partitions by <see cref="PartitionHash"/>, and drives all timeouts with one ticker on the
/// <see cref="TimeProvider"/>, which wakes the partitions' timing wheels.
/// </summary>
public sealed class SiloRuntime : IDeviceGrains, IHostedService, IDisposable
{
    private readonly Partition[] _partitions;
    private readonly SiloContext _context;
    private readonly TimeProvider _time;
    private readonly ILogger<SiloRuntime> _log;
    private readonly SiloMetrics _metrics;
    private ITimer? _ticker;
    private readonly CancellationTokenSource _stopping = new();
    private Task _recovery = Task.CompletedTask;

    public SiloRuntime(
        IPresenceStore store,
        TimeProvider time,
        IOptions<HeartbeatOptions> heartbeat,
        IOptions<RateLimitOptions> rateLimit,
        IOptions<StorageOptions> storage,
        IOptions<ClusterOptions> cluster,
        IOptions<SiloOptions> silo,
        System.Diagnostics.Metrics.IMeterFactory meters,
        ILogger<SiloRuntime> log)
    {
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
        _partitions = new Partition[cluster.Value.Partitions];
        for (var i = 0; i < _partitions.Length; i++)
        {
            _partitions[i] = new Partition(i, _context);
        }

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

    /// <summary>True while the silo runs, owns its partitions and its storage answers.</summary>
    public bool IsReady => _ticker is not null && Store.IsAvailable && !_partitions.Any(p => p.IsFenced);

    /// <summary>Completes when the devices storage held as online at start-up are loaded and their timeouts run.</summary>
    public Task Recovery => _recovery;

    /// <summary>Activated device grains across all partitions.</summary>
    public long Activations
    {
        get
        {
            long total = 0;
            foreach (var partition in _partitions)
            {
                total += partition.ActivationCount;
            }

            return total;
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
    public Task QuiesceAsync() => Task.WhenAll(_partitions.Select(p => p.BarrierAsync()));

    /// <summary>Claims every partition (fencing off any earlier owner), starts the timers, then recovers online devices in the background.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var epochs = await Store.ClaimPartitionsAsync(SiloId, _partitions.Length, cancellationToken).ConfigureAwait(false);
        var claimedAt = _context.Now();
        foreach (var partition in _partitions)
        {
            partition.Claimed(epochs[partition.Id], claimedAt);
        }

        _ticker = _time.CreateTimer(static state => ((SiloRuntime)state!).Tick(), this, _context.TimerTick, _context.TimerTick);
        _log.SiloStarted(SiloId, _partitions.Length, StorageName, _context.TimerTick.TotalMilliseconds);
        _recovery = RecoverAsync(claimedAt, _stopping.Token);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _log.SiloStopping(SiloId, _partitions.Length);
        await _stopping.CancelAsync().ConfigureAwait(false);
        _ticker?.Dispose();
        _ticker = null;
        await Task.WhenAll(_partitions.Select(p => p.FlushAsync())).WaitAsync(cancellationToken).ConfigureAwait(false);
        await Store.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    public void Dispose()
    {
        _ticker?.Dispose();
        _stopping.Cancel(); // not disposed: a host may still call StopAsync after disposing its services
        _metrics.Dispose();
    }

    /// <summary>Loads every device storage holds as online into its partition, in batches, so its timeout runs.</summary>
    private async Task RecoverAsync(DateTime claimedAt, CancellationToken cancellationToken)
    {
        await Task.Yield();
        const int Batch = 256;
        var started = _time.GetTimestamp();
        var pending = new List<DeviceRecord>?[_partitions.Length];
        var calls = new List<Task>();
        long count = 0;
        try
        {
            var all = Enumerable.Range(0, _partitions.Length).ToHashSet();
            await foreach (var device in Store.ReadOnlineDevicesAsync(_partitions.Length, all, cancellationToken).ConfigureAwait(false))
            {
                count++;
                var id = PartitionHash.Of(device.Key, _partitions.Length);
                var batch = pending[id] ??= new List<DeviceRecord>(Batch);
                batch.Add(device);
                if (batch.Count == Batch)
                {
                    calls.Add(Recover(id, batch));
                    pending[id] = null;
                }
            }

            for (var id = 0; id < pending.Length; id++)
            {
                if (pending[id] is { } batch)
                {
                    calls.Add(Recover(id, batch));
                }
            }

            await Task.WhenAll(calls).ConfigureAwait(false);
            _log.Recovered(count, claimedAt, _time.GetElapsedTime(started).TotalSeconds);
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

    private Task Recover(int partition, List<DeviceRecord> devices)
    {
        var call = new RecoverCall(devices);
        _partitions[partition].Post(call);
        return call.Completion;
    }

    private void Tick()
    {
        foreach (var partition in _partitions)
        {
            if (partition.NeedsTicks)
            {
                partition.RequestTick();
            }
        }
    }

    private ValueTask<T> Call<T>(GrainCall<T> call)
    {
        _partitions[PartitionHash.Of(call.Key, _partitions.Length)].Post(call);
        return new ValueTask<T>(call.Completion);
    }
}
