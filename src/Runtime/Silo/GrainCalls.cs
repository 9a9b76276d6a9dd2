using Presence.Grains;
using Presence.Grains.Abstractions;

namespace Presence.Runtime.Silo;

/// <summary>
/// A message to one device grain. A partition invokes it in a turn, persists what the turn changed, then
/// replies: a caller never sees a result whose durable part has not been committed.
/// </summary>
internal abstract class GrainCall(DeviceKey key)
{
    public DeviceKey Key { get; } = key;

    /// <summary>Whether a missing device should be looked up in storage before invoking (all calls but barriers).</summary>
    public virtual bool NeedsGrain => true;

    public abstract void Invoke(DeviceGrain grain, Partition partition, DateTime now);

    /// <summary>Whether invoking may change the grain durably (refused up front while storage is down).</summary>
    public virtual bool NeedsDurableWrite(DeviceGrain grain, DevicePolicy policy) => false;

    public abstract void Reply();

    public abstract void Fail(Exception error);
}

internal abstract class GrainCall<TResult>(DeviceKey key) : GrainCall(key)
{
    private readonly TaskCompletionSource<TResult> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    protected TResult Result { get; set; } = default!;

    public Task<TResult> Completion => _completion.Task;

    public override void Reply() => _completion.TrySetResult(Result);

    public override void Fail(Exception error) => _completion.TrySetException(error);
}

internal sealed class HeartbeatCall(DeviceKey key, HeartbeatInput input) : GrainCall<HeartbeatResult>(key)
{
    /// <summary>A registration, or coming back online.</summary>
    public override bool NeedsDurableWrite(DeviceGrain grain, DevicePolicy policy) => grain.State is not { Status: DeviceStatus.Online };

    public override void Invoke(DeviceGrain grain, Partition partition, DateTime now)
    {
        Result = grain.Heartbeat(input, now, partition.Policy, partition.Outbox, out var change);
        partition.Track(grain, change);
        if (Result.Outcome == HeartbeatOutcome.Accepted)
        {
            partition.Activity.Record(Key.TenantId, now);
        }
    }
}

internal sealed class ProvisionCall(DeviceKey key, ProvisionInput input) : GrainCall<ProvisionResult>(key)
{
    public override bool NeedsDurableWrite(DeviceGrain grain, DevicePolicy policy) => true;

    public override void Invoke(DeviceGrain grain, Partition partition, DateTime now)
    {
        Result = grain.Provision(input, now, partition.Outbox, out var change);
        partition.Track(grain, change);
    }
}

internal sealed class GetCall(DeviceKey key) : GrainCall<DeviceRecord?>(key)
{
    public override void Invoke(DeviceGrain grain, Partition partition, DateTime now) => Result = grain.State;
}

/// <summary>Removes the device; with <paramref name="silentBefore"/>, only if it is offline and was last seen before then.</summary>
internal sealed class RemoveCall(DeviceKey key, DateTime? silentBefore = null) : GrainCall<bool>(key)
{
    public override bool NeedsDurableWrite(DeviceGrain grain, DevicePolicy policy) => grain.State is not null;

    public override void Invoke(DeviceGrain grain, Partition partition, DateTime now)
    {
        if (silentBefore is { } before && !(grain.State is { Status: DeviceStatus.Offline } device && device.LastSeenAt < before))
        {
            Result = false;
            return;
        }

        var change = grain.Remove(now, partition.Outbox);
        partition.Track(grain, change);
        Result = change.Kind != ChangeKind.None;
    }
}

internal sealed class ChannelCall(DeviceKey key, bool opened) : GrainCall<bool>(key)
{
    public override void Invoke(DeviceGrain grain, Partition partition, DateTime now)
    {
        if (opened)
        {
            grain.ChannelOpened();
        }
        else
        {
            grain.ChannelClosed(now);
        }

        Result = grain.State is not null;
    }
}

internal sealed class CommandResultCall(DeviceKey key, CommandResult result) : GrainCall<bool>(key)
{
    public override bool NeedsDurableWrite(DeviceGrain grain, DevicePolicy policy) => grain.State is not null;

    public override void Invoke(DeviceGrain grain, Partition partition, DateTime now)
    {
        var change = grain.CommandResult(result, now, partition.Outbox);
        partition.Track(grain, change);
        Result = change.Kind != ChangeKind.None;
    }
}

/// <summary>The current session from the grain, ended ones from storage (read after this turn's commit).</summary>
internal sealed class SessionsCall(DeviceKey key, int limit) : GrainCall<IReadOnlyList<SessionRecord>?>(key)
{
    private SessionRecord? _current;
    private bool _exists;
    private Partition? _partition;

    public override void Invoke(DeviceGrain grain, Partition partition, DateTime now)
    {
        _partition = partition;
        _exists = grain.State is not null;
        if (grain.State is { Status: DeviceStatus.Online } device)
        {
            _current = new SessionRecord(device.SessionId, device.SessionStartedAt, null, null, device.SessionHeartbeats);
        }
    }

    public override void Reply() => _ = ReplyAsync();

    private async Task ReplyAsync()
    {
        try
        {
            if (!_exists)
            {
                Result = null;
            }
            else
            {
                var wanted = _current is null ? limit : limit - 1;
                var ended = wanted > 0 ? await _partition!.Store.ReadEndedSessionsAsync(Key, wanted) : [];
                Result = _current is null ? ended : [_current, .. ended];
            }

            base.Reply();
        }
        catch (Exception error)
        {
            Fail(error);
        }
    }
}

/// <summary>Completes once every call posted to the partition before it has been applied and committed.</summary>
internal sealed class BarrierCall() : GrainCall<bool>(default)
{
    public override bool NeedsGrain => false;

    public override void Invoke(DeviceGrain grain, Partition partition, DateTime now) => Result = true;
}

/// <summary>A barrier that first writes every dirty grain of the partition (graceful shutdown, hand-off).</summary>
internal sealed class FlushCall() : GrainCall<bool>(default)
{
    public override bool NeedsGrain => false;

    public override void Invoke(DeviceGrain grain, Partition partition, DateTime now)
    {
        partition.FlushDirty();
        Result = true;
    }
}

/// <summary>Ends this silo's ownership of the partition (see <see cref="Partition.RetireAsync"/>).</summary>
internal sealed class RetireCall(bool flush) : GrainCall<bool>(default)
{
    public override bool NeedsGrain => false;

    public override void Invoke(DeviceGrain grain, Partition partition, DateTime now)
    {
        partition.Retire(flush);
        Result = true;
    }
}

/// <summary>Activates devices storage holds as online, after a restart or take-over (see <see cref="Partition.Recover"/>).</summary>
internal sealed class RecoverCall(IReadOnlyList<DeviceRecord> devices) : GrainCall<bool>(default)
{
    public override bool NeedsGrain => false;

    public override void Invoke(DeviceGrain grain, Partition partition, DateTime now)
    {
        partition.Recover(devices, now);
        Result = true;
    }
}
