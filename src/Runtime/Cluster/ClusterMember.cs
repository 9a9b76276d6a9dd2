using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Presence.Runtime.Options;
using Presence.Runtime.Silo;
using Presence.Runtime.Storage;

namespace Presence.Runtime.Cluster;

/// <summary>
/// A silo's membership in the cluster. Every round (<c>Presence:Cluster:MembershipIntervalSeconds</c>) it refreshes
/// its row, renews its leases in one statement (dropping any it no longer holds), declares stale silos dead, reads the
/// membership and the leases, and moves partitions toward their rendezvous targets: it acquires free or expired ones
/// targeted to it, and hands off (flush, then release) those targeted elsewhere, a batch per round. Stopping drains:
/// the silo leaves the targets, hands everything off, and marks itself dead.
/// </summary>
public sealed partial class ClusterMember : IHostedService, IDisposable
{
    private readonly SiloRuntime _silo;
    private readonly IMembershipStore _store;
    private readonly Func<string> _address;
    private readonly TimeProvider _time;
    private readonly ILogger<ClusterMember> _log;
    private readonly TimeSpan _interval;
    private readonly TimeSpan _siloTimeout;
    private readonly TimeSpan _lease;
    private readonly int _handOffBatch;
    private readonly SemaphoreSlim _round = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private Task _loop = Task.CompletedTask;
    private bool _joined;
    private bool _draining;
    private int _healthyRounds;

    public ClusterMember(
        SiloRuntime silo, IMembershipStore store, Func<string> address, TimeProvider time, IOptions<ClusterOptions> options, ILogger<ClusterMember> log)
    {
        _silo = silo;
        _store = store;
        _address = address;
        _time = time;
        _log = log;
        _interval = TimeSpan.FromSeconds(options.Value.MembershipIntervalSeconds);
        _siloTimeout = TimeSpan.FromSeconds(options.Value.SiloTimeoutSeconds);
        _lease = TimeSpan.FromSeconds(options.Value.LeaseSeconds);
        _handOffBatch = options.Value.HandOffBatch;
    }

    public string SiloId => _silo.SiloId;

    /// <summary>Rounds that completed since start (tests wait for rounds; operators see it in logs).</summary>
    public int Rounds { get; private set; }

    /// <summary>The last round reached storage and did its work.</summary>
    public bool IsHealthy => _healthyRounds > 0;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var now = Now();
        var address = _address();
        await _store.JoinAsync(new SiloEntry(SiloId, address, now.Ticks, SiloStatus.Joining, _silo.StartedAt, now, 0), cancellationToken).ConfigureAwait(false);
        LogJoined(_log, SiloId, address);
        await RunRoundAsync(cancellationToken).ConfigureAwait(false);
        _loop = LoopAsync(_stopping.Token);
    }

    /// <summary>Drains: stops taking partitions, hands off every one it owns, then leaves the membership.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _draining = true;
        var owned = _silo.OwnedPartitions().Count;
        LogDraining(_log, SiloId, owned);
        try
        {
            await RunRoundAsync(cancellationToken).ConfigureAwait(false);
            await _store.HeartbeatAsync(SiloId, SiloStatus.Dead, 0, Now(), cancellationToken).ConfigureAwait(false);
            LogLeft(_log, SiloId, owned);
        }
        catch (Exception error) when (error is UnavailableException or OperationCanceledException)
        {
            // Unreleased leases simply expire: the other silos take the partitions over as after a crash.
            LogDrainFailed(_log, SiloId, error.Message);
        }
    }

    /// <summary>Stops abruptly without handing anything off or leaving (what a crash looks like; tests use it).</summary>
    public async Task AbandonAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _round.Dispose();
    }

    /// <summary>One membership round (the loop runs one per interval; tests call it directly to step the cluster).</summary>
    public async Task RunRoundAsync(CancellationToken cancellationToken = default)
    {
        await _round.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await RoundAsync(cancellationToken).ConfigureAwait(false);
            _joined = true;
            if (_healthyRounds++ == 0 && Rounds > 0)
            {
                LogReconnected(_log, SiloId);
            }
        }
        catch (UnavailableException error)
        {
            if (_healthyRounds > 0 || Rounds == 0)
            {
                LogRoundFailed(_log, SiloId, error.Message);
            }

            _healthyRounds = 0;
        }
        finally
        {
            Rounds++;
            _round.Release();
        }
    }

    private async Task RoundAsync(CancellationToken cancellationToken)
    {
        var now = Now();
        var status = _draining ? SiloStatus.Leaving : _joined ? SiloStatus.Active : SiloStatus.Joining;
        var previous = await _store.HeartbeatAsync(SiloId, status, _silo.Activations, now, cancellationToken).ConfigureAwait(false);
        if (previous is null)
        {
            // Our row was deleted (dead for long): register again.
            await _store.JoinAsync(new SiloEntry(SiloId, _address(), now.Ticks, status, _silo.StartedAt, now, _silo.Activations), cancellationToken).ConfigureAwait(false);
        }
        else if (previous == SiloStatus.Dead && !_draining)
        {
            LogResurrected(_log, SiloId);
        }

        // Renewal tells which leases are still ours: a partition taken over meanwhile is dropped here.
        var renewed = await _store.RenewAsync(SiloId, now + _lease, cancellationToken).ConfigureAwait(false);
        var owned = _silo.OwnedPartitions();
        var lost = owned.Where(o => !renewed.TryGetValue(o.Key, out var epoch) || epoch != o.Value).Select(o => o.Key).ToList();
        if (lost.Count > 0)
        {
            _silo.Lost(lost);
        }

        // A lease this silo holds but no longer serves (a hand-off whose release did not reach storage): free it now.
        var stray = renewed.Where(r => !owned.ContainsKey(r.Key)).Select(r => new AcquiredPartition(r.Key, r.Value)).ToList();
        if (stray.Count > 0)
        {
            await _store.ReleaseAsync(SiloId, stray, cancellationToken).ConfigureAwait(false);
        }

        // Only a silo that has itself been reaching storage judges others or takes their partitions: after an outage
        // every row is stale and every lease expired until each silo's first round back renews its own.
        var judging = _healthyRounds > 0 || Rounds == 0;
        if (judging)
        {
            foreach (var dead in await _store.DeclareDeadAsync(now - _siloTimeout, cancellationToken).ConfigureAwait(false))
            {
                LogDeclaredDead(_log, dead, _siloTimeout.TotalSeconds);
            }
        }

        var view = await _store.ReadAsync(cancellationToken).ConfigureAwait(false);
        var live = view.Silos.Where(s => s.SiloId != SiloId && s.IsLive(now, _siloTimeout)).Select(s => s.SiloId).ToList();
        if (!_draining)
        {
            live.Add(SiloId);
        }

        var placement = new Rendezvous(live);
        owned = _silo.OwnedPartitions();
        if (!_draining && judging)
        {
            var wanted = view.Partitions
                .Where(p => !owned.ContainsKey(p.Partition) && p.IsAcquirable(now) && placement.Target(p.Partition) == SiloId)
                .Select(p => p.Partition)
                .ToList();
            if (wanted.Count > 0)
            {
                var acquired = await _store.AcquireAsync(SiloId, wanted, now, now + _lease, cancellationToken).ConfigureAwait(false);
                if (acquired.Count > 0)
                {
                    _silo.Acquired(acquired);
                    LogAcquired(_log, SiloId, acquired.Count, owned.Count + acquired.Count);
                }
            }
        }

        var leaving = owned.Keys.Where(p => placement.Target(p) != SiloId).Order().Take(_draining ? int.MaxValue : _handOffBatch).ToList();
        if (leaving.Count > 0)
        {
            await _silo.HandOffAsync(leaving, cancellationToken).ConfigureAwait(false);
            await _store.ReleaseAsync(SiloId, leaving.Select(p => new AcquiredPartition(p, owned[p])).ToList(), cancellationToken).ConfigureAwait(false);
            LogHandedOff(_log, SiloId, leaving.Count, owned.Count - leaving.Count);
        }
    }

    private async Task LoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_interval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                try
                {
                    await RunRoundAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception error) when (error is not OperationCanceledException)
                {
                    LogRoundError(_log, error, SiloId);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    private DateTime Now() => _time.GetUtcNow().UtcDateTime;

    [LoggerMessage(EventId = 1201, Level = LogLevel.Information, Message = "Silo {SiloId} joined the cluster at {Address}")]
    private static partial void LogJoined(ILogger logger, string siloId, string address);

    [LoggerMessage(EventId = 1202, Level = LogLevel.Information, Message = "Silo {SiloId} acquired {Partitions} partitions (owns {Owned})")]
    private static partial void LogAcquired(ILogger logger, string siloId, int partitions, int owned);

    [LoggerMessage(EventId = 1203, Level = LogLevel.Information, Message = "Silo {SiloId} handed off {Partitions} partitions (owns {Owned})")]
    private static partial void LogHandedOff(ILogger logger, string siloId, int partitions, int owned);

    [LoggerMessage(EventId = 1204, Level = LogLevel.Warning, Message = "Silo {SiloId} declared dead: its row was not refreshed for {Seconds} s")]
    private static partial void LogDeclaredDead(ILogger logger, string siloId, double seconds);

    [LoggerMessage(EventId = 1205, Level = LogLevel.Warning, Message = "Silo {SiloId}: membership round failed ({Reason}); it keeps serving what it owns and retries every round")]
    private static partial void LogRoundFailed(ILogger logger, string siloId, string reason);

    [LoggerMessage(EventId = 1206, Level = LogLevel.Information, Message = "Silo {SiloId}: membership rounds reach storage again")]
    private static partial void LogReconnected(ILogger logger, string siloId);

    [LoggerMessage(EventId = 1207, Level = LogLevel.Warning,
        Message = "Silo {SiloId} had been declared dead (its row went stale) and is live again; partitions taken over meanwhile were dropped")]
    private static partial void LogResurrected(ILogger logger, string siloId);

    [LoggerMessage(EventId = 1208, Level = LogLevel.Information, Message = "Silo {SiloId} draining: handing off {Partitions} partitions")]
    private static partial void LogDraining(ILogger logger, string siloId, int partitions);

    [LoggerMessage(EventId = 1209, Level = LogLevel.Information, Message = "Silo {SiloId} left the cluster after handing off {Partitions} partitions")]
    private static partial void LogLeft(ILogger logger, string siloId, int partitions);

    [LoggerMessage(EventId = 1210, Level = LogLevel.Warning,
        Message = "Silo {SiloId} could not finish draining ({Reason}); its remaining leases expire and are taken over")]
    private static partial void LogDrainFailed(ILogger logger, string siloId, string reason);

    [LoggerMessage(EventId = 1211, Level = LogLevel.Error, Message = "Silo {SiloId}: membership round failed unexpectedly")]
    private static partial void LogRoundError(ILogger logger, Exception error, string siloId);
}
