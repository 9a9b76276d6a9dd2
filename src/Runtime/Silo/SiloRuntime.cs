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
    public bool IsReady => _ticker is not null && Store.IsAvailable;

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

    public ValueTask<DeviceRecord?> GetAsync(DeviceKey key, CancellationToken cancellationToken = default) =>
        Call(new GetCall(key));

    public ValueTask<bool> RemoveAsync(DeviceKey key, CancellationToken cancellationToken = default) =>
        Call(new RemoveCall(key));

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

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _ticker = _time.CreateTimer(static state => ((SiloRuntime)state!).Tick(), this, _context.TimerTick, _context.TimerTick);
        _log.SiloStarted(SiloId, _partitions.Length, StorageName, _context.TimerTick.TotalMilliseconds);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _log.SiloStopping(SiloId, _partitions.Length);
        _ticker?.Dispose();
        _ticker = null;
        await Task.WhenAll(_partitions.Select(p => p.FlushAsync())).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public void Dispose()
    {
        _ticker?.Dispose();
        _metrics.Dispose();
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
