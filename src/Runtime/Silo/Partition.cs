using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Presence.Grains;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;
using Presence.Runtime.Timers;

namespace Presence.Runtime.Silo;

/// <summary>
/// A slice of the device key space processed one turn at a time: a turn takes a batch of grain calls (and the
/// timing wheel's due entries when a tick is pending), applies them to activated grains with no locks, commits
/// what they changed in one storage write (a natural group commit), then replies. Grains are activated on their
/// first call and collected when idle and offline. Runs on the thread pool; never more than one turn at a time.
/// </summary>
internal sealed class Partition : IThreadPoolWorkItem
{
    private const int MaxCallsPerTurn = 256;

    // Small slices: during a timeout storm heartbeats wait at most one slice, not the whole storm.
    private const int MaxExpiriesPerTurn = 128;

    // Steady state at a million devices is about 15 due entries a partition a tick; more than this is a storm.
    private const int MaxInlineExpiries = 32;

    // While storage is down, a device past its deadline is looked at again this often (it cannot go offline durably).
    private static readonly TimeSpan OutageRecheck = TimeSpan.FromSeconds(1);

    private readonly ConcurrentQueue<GrainCall> _inbox = new();
    private readonly Dictionary<DeviceKey, Activation> _activations = [];
    private readonly HashSet<DeviceKey> _dirty = [];
    private readonly TimingWheel<DeviceGrain> _wheel;
    private readonly List<TimingWheel<DeviceGrain>.Entry> _due = [];
    private readonly List<GrainCall> _calls = [];
    private readonly List<DeviceKey> _emptied = [];
    private readonly List<GrainCall> _barriers = [];

    // Devices whose commit failed: deactivated, and activated again from storage once it answers.
    private readonly HashSet<DeviceKey> _reload = [];

    private const int LaneIdle = 0, LaneWaiting = 1, LaneAdmitted = 2;
    private int _laneState;
    private bool _admittedThisTurn;
    private bool _quiet = true;
    private readonly PartitionCommit _commit = new();
    private readonly SiloContext _silo;
    private int _dueIndex;
    private int _scheduled;
    private int _tickRequested;
    private DateTime _nextFlush;
    private int _activationCount;
    private DateTime _claimedAt;
    private PartitionFencedException? _fenced;
    private bool _retired;

    // Activations keep times as ints relative to these (16 bytes an activation instead of 24).
    private readonly DateTime _origin;
    private readonly long _tickOrigin;

    public Partition(int id, SiloContext silo)
    {
        Id = id;
        _silo = silo;
        _wheel = new TimingWheel<DeviceGrain>(silo.TimerTick, 64);
        _commit.Partition = id;
        _origin = silo.Now();
        _tickOrigin = _wheel.TickOf(_origin) - 1;
    }

    public int Id { get; }

    /// <summary>The lease epoch every write of this partition carries.</summary>
    public long Epoch => _commit.Epoch;

    /// <summary>Set when another process took this partition over: nothing more is written or served.</summary>
    public bool IsFenced => Volatile.Read(ref _fenced) is not null;

    /// <summary>This silo now owns the partition at <paramref name="epoch"/>; devices loaded from now on get the recovery grace.</summary>
    public void Claimed(long epoch, DateTime at)
    {
        _commit.Epoch = epoch;
        _claimedAt = at;
    }

    public DevicePolicy Policy => _silo.Policy;

    public IPresenceStore Store => _silo.Store;

    public TenantActivity Activity => _silo.Activity;

    /// <summary>Events emitted by the current turn; grains append, the turn commits them.</summary>
    public List<DeviceEvent> Outbox => _commit.Events;

    /// <summary>Activated grains (read from other threads only as an approximate gauge).</summary>
    public int ActivationCount => Volatile.Read(ref _activationCount);

    /// <summary>
    /// Queues a call. When the partition is idle the caller runs the turn itself: the result is then complete
    /// before the caller awaits it, which saves two thread-pool hops on the heartbeat path.
    /// </summary>
    public void Post(GrainCall call)
    {
        _inbox.Enqueue(call);
        if (Interlocked.CompareExchange(ref _scheduled, 1, 0) == 0)
        {
            ((IThreadPoolWorkItem)this).Execute();
        }
    }

    /// <summary>
    /// False when the partition has nothing on its timers (no wheel entries, nothing to write behind, no backlog):
    /// the silo's ticker then leaves it alone instead of waking a thousand idle partitions four times a second.
    /// </summary>
    public bool NeedsTicks => !Volatile.Read(ref _quiet);

    public void RequestTick()
    {
        Volatile.Write(ref _tickRequested, 1);
        Schedule();
    }

    private void Schedule()
    {
        if (Interlocked.CompareExchange(ref _scheduled, 1, 0) == 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
    }

    void IThreadPoolWorkItem.Execute()
    {
        var turn = RunTurnAsync();
        if (turn.IsCompletedSuccessfully)
        {
            AfterTurn();
        }
        else
        {
            _ = AwaitTurnAsync(turn);
        }
    }

    private async Task AwaitTurnAsync(ValueTask turn)
    {
        await turn.ConfigureAwait(false);
        AfterTurn();
    }

    private void AfterTurn()
    {
        if (_admittedThisTurn)
        {
            _admittedThisTurn = false;
            Volatile.Write(ref _laneState, LaneIdle);
            _silo.Expiries.Done();
        }
        else if (Volatile.Read(ref _laneState) == LaneAdmitted)
        {
            // The lane admitted this partition while a call's turn ran: the next turn is the admitted one.
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
            return;
        }

        if (HasCallsOrTick() || (HasBacklog() && !IsStorm()))
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
            return;
        }

        Volatile.Write(ref _scheduled, 0);
        if (HasBacklog() && Interlocked.CompareExchange(ref _laneState, LaneWaiting, LaneIdle) == LaneIdle)
        {
            _silo.Expiries.Enqueue(this);
        }

        if (HasCallsOrTick())
        {
            Schedule();
        }
    }

    /// <summary>Called by the <see cref="ExpiryLane"/>: the next turn of this partition works off a slice of its backlog.</summary>
    public void RunExpirySlice()
    {
        Volatile.Write(ref _laneState, LaneAdmitted);
        Schedule();
    }

    private bool HasCallsOrTick() => !_inbox.IsEmpty || Volatile.Read(ref _tickRequested) != 0;

    private bool HasBacklog() => _dueIndex < _due.Count;

    /// <summary>More due timers than one slice: worked off through the lane, so a storm cannot flood the thread pool.</summary>
    private bool IsStorm() => _due.Count - _dueIndex > MaxInlineExpiries;

    private async ValueTask RunTurnAsync()
    {
        _admittedThisTurn = Volatile.Read(ref _laneState) == LaneAdmitted;
        try
        {
            var now = _silo.Now();
            if (Interlocked.Exchange(ref _tickRequested, 0) != 0 && !_retired)
            {
                if (_reload.Count > 0 && Store.IsAvailable)
                {
                    await ReloadAsync(now).ConfigureAwait(false);
                }

                _wheel.Advance(now, _due);
                if (now >= _nextFlush)
                {
                    FlushDirty();
                    _nextFlush = now + _silo.FlushInterval;
                }
            }

            // A pending tick ends the batch, so timers are never applied after calls that arrived later.
            while (_calls.Count < MaxCallsPerTurn && Volatile.Read(ref _tickRequested) == 0 && _inbox.TryDequeue(out var call))
            {
                _calls.Add(call);
                try
                {
                    if (_fenced is not null)
                    {
                        throw _fenced;
                    }

                    if (_retired)
                    {
                        throw new Cluster.NotOwnerException(Id);
                    }

                    var grain = !call.NeedsGrain ? null
                        : _activations.TryGetValue(call.Key, out var active) ? active.Grain
                        : await ActivateAsync(call.Key).ConfigureAwait(false);

                    // Read the clock per call: activation may have awaited storage since the turn began.
                    now = _silo.Now();
                    if (grain is not null && !Store.IsAvailable && (call.NeedsDurableWrite(grain, Policy) || grain.Deadline(Policy) <= now))
                    {
                        // Refused before anything is applied: a 503 means nothing happened.
                        throw new StorageUnavailableException("storage is unavailable; this change must be durable before it is acknowledged");
                    }

                    if (grain is not null)
                    {
                        // A deadline that passed is applied before the call, whether or not the wheel got there first.
                        Track(grain, grain.Expire(now, Policy, Outbox));
                    }

                    call.Invoke(grain!, this, now);
                    if (grain is { State: null, OpenChannels: 0 })
                    {
                        // Kept until the commit is written: a later call of this turn must not reload the old state.
                        _emptied.Add(call.Key);
                    }
                    else if (grain is not null)
                    {
                        Touch(grain, now);
                    }
                }
                catch (Exception error)
                {
                    _calls.RemoveAt(_calls.Count - 1);
                    call.Fail(error);
                }
            }

            if (!_retired && (_admittedThisTurn || !IsStorm()))
            {
                ExpireDue(now);
            }

            var failed = _commit.IsEmpty ? null : await CommitAsync().ConfigureAwait(false);

            foreach (var key in _emptied)
            {
                if (_activations.TryGetValue(key, out var activation) && activation.Grain is { State: null, OpenChannels: 0 })
                {
                    Deactivate(key);
                }
            }

            foreach (var call in _calls)
            {
                if (failed is { } failure && failure.Keys.Contains(call.Key))
                {
                    call.Fail(failure.Error);
                }
                else if (call is BarrierCall && _dueIndex < _due.Count)
                {
                    _barriers.Add(call); // a barrier means "after every timer that fell due before it"
                }
                else
                {
                    call.Reply();
                }
            }

            if (_dueIndex >= _due.Count && _barriers.Count > 0)
            {
                _barriers.ForEach(static barrier => barrier.Reply());
                _barriers.Clear();
            }
        }
        catch (Exception error)
        {
            _silo.Log.TurnFailed(error, Id);
            foreach (var call in _calls)
            {
                call.Fail(error);
            }
        }
        finally
        {
            _calls.Clear();
            _commit.Clear();
            _emptied.Clear();
            Volatile.Write(ref _quiet, _wheel.Count == 0 && _dirty.Count == 0 && _reload.Count == 0 && _dueIndex >= _due.Count);
        }
    }

    /// <summary>
    /// Writes the turn's commit. When storage fails, the store keeps the commit and writes it once storage returns:
    /// the grains keep their new state, and the calls that produced it are answered 503 (their outcome is not yet
    /// durable). When another process has taken the partition over, it stops serving.
    /// </summary>
    private async ValueTask<(HashSet<DeviceKey> Keys, Exception Error)?> CommitAsync()
    {
        using var activity = SiloMetrics.Activities.StartActivity("presence.partition.commit");
        activity?.SetTag("presence.partition", Id);
        activity?.SetTag("presence.events", _commit.Events.Count);
        activity?.SetTag("presence.devices", _commit.Upserts.Count);
        try
        {
            await _silo.Store.CommitAsync(_commit).ConfigureAwait(false);
            _silo.Metrics.Committed(_commit);
            return null;
        }
        catch (Exception error)
        {
            var keys = new HashSet<DeviceKey>(_commit.Upserts.Select(device => device.Key));
            keys.UnionWith(_commit.Removals);
            keys.UnionWith(_commit.Events.Select(e => e.Key));
            if (error is PartitionFencedException fenced)
            {
                Volatile.Write(ref _fenced, fenced);
                _silo.Log.PartitionFenced(Id, Epoch);
            }
            else
            {
                if (error is not UnavailableException)
                {
                    _silo.Log.TurnFailed(error, Id);
                }

                // Not written: forget what memory holds of these devices and read them again from storage, so a
                // 503 leaves nothing applied. Until then a call for one of them loads it itself.
                foreach (var key in keys)
                {
                    Deactivate(key);
                    _dirty.Remove(key);
                    _reload.Add(key);
                }
            }

            return (keys, error);
        }
    }

    /// <summary>
    /// Activates again, from storage, the devices of failed commits that no call has brought back yet, so the online
    /// ones among them are timed again (with the recovery grace from now).
    /// </summary>
    private async Task ReloadAsync(DateTime now)
    {
        foreach (var key in _reload.Take(MaxCallsPerTurn).ToList())
        {
            if (!_activations.ContainsKey(key))
            {
                DeviceRecord? state;
                try
                {
                    state = await _silo.Store.ReadDeviceAsync(key).ConfigureAwait(false);
                }
                catch (UnavailableException)
                {
                    return; // gone again: a later tick retries
                }

                if (state is not null)
                {
                    var grain = Activate(key, state);
                    grain.GrantRecoveryGrace(now, Policy);
                    Touch(grain, now);
                }
            }

            _reload.Remove(key);
        }
    }

    /// <summary>Records what a turn changed: durable changes go into this turn's commit, others are written behind.</summary>
    public void Track(DeviceGrain grain, GrainChange change)
    {
        if ((change.Kind & ChangeKind.Removed) != 0)
        {
            // The removal supersedes this turn's earlier writes of the device, and its history goes with it.
            var key = grain.Key;
            _commit.Upserts.RemoveAll(device => device.Key == key);
            _commit.EndedSessions.RemoveAll(ended => ended.Key == key);
            _commit.Removals.Add(key);
            _dirty.Remove(key);
            return;
        }
        else if (change.IsDurable)
        {
            _commit.Upserts.Add(grain.State!);
            _dirty.Remove(grain.Key);
        }
        else if ((change.Kind & ChangeKind.State) != 0)
        {
            _dirty.Add(grain.Key);
        }

        if (change.EndedSession is { } ended)
        {
            _commit.EndedSessions.Add((grain.Key, ended));
        }
    }

    /// <summary>A call used the grain: it stays active, and its next deadline is on the wheel.</summary>
    private void Touch(DeviceGrain grain, DateTime now)
    {
        ref var activation = ref CollectionsMarshal.GetValueRefOrNullRef(_activations, grain.Key);
        activation.LastUsedSecond = SecondOf(now);
        ScheduleWake(ref activation, grain, now);
    }

    /// <summary>Stops and returns when every call posted before it has been applied and committed.</summary>
    public Task BarrierAsync()
    {
        var barrier = new BarrierCall();
        Post(barrier);
        return barrier.Completion;
    }

    private async ValueTask<DeviceGrain> ActivateAsync(DeviceKey key)
    {
        if (_activations.TryGetValue(key, out var existing))
        {
            return existing.Grain;
        }

        var state = await _silo.Store.ReadDeviceAsync(key).ConfigureAwait(false);
        return Activate(key, state);
    }

    private DeviceGrain Activate(DeviceKey key, DeviceRecord? state)
    {
        var grain = new DeviceGrain(key, state);
        grain.GrantRecoveryGrace(_claimedAt, Policy);
        _activations[key] = new Activation(grain);
        Interlocked.Increment(ref _activationCount);
        return grain;
    }

    /// <summary>
    /// Activates devices that storage holds as online (after a restart or take-over), so their timeouts run; each
    /// gets the recovery grace. Devices a call has already activated are left as they are.
    /// </summary>
    internal void Recover(IReadOnlyList<DeviceRecord> devices, DateTime now)
    {
        foreach (var device in devices)
        {
            if (!_activations.ContainsKey(device.Key))
            {
                Touch(Activate(device.Key, device), now);
            }
        }
    }

    private void Deactivate(DeviceKey key)
    {
        if (_activations.Remove(key))
        {
            Interlocked.Decrement(ref _activationCount);
        }
    }

    /// <summary>
    /// Puts the grain's next wake-up on the wheel: its deadline, or else the time it may be collected. Only an
    /// earlier wake-up is scheduled anew; a later one is found lazily when the current entry fires.
    /// </summary>
    private void ScheduleWake(ref Activation activation, DeviceGrain grain, DateTime now)
    {
        var idleUntil = IdleUntil(activation);
        var wake = grain.Deadline(Policy) ?? (idleUntil > now ? idleUntil : now + _silo.CollectionAge);
        var tick = _wheel.TickOf(wake);
        if (activation.WheelTick == 0 || tick < _tickOrigin + activation.WheelTick)
        {
            activation.WheelTick = (int)(_wheel.Schedule(grain, wake) - _tickOrigin);
        }
    }

    private void ExpireDue(DateTime now)
    {
        if (_due.Count == 0)
        {
            return;
        }

        var end = Math.Min(_due.Count, _dueIndex + MaxExpiriesPerTurn);
        for (; _dueIndex < end; _dueIndex++)
        {
            var entry = _due[_dueIndex];
            ref var activation = ref CollectionsMarshal.GetValueRefOrNullRef(_activations, entry.Item.Key);
            if (System.Runtime.CompilerServices.Unsafe.IsNullRef(ref activation) || activation.Grain != entry.Item || _tickOrigin + activation.WheelTick != entry.Tick)
            {
                continue; // a stale entry: the grain was rescheduled earlier, or collected
            }

            activation.WheelTick = 0;
            var grain = activation.Grain;
            if (!Store.IsAvailable && grain.Deadline(Policy) <= now)
            {
                // Going offline must be durable: look again later.
                activation.WheelTick = (int)(_wheel.Schedule(grain, now + OutageRecheck) - _tickOrigin);
                continue;
            }

            var change = grain.Expire(now, Policy, Outbox);
            if (change.Kind != ChangeKind.None)
            {
                _silo.Log.DeviceExpired(grain.Key.TenantId, grain.Key.ShortId);
                Track(grain, change);
                ScheduleWake(ref activation, grain, now);
            }
            else if (grain.Deadline(Policy) is null && grain.OpenChannels == 0 && !_dirty.Contains(grain.Key)
                && now >= IdleUntil(activation))
            {
                Deactivate(grain.Key);
            }
            else
            {
                ScheduleWake(ref activation, grain, now);
            }
        }

        if (_dueIndex >= _due.Count)
        {
            _due.Clear();
            _dueIndex = 0;
        }
    }

    /// <summary>
    /// Stops serving: calls already queued are applied first, later ones fail with <see cref="Cluster.NotOwnerException"/>,
    /// and timers stop. With <paramref name="flush"/> every dirty grain is handed to storage first (graceful hand-off).
    /// </summary>
    public Task RetireAsync(bool flush)
    {
        var retire = new RetireCall(flush);
        Post(retire);
        return retire.Completion;
    }

    internal void Retire(bool flush)
    {
        if (flush)
        {
            FlushDirty();
        }

        // Timers that fell due are the next owner's now (it grants the recovery grace).
        _retired = true;
        _due.Clear();
        _dueIndex = 0;
    }

    /// <summary>Completes once every dirty grain of this partition has been written.</summary>
    public Task FlushAsync()
    {
        var flush = new FlushCall();
        Post(flush);
        return flush.Completion;
    }

    internal void FlushDirty()
    {
        if (_dirty.Count == 0 || _fenced is not null)
        {
            return;
        }

        var states = new List<DeviceRecord>(_dirty.Count);
        foreach (var key in _dirty)
        {
            if (_activations.TryGetValue(key, out var activation) && activation.Grain.State is { } state)
            {
                states.Add(state);
            }
        }

        _silo.Store.WriteBehind(Id, Epoch, states);

        // A burst (a fleet registering at once) must not leave every partition holding set capacity for all of it.
        var burst = _dirty.Count > 1024;
        _dirty.Clear();
        if (burst)
        {
            _dirty.TrimExcess();
        }
    }

    private int SecondOf(DateTime time) => (int)((time - _origin).Ticks / TimeSpan.TicksPerSecond);

    private DateTime IdleUntil(in Activation activation) =>
        _origin + TimeSpan.FromSeconds(activation.LastUsedSecond) + _silo.CollectionAge;

    /// <summary>Runtime bookkeeping of one activated grain, stored inline in the partition's map.</summary>
    private struct Activation(DeviceGrain grain)
    {
        public readonly DeviceGrain Grain = grain;

        /// <summary>The wheel tick this grain is scheduled at, relative to the partition's first tick; 0 when not scheduled.</summary>
        public int WheelTick;

        /// <summary>Seconds since the partition started when a call last used the grain.</summary>
        public int LastUsedSecond;
    }
}
