using Presence.Grains.Abstractions;

namespace Presence.Grains;

/// <summary>
/// One device's behaviour as a state machine: each method takes an input and the current time, replaces
/// <see cref="State"/>, appends the events it emits to an outbox, and reports what changed; <see cref="Deadline"/>
/// says when the grain next needs to be woken. It does no I/O and reads no clock, so a host (the silo runtime,
/// or a test) drives it.
/// </summary>
public sealed class DeviceGrain(DeviceKey key, DeviceRecord? state)
{
    private static readonly TimeSpan RateWindow = TimeSpan.FromMinutes(1);

    private DateTime _rateWindowStart;
    private long _disconnectedTicks;
    private long _graceUntilTicks;
    private int _rateWindowCount;

    public DeviceKey Key { get; } = key;

    /// <summary>The device, or null when it does not exist (never registered, or removed).</summary>
    public DeviceRecord? State { get; private set; } = state;

    /// <summary>Open device channels: while any is open the device stays online.</summary>
    public int OpenChannels { get; private set; }

    /// <summary>When the last channel closed, while the disconnect grace runs (kept as ticks: 8 bytes, not 16).</summary>
    public DateTime? DisconnectedAt
    {
        get => _disconnectedTicks == 0 ? null : new DateTime(_disconnectedTicks, DateTimeKind.Utc);
        private set => _disconnectedTicks = value?.Ticks ?? 0;
    }

    public HeartbeatResult Heartbeat(HeartbeatInput input, DateTime now, DevicePolicy policy, List<DeviceEvent> outbox, out GrainChange change)
    {
        if (!TryTakeRateToken(now, policy, out var retryAfter))
        {
            change = GrainChange.None;
            return HeartbeatResult.Limited(retryAfter);
        }

        var previous = State;
        if (input.CredentialStamp is { } stamp && previous?.Credential?.Stamp != stamp)
        {
            change = GrainChange.None;
            return HeartbeatResult.Unauthorized;
        }

        DisconnectedAt = null;
        if (previous is null)
        {
            State = Register(input, now, policy);
            outbox.Add(new DeviceEvent
            {
                TenantId = Key.TenantId, DeviceId = Key.DeviceId, Type = DeviceEventType.Registered, Sequence = 1, Time = now,
                DeviceName = State.DeviceName, Platform = State.Platform,
            });
            outbox.Add(StatusEvent(State, 2, DeviceStatus.Offline, StatusReason.Heartbeat, now));
            change = new GrainChange(ChangeKind.State | ChangeKind.Durable);
            return HeartbeatResult.Accepted(State);
        }

        var updated = previous with
        {
            DeviceName = input.DeviceName is { } name && name != previous.DeviceName ? name : previous.DeviceName,
            Platform = SharedValues.Text(input.Platform, previous.Platform),
            AppVersion = SharedValues.Text(input.AppVersion, previous.AppVersion),
            Metrics = input.Metrics?.WithKeysOf(previous.Metrics) ?? previous.Metrics,
            Containers = SameContainers(input.Containers, previous.Containers) ? previous.Containers : input.Containers!,
            LastSeenAt = now,
            Version = previous.Version + 1,
            SessionHeartbeats = previous.SessionHeartbeats + 1,
        };

        if (previous.Status == DeviceStatus.Online)
        {
            State = updated;
            change = new GrainChange(ChangeKind.State);
            return HeartbeatResult.Accepted(State);
        }

        State = updated with
        {
            Status = DeviceStatus.Online,
            StatusChangedAt = now,
            SessionId = policy.NewSessionId(),
            SessionStartedAt = now,
            SessionHeartbeats = 1,
            Sequence = previous.Sequence + 1,
        };
        outbox.Add(StatusEvent(State, State.Sequence, DeviceStatus.Offline, StatusReason.Heartbeat, now));
        change = new GrainChange(ChangeKind.State | ChangeKind.Durable);
        return HeartbeatResult.Accepted(State);
    }

    /// <summary>
    /// Creates the device, offline and never seen (<c>device.registered</c>), or updates the fields an operator sets.
    /// Either way the change is durable before the caller is answered: it may carry a new secret.
    /// </summary>
    public ProvisionResult Provision(ProvisionInput input, DateTime now, List<DeviceEvent> outbox, out GrainChange change)
    {
        change = new GrainChange(ChangeKind.State | ChangeKind.Durable);
        if (State is not { } previous)
        {
            State = new DeviceRecord
            {
                TenantId = Key.TenantId,
                DeviceId = Key.DeviceId,
                DeviceName = input.DeviceName ?? Key.DeviceId,
                Status = DeviceStatus.Offline,
                FirstSeenAt = now,
                LastSeenAt = now,
                StatusChangedAt = now,
                SessionStartedAt = now,
                Labels = input.Labels ?? DeviceRecord.NoLabels,
                Timeout = input.Timeout ?? TimeSpan.Zero,
                Credential = input.Credential,
                Version = 1,
                Sequence = 1,
            };
            outbox.Add(new DeviceEvent
            {
                TenantId = Key.TenantId, DeviceId = Key.DeviceId, Type = DeviceEventType.Registered, Sequence = 1, Time = now,
                DeviceName = State.DeviceName,
            });
            return new ProvisionResult(State, Created: true);
        }

        State = previous with
        {
            DeviceName = input.DeviceName ?? previous.DeviceName,
            Labels = input.Labels ?? previous.Labels,
            Timeout = input.Timeout ?? previous.Timeout,
            Credential = input.Credential ?? previous.Credential,
            Version = previous.Version + 1,
        };
        return new ProvisionResult(State, Created: false);
    }

    /// <summary>A device channel opened (after the device identified itself on it).</summary>
    public void ChannelOpened()
    {
        if (State is null)
        {
            return;
        }

        OpenChannels++;
        DisconnectedAt = null;
    }

    /// <summary>A device channel closed: the disconnect grace starts when the last one closes.</summary>
    public void ChannelClosed(DateTime now)
    {
        if (OpenChannels == 0)
        {
            return;
        }

        OpenChannels--;
        if (OpenChannels == 0 && State?.Status == DeviceStatus.Online)
        {
            DisconnectedAt = now;
        }
    }

    /// <summary>
    /// The grain was loaded by a process that has just taken its device over (a restart, or another silo's
    /// partition): silence before <paramref name="takenOverAt"/> may be the outage's, not the device's, so the device
    /// has one whole timeout from then before it is declared offline.
    /// </summary>
    public void GrantRecoveryGrace(DateTime takenOverAt, DevicePolicy policy)
    {
        if (State is { Status: DeviceStatus.Online } device)
        {
            _graceUntilTicks = (takenOverAt + policy.TimeoutOf(device)).Ticks;
        }
    }

    /// <summary>When <see cref="Expire"/> would next change something; null when nothing is pending.</summary>
    public DateTime? Deadline(DevicePolicy policy)
    {
        if (State is not { Status: DeviceStatus.Online } device || OpenChannels > 0)
        {
            return null;
        }

        if (DisconnectedAt is { } closed)
        {
            return closed + policy.DisconnectGrace;
        }

        var silence = device.LastSeenAt + policy.TimeoutOf(device);
        return silence.Ticks >= _graceUntilTicks ? silence : new DateTime(_graceUntilTicks, DateTimeKind.Utc);
    }

    /// <summary>Turns silence (or a closed channel past its grace) into <c>offline</c>, if the deadline has passed.</summary>
    public GrainChange Expire(DateTime now, DevicePolicy policy, List<DeviceEvent> outbox)
    {
        if (Deadline(policy) is not { } deadline || now < deadline)
        {
            return GrainChange.None;
        }

        var reason = DisconnectedAt is null ? StatusReason.Timeout : StatusReason.Disconnected;
        DisconnectedAt = null;
        return GoOffline(reason, now, outbox, ChangeKind.None);
    }

    /// <summary>Removes the device: <c>offline</c> (reason <c>removed</c>) first if it is online, then <c>device.removed</c>.</summary>
    public GrainChange Remove(DateTime now, List<DeviceEvent> outbox)
    {
        if (State is null)
        {
            return GrainChange.None;
        }

        var change = State.Status == DeviceStatus.Online
            ? GoOffline(StatusReason.Removed, now, outbox, ChangeKind.Removed)
            : new GrainChange(ChangeKind.State | ChangeKind.Durable | ChangeKind.Removed);
        var device = State!;
        outbox.Add(new DeviceEvent
        {
            TenantId = Key.TenantId, DeviceId = Key.DeviceId, Type = DeviceEventType.Removed, Sequence = device.Sequence + 1, Time = now,
            LastSeenAt = device.HasBeenSeen ? device.LastSeenAt : default,
        });
        State = null;
        OpenChannels = 0;
        DisconnectedAt = null;
        return change;
    }

    /// <summary>Records a command's result as a <c>command.result</c> event.</summary>
    public GrainChange CommandResult(CommandResult result, DateTime now, List<DeviceEvent> outbox)
    {
        if (State is null)
        {
            return GrainChange.None;
        }

        State = State with { Sequence = State.Sequence + 1 };
        outbox.Add(new DeviceEvent
        {
            TenantId = Key.TenantId, DeviceId = Key.DeviceId, Type = DeviceEventType.CommandResult, Sequence = State.Sequence, Time = now,
            CommandId = result.CommandId, Ok = result.Ok, Output = result.Output,
        });
        return new GrainChange(ChangeKind.State | ChangeKind.Durable);
    }

    private GrainChange GoOffline(StatusReason reason, DateTime now, List<DeviceEvent> outbox, ChangeKind extra)
    {
        var previous = State!;
        State = previous with
        {
            Status = DeviceStatus.Offline,
            StatusChangedAt = now,
            Version = previous.Version + 1,
            Sequence = previous.Sequence + 1,
        };
        outbox.Add(StatusEvent(State, State.Sequence, DeviceStatus.Online, reason, now));
        var ended = new SessionRecord(previous.SessionId, previous.SessionStartedAt, now, reason, previous.SessionHeartbeats);
        return new GrainChange(ChangeKind.State | ChangeKind.Durable | extra, ended);
    }

    private DeviceRecord Register(HeartbeatInput input, DateTime now, DevicePolicy policy) => new()
    {
        TenantId = Key.TenantId,
        DeviceId = Key.DeviceId,
        DeviceName = input.DeviceName ?? Key.DeviceId,
        Platform = SharedValues.Text(input.Platform),
        AppVersion = SharedValues.Text(input.AppVersion),
        Status = DeviceStatus.Online,
        FirstSeenAt = now,
        LastSeenAt = now,
        StatusChangedAt = now,
        SessionId = policy.NewSessionId(),
        SessionStartedAt = now,
        SessionHeartbeats = 1,
        Metrics = input.Metrics?.WithKeysOf(null) ?? MetricSet.Empty,
        Containers = input.Containers ?? [],
        Version = 1,
        Sequence = 2,
    };

    private DeviceEvent StatusEvent(DeviceRecord device, long sequence, DeviceStatus previousStatus, StatusReason reason, DateTime now) => new()
    {
        TenantId = Key.TenantId,
        DeviceId = Key.DeviceId,
        Type = DeviceEventType.Status,
        Sequence = sequence,
        Time = now,
        Status = device.Status,
        PreviousStatus = previousStatus,
        Reason = reason,
        LastSeenAt = device.LastSeenAt,
        SessionId = device.SessionId,
    };

    private bool TryTakeRateToken(DateTime now, DevicePolicy policy, out TimeSpan retryAfter)
    {
        if (now - _rateWindowStart >= RateWindow || now < _rateWindowStart)
        {
            _rateWindowStart = now;
            _rateWindowCount = 0;
        }

        if (_rateWindowCount >= policy.HeartbeatsPerMinute)
        {
            retryAfter = _rateWindowStart + RateWindow - now;
            return false;
        }

        _rateWindowCount++;
        retryAfter = TimeSpan.Zero;
        return true;
    }

    private static bool SameContainers(IReadOnlyList<ContainerInfo>? next, IReadOnlyList<ContainerInfo> previous)
    {
        if (next is null || ReferenceEquals(next, previous))
        {
            return true;
        }

        if (next.Count != previous.Count)
        {
            return false;
        }

        for (var i = 0; i < next.Count; i++)
        {
            if (next[i] != previous[i])
            {
                return false;
            }
        }

        return true;
    }
}
