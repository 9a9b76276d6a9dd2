using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Presence.Grains.Abstractions;
using Presence.Runtime.Cluster;
using Presence.Runtime.Options;
using Presence.Runtime.Partitioning;
using Presence.Runtime.Remoting;
using Presence.Runtime.Storage;

namespace Presence.Gateway.Cluster;

/// <summary>
/// Cluster mode's grains (<c>Presence:Cluster:Mode=client</c>): every call goes to the silo that owns the device's
/// partition, over one persistent multiplexed connection per silo. The partition map is read from the membership
/// store every round and whenever a silo answers "not owner" or cannot be reached; the call is then retried at the
/// new owner until <c>Presence:Cluster:RouteTimeoutSeconds</c>, and only then fails with 503 and Retry-After.
/// </summary>
public sealed partial class ClusterClient : IDeviceGrains, ISiloDirectory, IHostedService, IAsyncDisposable
{
    // Re-reading the map at most this often while calls wait for an owner (a take-over takes seconds).
    private static readonly TimeSpan MinRefreshSpacing = TimeSpan.FromMilliseconds(100);

    // A map read that takes longer is abandoned (and retried): routing must never hang on one slow query.
    private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(5);

    private readonly IMembershipStore _membership;
    private readonly IPresenceStore _store;
    private readonly TimeProvider _time;
    private readonly ILogger<ClusterClient> _log;
    private readonly int _partitions;
    private readonly TimeSpan _interval;
    private readonly TimeSpan _siloTimeout;
    private readonly TimeSpan _routeTimeout;
    private readonly string? _secret;
    private readonly ConcurrentDictionary<string, SiloLink> _links = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private TaskCompletionSource<PartitionMap> _nextMap = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _refreshSoon = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _waiting = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private PartitionMap _map;
    private Task _loop = Task.CompletedTask;

    public ClusterClient(
        IMembershipStore membership, IPresenceStore store, TimeProvider time, IOptions<ClusterOptions> options, ILogger<ClusterClient> log)
    {
        _membership = membership;
        _store = store;
        _time = time;
        _log = log;
        _partitions = options.Value.Partitions;
        _interval = TimeSpan.FromSeconds(options.Value.MembershipIntervalSeconds);
        _siloTimeout = TimeSpan.FromSeconds(options.Value.SiloTimeoutSeconds);
        _routeTimeout = TimeSpan.FromSeconds(options.Value.RouteTimeoutSeconds);
        _secret = options.Value.Secret;
        _map = PartitionMap.Empty(_partitions);
    }

    /// <summary>The map calls are routed by now.</summary>
    internal PartitionMap Map => Volatile.Read(ref _map);

    public bool IsReady =>
        _store.IsAvailable && Map is var map && map.Unowned == 0 && _time.GetUtcNow().UtcDateTime - map.ReadAt <= 3 * _interval + _siloTimeout;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await RefreshAsync(cancellationToken);
        }
        catch (UnavailableException error)
        {
            LogMapUnavailable(_log, error.Message);
        }

        _loop = LoopAsync(_stopping.Token);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        await _loop;
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        await _loop;
        foreach (var link in _links.Values)
        {
            await link.DisposeAsync();
        }
    }

    public ValueTask<HeartbeatResult> HeartbeatAsync(DeviceKey key, HeartbeatInput input, CancellationToken cancellationToken = default) =>
        CallAsync(key, input, static (silo, key, input, token) => silo.HeartbeatAsync(key, input, token), cancellationToken);

    public ValueTask<ProvisionResult> ProvisionAsync(DeviceKey key, ProvisionInput input, CancellationToken cancellationToken = default) =>
        CallAsync(key, input, static (silo, key, input, token) => silo.ProvisionAsync(key, input, token), cancellationToken);

    public ValueTask<DeviceRecord?> GetAsync(DeviceKey key, CancellationToken cancellationToken = default) =>
        CallAsync(key, 0, static (silo, key, _, token) => silo.GetAsync(key, token), cancellationToken);

    public ValueTask<bool> RemoveAsync(DeviceKey key, CancellationToken cancellationToken = default) =>
        CallAsync(key, 0, static (silo, key, _, token) => silo.RemoveAsync(key, token), cancellationToken);

    public ValueTask<IReadOnlyList<SessionRecord>?> GetSessionsAsync(DeviceKey key, int limit, CancellationToken cancellationToken = default) =>
        CallAsync(key, limit, static (silo, key, limit, token) => silo.GetSessionsAsync(key, limit, token), cancellationToken);

    public async ValueTask ChannelOpenedAsync(DeviceKey key, CancellationToken cancellationToken = default) =>
        await CallAsync(key, 0, static async (silo, key, _, token) => { await silo.ChannelOpenedAsync(key, token); return true; }, cancellationToken);

    public async ValueTask ChannelClosedAsync(DeviceKey key, CancellationToken cancellationToken = default) =>
        await CallAsync(key, 0, static async (silo, key, _, token) => { await silo.ChannelClosedAsync(key, token); return true; }, cancellationToken);

    public ValueTask<bool> CommandResultAsync(DeviceKey key, CommandResult result, CancellationToken cancellationToken = default) =>
        CallAsync(key, result, static (silo, key, result, token) => silo.CommandResultAsync(key, result, token), cancellationToken);

    public async ValueTask<long> HeartbeatsLastMinuteAsync(string tenantId, CancellationToken cancellationToken)
    {
        long total = 0;
        foreach (var silo in Map.Silos.Where(s => s.Status is SiloStatus.Active or SiloStatus.Joining or SiloStatus.Leaving))
        {
            try
            {
                var connection = await Link(silo.SiloId, silo.Address).ConnectAsync(cancellationToken);
                total += await connection.HeartbeatsLastMinuteAsync(tenantId, cancellationToken);
            }
            catch (UnavailableException)
            {
                // A silo that cannot answer now counts nothing: the figure is a gauge.
            }
        }

        return total;
    }

    public async ValueTask<ClusterDescription> DescribeAsync(string gatewayAddress, CancellationToken cancellationToken)
    {
        var view = await _membership.ReadAsync(cancellationToken);
        var now = _time.GetUtcNow().UtcDateTime;
        var owned = view.Partitions.Where(p => !p.IsAcquirable(now) && p.Owner is not null).CountBy(p => p.Owner!).ToDictionary();
        var silos = view.Silos.Select(s => new SiloDescription(
            s.SiloId, s.Address, SiloEntry.StatusName(s.Status), owned.GetValueOrDefault(s.SiloId), s.Devices, s.StartedAt, s.LastHeartbeatAt));
        return new ClusterDescription(view.Partitions.Count, view.Unowned(now, _siloTimeout), silos.ToList());
    }

    /// <summary>
    /// Sends a call to the partition's owner; on "not owner", an unreachable silo or no owner at all, reads the map
    /// again and retries, until the route timeout. A call lost with its connection is sent again: the device's
    /// calls are idempotent enough (a heartbeat applied twice only counts twice), and the client would retry anyway.
    /// </summary>
    private async ValueTask<T> CallAsync<TState, T>(
        DeviceKey key, TState state, Func<SiloConnection, DeviceKey, TState, CancellationToken, ValueTask<T>> call, CancellationToken cancellationToken)
    {
        var partition = PartitionHash.Of(key, _partitions);
        var started = _time.GetTimestamp();
        while (true)
        {
            var map = Map;
            string reason;
            if (map.Owners[partition] is { } owner)
            {
                try
                {
                    var connection = await Link(owner.SiloId, owner.Address).ConnectAsync(cancellationToken);
                    return await call(connection, key, state, cancellationToken);
                }
                catch (NotOwnerException)
                {
                    reason = "its owner changed";
                }
                catch (SiloUnreachableException error)
                {
                    reason = error.Message;
                }
            }
            else
            {
                reason = "no silo owns it";
            }

            var remaining = _routeTimeout - _time.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero)
            {
                LogNoRoute(_log, partition, reason);
                throw new UnavailableException($"no silo is serving this device now ({reason}); retry later");
            }

            // Read the next map's promise before looking at the current one: a refresh in between is never missed.
            var next = Volatile.Read(ref _nextMap).Task;
            if (!ReferenceEquals(Map, map))
            {
                continue;
            }

            Volatile.Read(ref _refreshSoon).TrySetResult();
            Interlocked.Exchange(ref _waiting, new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
            try
            {
                await next.WaitAsync(remaining, _time, cancellationToken);
            }
            catch (TimeoutException)
            {
                // Loops once more and gives up with the reason.
            }
        }
    }

    /// <summary>Completes when a call next waits for its partition's owner (a phase tests await before moving the clock).</summary>
    internal Task NextWaitAsync() => Volatile.Read(ref _waiting).Task;

    private SiloLink Link(string siloId, string address) =>
        _links.GetOrAdd(siloId, static (id, s) => new SiloLink(id, s.Address, s.Client), (Address: address, Client: this));

    /// <summary>Reads the map (bounded in time), routes by it from now on, and wakes the calls waiting for a newer one.</summary>
    internal async Task<PartitionMap> RefreshAsync(CancellationToken cancellationToken)
    {
        // Staleness is judged as of the read: a reply that reaches a busy process late must not make every silo look gone.
        var readAt = _time.GetUtcNow().UtcDateTime;
        using var timeout = new CancellationTokenSource(ReadTimeout, _time);
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        ClusterView view;
        try
        {
            view = await _membership.ReadAsync(bounded.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new UnavailableException($"reading the partition map took longer than {ReadTimeout.TotalSeconds} s");
        }

        var map = PartitionMap.From(view, _partitions, readAt, _siloTimeout);
        var previous = Map;
        Volatile.Write(ref _map, map);
        Interlocked.Exchange(ref _nextMap, new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult(map);
        if (map.Unowned != previous.Unowned || map.Silos.Count != previous.Silos.Count)
        {
            LogMap(_log, map.Silos.Count(s => s.IsLive(map.ReadAt, _siloTimeout)), map.Unowned);
        }

        // Connections to silos that are gone are closed in the background: never on the routing path.
        foreach (var gone in _links.Keys.Where(id => !map.Silos.Any(s => s.SiloId == id && s.Status != SiloStatus.Dead)).ToList())
        {
            if (_links.TryRemove(gone, out var link))
            {
                _ = CloseAsync(link);
            }
        }

        return map;
    }

    private async Task CloseAsync(SiloLink link)
    {
        try
        {
            await link.DisposeAsync();
        }
        catch (Exception error)
        {
            LogCloseFailed(_log, error.Message);
        }
    }

    /// <summary>
    /// Re-reads the map every membership interval, and sooner (but at most every 100 ms) when a call waits for an
    /// owner it does not find.
    /// </summary>
    private async Task LoopAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                var soon = Volatile.Read(ref _refreshSoon).Task;
                await Task.WhenAny(Task.Delay(_interval, _time, cancellationToken), soon);
                cancellationToken.ThrowIfCancellationRequested();
                if (soon.IsCompleted)
                {
                    Interlocked.Exchange(ref _refreshSoon, new(TaskCreationOptions.RunContinuationsAsynchronously));
                    await Task.Delay(MinRefreshSpacing, _time, cancellationToken);
                }

                try
                {
                    await RefreshAsync(cancellationToken);
                }
                catch (UnavailableException error)
                {
                    LogMapUnavailable(_log, error.Message);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    /// <summary>
    /// The connection to one silo, opened on first use and again after it is lost. A failed attempt is remembered
    /// briefly, so a dead silo costs calls one failed connect, not one each, until the map moves its partitions.
    /// </summary>
    private sealed class SiloLink(string siloId, string address, ClusterClient client) : IAsyncDisposable
    {
        private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(2);
        private static readonly TimeSpan FailureMemory = TimeSpan.FromMilliseconds(250);
        private readonly Lock _lock = new();
        private Task<SiloConnection>? _connection;
        private long _failedAt;
        private string _failure = "";

        public ValueTask<SiloConnection> ConnectAsync(CancellationToken cancellationToken)
        {
            var current = Volatile.Read(ref _connection);
            if (current is { IsCompletedSuccessfully: true } && current.Result.IsOpen)
            {
                return new ValueTask<SiloConnection>(current.Result);
            }

            return new ValueTask<SiloConnection>(ConnectSlowAsync(cancellationToken));
        }

        private async Task<SiloConnection> ConnectSlowAsync(CancellationToken cancellationToken)
        {
            Task<SiloConnection> attempt;
            lock (_lock)
            {
                if (_connection is { IsCompleted: true } done && (!done.IsCompletedSuccessfully || !done.Result.IsOpen))
                {
                    if (!done.IsCompletedSuccessfully && client._time.GetElapsedTime(_failedAt) < FailureMemory)
                    {
                        throw new SiloUnreachableException(_failure);
                    }

                    _connection = null;
                }

                attempt = _connection ??= OpenAsync();
            }

            return await attempt.WaitAsync(cancellationToken);
        }

        private async Task<SiloConnection> OpenAsync()
        {
            try
            {
                var connection = await SiloConnection.ConnectAsync(address, client._secret, ConnectTimeout, CancellationToken.None);
                if (connection.SiloId != siloId)
                {
                    await connection.DisposeAsync();
                    throw new SiloUnreachableException($"{address} is now silo {connection.SiloId}, not {siloId}");
                }

                LogConnected(client._log, siloId, address);
                return connection;
            }
            catch (SiloUnreachableException error)
            {
                _failedAt = client._time.GetTimestamp();
                _failure = error.Message;
                LogConnectFailed(client._log, siloId, address, error.Message);
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (Volatile.Read(ref _connection) is { IsCompletedSuccessfully: true } open)
            {
                await open.Result.DisposeAsync();
            }
        }
    }

    [LoggerMessage(EventId = 3201, Level = LogLevel.Information, Message = "Partition map: {Silos} live silos, {Unowned} partitions without an owner")]
    private static partial void LogMap(ILogger logger, int silos, int unowned);

    [LoggerMessage(EventId = 3202, Level = LogLevel.Warning, Message = "The partition map could not be read ({Reason}); routing by the last one")]
    private static partial void LogMapUnavailable(ILogger logger, string reason);

    [LoggerMessage(EventId = 3203, Level = LogLevel.Information, Message = "Connected to silo {SiloId} at {Address}")]
    private static partial void LogConnected(ILogger logger, string siloId, string address);

    [LoggerMessage(EventId = 3204, Level = LogLevel.Warning, Message = "Silo {SiloId} at {Address} is unreachable: {Reason}")]
    private static partial void LogConnectFailed(ILogger logger, string siloId, string address, string reason);

    [LoggerMessage(EventId = 3206, Level = LogLevel.Warning, Message = "Closing a connection to a silo that left failed: {Reason}")]
    private static partial void LogCloseFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 3205, Level = LogLevel.Warning, Message = "No silo served partition {Partition} within the route timeout ({Reason}); answered 503")]
    private static partial void LogNoRoute(ILogger logger, int partition, string reason);
}
